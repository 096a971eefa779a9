"""The reference Sinkhorn with one switch flipped (each fault module flips one)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..losses import _dist


@torch.no_grad()
def faulty_sinkhorn(
    teacher_output: torch.Tensor,
    teacher_temp: float,
    num_samples: int | torch.Tensor | None = None,
    n_iterations: int = 3,
    *,
    process_group: dist.ProcessGroup | None = None,
    reduce_rows: bool = True,
    shift: str = "exact",  # "exact" | "none" | "per_sample" (the shift's weight dropped)
    iterations_delta: int = 0,
) -> torch.Tensor:
    logits = teacher_output.detach().float()
    n_local, k = logits.shape
    if shift == "none":
        q = torch.exp(logits / teacher_temp)
        weight = torch.ones(n_local, 1)
    else:
        top = logits.amax(dim=0) if n_local else torch.full((k,), float("-inf"))
        _dist.all_reduce(top, op=dist.ReduceOp.MAX, group=process_group)
        q = (logits - top) / teacher_temp
        sample_shift = q.amax(dim=1, keepdim=True) if n_local else q.new_zeros((0, 1))
        q = torch.exp(q - sample_shift)
        weight = sample_shift.exp() if shift == "exact" else torch.ones_like(sample_shift)
    row_sums = (weight.t() @ q).squeeze(0)
    for iteration in range(n_iterations + iterations_delta):
        if iteration:
            row_sums = q.sum(dim=0)
        if reduce_rows:
            _dist.all_reduce(row_sums, group=process_group)
        q = q / row_sums
        q = q / q.sum(dim=1, keepdim=True)
    return q


@torch.no_grad()
def seed_sinkhorn_local_count(
    teacher_output: torch.Tensor,
    teacher_temp: float,
    num_samples: int | torch.Tensor | None = None,
    n_iterations: int = 3,
    *,
    process_group: dist.ProcessGroup | None = None,
) -> torch.Tensor:
    """The seed algorithm (global-max shifted, so only the count is wrong) with B taken as
    this rank's row count: a per-rank factor, exact only when every rank has the same B."""
    logits = teacher_output.detach().float()
    n_local, k = logits.shape
    top = logits.amax() if n_local else torch.tensor(float("-inf"))
    _dist.all_reduce(top, op=dist.ReduceOp.MAX, group=process_group)
    q = torch.exp((logits - top) / teacher_temp).t()  # [K, B]
    count = max(n_local, 1)
    total = q.sum()
    _dist.all_reduce(total, group=process_group)
    q = q / total
    for _ in range(n_iterations):
        rows = q.sum(dim=1, keepdim=True)
        _dist.all_reduce(rows, group=process_group)
        q = q / rows / k
        q = q / q.sum(dim=0, keepdim=True) / count
    return (q * count).t()
