"""The "before": the plain float32 Sinkhorn-Knopp and centering as DINO codebases commonly
write them (our own words), kept only as the baseline that benchmarks compare against.

Deliberately naive: exp without a shift, a global-sum all-reduce, the sample count
all-reduced when it arrives as a tensor, and the count multiplied back at the end.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def _all_reduce(tensor: torch.Tensor, async_op: bool = False):
    if _world() > 1:
        return dist.all_reduce(tensor, async_op=async_op)
    return None


@torch.no_grad()
def seed_sinkhorn(teacher_output, teacher_temp, num_samples=None, n_iterations=3):
    q = torch.exp(teacher_output.float() / teacher_temp).t()  # [K, B_local]
    if num_samples is None:
        count = q.shape[1] * _world()
    elif isinstance(num_samples, torch.Tensor):
        count_t = num_samples.clone().float()
        _all_reduce(count_t)
        count = count_t
    else:
        count = num_samples
    k = q.shape[0]
    total = torch.sum(q)
    _all_reduce(total)
    q /= total
    for _ in range(n_iterations):
        rows = torch.sum(q, dim=1, keepdim=True)
        _all_reduce(rows)
        q /= rows
        q /= k
        q /= torch.sum(q, dim=0, keepdim=True)
        q /= count
    q *= count
    return q.t()


class SeedCenter:
    """Seed-style centering: one async all-reduce of the local batch mean, divided by W."""

    def __init__(self, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.center: torch.Tensor | None = None
        self._work = None
        self._batch_center: torch.Tensor | None = None

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        self._batch_center = teacher_output.float().reshape(-1, teacher_output.shape[-1]).sum(
            dim=0, keepdim=True
        )
        self._rows = teacher_output.reshape(-1, teacher_output.shape[-1]).shape[0]
        self._work = _all_reduce(self._batch_center, async_op=True)

    @torch.no_grad()
    def apply_center_update(self) -> None:
        if self._batch_center is None:
            return
        if self._work is not None:
            self._work.wait()
        batch = self._batch_center / (self._rows * _world())
        if self.center is None:
            self.center = batch
        else:
            self.center = self.center * self.momentum + batch * (1 - self.momentum)
        self._batch_center = None
