"""Negative control of the overlap benchmark: "fake async" centering.

A complete seed-API module (``--impl harness.overlap.fake_async``): the reference
implementation with exactly one change. ``DINOv1Loss.update_center`` all-reduces the
center statistics *synchronously* and queues an already completed handle, so
``apply_center_update`` never waits after backward -- and yet nothing of the all-reduce
is hidden: it all ran inside the issuing call. Numerically it is the reference (every
correctness check passes); only the overlap metric can tell it apart
(hidden_fraction ~ 0, where the reference hides most of the all-reduce).
"""

from __future__ import annotations

import torch

from ..faults._build import seed_api
from ..losses import DINOv1Loss as _ReferenceDINOv1Loss
from ..losses import _dist, _validate


class CompletedWork:
    """A work handle that is already done: ``wait()`` returns at once."""

    def wait(self, timeout=None) -> bool:  # noqa: ARG002 - the torch Work signature
        return True

    def is_completed(self) -> bool:
        return True

    def is_success(self) -> bool:
        return True


class _FakeAsyncDINOv1Loss(_ReferenceDINOv1Loss):
    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> CompletedWork:
        """Same statistics as the reference, but the all-reduce blocks before returning."""
        _validate.min_ndim("teacher_output", teacher_output, 2)
        self._check_k("teacher_output", teacher_output)
        rows = teacher_output.detach().reshape(-1, teacher_output.shape[-1])
        k = rows.shape[1]
        packed = torch.empty(k + 1, dtype=torch.float32, device=rows.device)
        torch.sum(rows, dim=0, dtype=torch.float32, out=packed[:k])
        packed[k] = rows.shape[0]
        _dist.all_reduce(packed, group=self.process_group, async_op=False)  # the one change
        work = CompletedWork()
        self._pending.append((work, packed))
        return work


globals().update(seed_api(dino=_FakeAsyncDINOv1Loss))
