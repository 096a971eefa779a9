"""Teacher centering of the iBOT patch head: the masked patch tokens' EMA center.

DINOv2 and DINOv3 center the teacher's masked patch tokens as they center the CLS token
(``iBOTPatchLoss.softmax_center_teacher`` / ``update_center`` / ``apply_center_update``, a
``[1, 1, K]`` center), over every rank's tokens. The program and the checks are the
centering kind's; the rows are the masked tokens (``masked_per_rank`` per rank) and the
API object is the patch head's centering, which a style exposes as ``iBOTPatchCenter``.
"""

from __future__ import annotations

from typing import Any

from ..cases.kind import Kind, Tensor
from . import _micro
from .centering import Head
from .centering import rank_program as _centering_program
from .centering import verify as _centering_verify

HEAD = Head("iBOTPatchCenter", _micro.MASKED)


def _lead(case: Any) -> tuple[int, ...]:
    return (case.steps, 1)  # one update per apply: [steps, 1, M, K]


KIND = Kind(
    name="patch_centering",
    order=1,
    keys=frozenset({"masked_per_rank", "momentum", "steps", "micro_batches"}),
    tensors={"teacher": Tensor(1, "masked", "teacher", _lead)},
    needs=(HEAD.loss,),
    rank_program=lambda ctx, job: _centering_program(ctx, job, HEAD),
    verify=lambda job, target, ranks, single: _centering_verify(job, target, ranks, single, HEAD),
    micro_counts=lambda case, world: {HEAD.count: case.shard_sizes("teacher", world)},
)
