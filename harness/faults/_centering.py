"""The reference centering with one switch flipped (each fault module flips one)."""

from __future__ import annotations

import torch

from ..losses import DINOv1Loss, _dist


class FaultyCentering(DINOv1Loss):
    reduce: bool = True  # all-reduce the batch statistics at all
    divisor: str = "global"  # "global" rows | "local" rows (world size missing) | "mean_of_means"
    swap_ema: bool = False  # center = (1 - m) * center + m * batch
    center_dtype: torch.dtype = torch.float32
    accumulate: bool = True  # False: a second update_center before apply drops the first

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        rows = teacher_output.detach().reshape(-1, teacher_output.shape[-1]).float()
        if self.divisor == "mean_of_means":
            mean = rows.mean(dim=0) if rows.shape[0] else rows.new_zeros(rows.shape[1])
            packed = torch.cat([mean, mean.new_ones(1)])  # every rank counts as one
        else:
            packed = torch.cat([rows.sum(dim=0), rows.new_tensor([rows.shape[0]])])
        local_rows = rows.shape[0]
        work = _dist.all_reduce(packed, async_op=True) if self.reduce else None
        if not self.accumulate:
            self._pending.clear()
        self._pending.append((work, packed, local_rows))

    @torch.no_grad()
    def apply_center_update(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        total, local_rows = None, 0
        for work, packed, rows in pending:
            if work is not None:
                work.wait()
            total = packed if total is None else total + packed
            local_rows += rows
        count = total[-1] if self.divisor != "local" else total.new_tensor(float(local_rows))
        batch_center = (total[:-1] / count.clamp_min(1.0)).unsqueeze(0)
        m = self.center_momentum
        if self.center is None:
            new = batch_center
        elif self.swap_ema:
            new = self.center.float() * (1.0 - m) + batch_center * m
        else:
            new = self.center.float() * m + batch_center * (1.0 - m)
        self.center = new.to(self.center_dtype)
