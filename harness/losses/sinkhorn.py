"""Sinkhorn-Knopp over the global batch, exact on any sharding and overflow-safe.

Rows of the transport matrix are prototypes (normalised with sums all-reduced over
ranks), columns are samples (normalised locally). Two facts make this version exact:

* Row normalisation removes any per-prototype factor, so a per-prototype shift by the
  *global* max is exact (one MAX all-reduce), and the seed's initial global sum and its
  sample count B are pure scale factors that cancel (B only cancels when it is the same
  on every rank; here it is not used at all, whatever the ``num_samples`` convention).
* Column normalisation removes any per-sample factor. A per-sample shift keeps every
  sample representable (a sample far below the rest would underflow to an all-zero
  column, 0/0); its factor ``w_b`` is kept in the first row sums, where it belongs, and
  cancels afterwards. Dropping it -- a plain per-sample max shift -- is inexact.

Collectives: 1 (MAX) + n_iterations (row sums) per call.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from . import _dist, _validate
from .variants import REFERENCE, Variant

_EXP_FLOOR = -87.0  # exp(-87) ~ 1.6e-38, the smallest normal float32 is ~1.2e-38


@torch.no_grad()
def sinkhorn_knopp(
    teacher_output: torch.Tensor,
    teacher_temp: float,
    num_samples: int | torch.Tensor | None = None,
    n_iterations: int = 3,
    *,
    process_group: dist.ProcessGroup | None = None,
    variant: Variant = REFERENCE,
) -> torch.Tensor:
    """Sinkhorn-Knopp on this rank's ``[N_local, K]`` logits; float32, rows sum to 1.

    ``num_samples`` is accepted for API compatibility (int global count, tensor local
    count, or None) and validated, but not needed: the sample count cancels exactly.
    A rank with zero samples still joins every collective. ``variant``: the known mistakes
    the planted faults make (:mod:`harness.losses.variants`); the default is exact.
    """
    _validate.tensor_ndim("teacher_output", teacher_output, (2,))
    _validate.positive("teacher_temp", teacher_temp)
    _validate.iterations("n_iterations", n_iterations)
    _validate.num_samples(num_samples)

    process_group = variant.group(process_group)
    logits = teacher_output.detach().float()
    n_local, k = logits.shape
    if n_local == 0 and variant.sinkhorn_empty_rank_skips:
        return logits
    if variant.sinkhorn_shift == "none":
        q = logits.mul(1.0 / teacher_temp).exp_()
        sample_weight = q.new_ones((n_local, 1))
    else:
        if n_local:
            prototype_max = logits.amax(dim=0)
        else:
            prototype_max = torch.full((k,), float("-inf"), device=logits.device)
        _dist.all_reduce(prototype_max, op=dist.ReduceOp.MAX, group=process_group)

        # q = exp((x - max_k) / T - s_b) with s_b the per-sample max: every column holds a 1.
        q = torch.sub(logits, prototype_max).mul_(1.0 / teacher_temp)
        if n_local:
            sample_shift = q.amax(dim=1, keepdim=True)
        else:
            sample_shift = q.new_zeros((0, 1))
        # Arguments below -87 would give float32 subnormals, which send exp (and the
        # divisions after it) down a slow path, several times slower. Such entries are
        # < 2^-125 of their sample's largest and vanish at float32 precision after
        # normalisation: flooring them at e^-87 changes no result beyond float32 rounding
        # and keeps exp on its fast path.
        q.sub_(sample_shift).clamp_(min=_EXP_FLOOR).exp_()
        # The factor the shift removed (0 for far outliers); dropping it is inexact.
        if variant.sinkhorn_shift == "exact":
            sample_weight = sample_shift.exp_()
        else:
            sample_weight = torch.ones_like(sample_shift)

    # Each row sum is >= 1 on the first pass (the prototype's arg-max sample contributes 1)
    # and >= 1 / (N * K) afterwards, so nothing below divides by zero or overflows.
    row_sums = (sample_weight.t() @ q).squeeze(0)
    local_mass = variant.sinkhorn_sample_mass == "local_count"
    for iteration in range(n_iterations + variant.sinkhorn_iterations_delta):
        if iteration:
            row_sums = q.sum(dim=0)
        if variant.sinkhorn_row_all_reduce:
            _dist.all_reduce(row_sums, group=process_group)
        q.div_(row_sums)
        q.div_(q.sum(dim=1, keepdim=True))
        if local_mass:
            q.div_(max(n_local, 1))
    if local_mass:
        q.mul_(max(n_local, 1))
    return q
