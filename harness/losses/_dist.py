"""The few collectives the reference losses use, with world size 1 as a no-op.

Every helper takes an optional process group so the losses work on subgroups, and
returns without communicating when no process group is initialised.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed(group: dist.ProcessGroup | None = None) -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def world_size(group: dist.ProcessGroup | None = None, cap: int | None = None) -> int:
    """The group's size; ``cap`` (a planted fault's) caps it: the ranks of one node."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    size = dist.get_world_size(group)
    return size if cap is None else min(size, cap)


def held(count: int, dtype: str) -> float:
    """A count as a variable of ``dtype`` holds it: float16 is exact up to 2048 and inf
    above 65504 (the planted scale-only faults hold counts there)."""
    if dtype == "float16":
        return float(torch.tensor(float(count)).to(torch.float16))
    return float(count)


def ddp_scale(local: int, device: torch.device, group: dist.ProcessGroup | None = None, *,
              count_dtype: str = "float64", world_cap: int | None = None) -> float:
    """``world_size / global count``: what a rank's local sum is scaled by so that the mean
    over ranks is the one-process mean (DDP averages gradients), on uneven shards too; 0
    when no rank has anything. ``count_dtype`` and ``world_cap``: the planted faults'."""
    total = held(global_count(local, device, group), count_dtype)
    return world_size(group, world_cap) / total if total else 0.0


def all_reduce(
    tensor: torch.Tensor,
    op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM,
    group: dist.ProcessGroup | None = None,
    async_op: bool = False,
) -> dist.Work | None:
    """In-place all-reduce; returns the work handle when async, None when nothing was sent."""
    if not is_distributed(group):
        return None
    return dist.all_reduce(tensor, op=op, group=group, async_op=async_op)


def global_count(local: int, device: torch.device, group: dist.ProcessGroup | None = None) -> int:
    """Sum of a per-rank count: what makes per-rank normalisation exact with uneven shards."""
    if not is_distributed(group):
        return local
    count = torch.tensor([local], dtype=torch.float64, device=device)
    dist.all_reduce(count, group=group)
    return int(count.item())


class CompletedWork:
    """The handle of a collective that is already done (or was never needed)."""

    def wait(self, timeout: object = None) -> bool:  # noqa: ARG002 - torch's Work signature
        return True

    def is_completed(self) -> bool:
        return True

    def is_success(self) -> bool:
        return True


COMPLETED = CompletedWork()
