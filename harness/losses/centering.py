"""Teacher centering: the EMA center of a head's teacher outputs over every rank's rows.

One mechanism for both heads that center (DINO's CLS head, ``DINOv1Loss``, and iBOT's
patch head, ``iBOTPatchCenter``), so the two cannot drift apart: ``update_center`` starts
ONE async all-reduce of ``[sum over rows, row count]`` (the exact global mean on uneven
shards, a rank with no row still joining it); ``apply_center_update`` waits and applies
the EMA. Several ``update_center`` calls before one apply combine all their rows: a step
cut into micro-batches (gradient accumulation) calls ``update_center`` once per
micro-batch and applies once, one EMA step over every micro-batch's rows.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import _dist, _validate
from .variants import REFERENCE, Variant


class TeacherCenter(nn.Module):
    """The EMA center of one head: a float32 ``[1, K]`` buffer, ``None`` until the first
    update, whose batch center then *becomes* the center; afterwards
    ``center = m * center + (1 - m) * batch_center``.

    ``variant`` (class attribute or keyword) selects the known mistakes the planted faults
    make; see :mod:`harness.losses.variants`. The default is the correct algorithm.
    """

    center: torch.Tensor | None
    variant: ClassVar[Variant] = REFERENCE

    def __init__(
        self,
        center_momentum: float = 0.9,
        *,
        process_group: dist.ProcessGroup | None = None,
        variant: Variant | None = None,
    ) -> None:
        super().__init__()
        if variant is not None:
            self.variant = variant  # type: ignore[misc]
        _validate.momentum("center_momentum", center_momentum)
        self.center_momentum = float(center_momentum)
        self.process_group = self.variant.group(process_group)
        self.register_buffer("center", None)
        # (work handle or None, packed [row sum, row count], this rank's row count)
        self._pending: list[tuple[dist.Work | None, torch.Tensor, int]] = []

    @torch.no_grad()
    def softmax_center_teacher(
        self, teacher_logits: torch.Tensor, teacher_temp: float, update_centers: bool = True
    ) -> torch.Tensor:
        """``softmax((logits - center) / temp)``, after applying a queued update if asked;
        no center yet: plain softmax."""
        _validate.min_ndim("teacher_logits", teacher_logits, 1)
        _validate.positive("teacher_temp", teacher_temp)
        if update_centers:
            self.apply_center_update()
        logits = teacher_logits.float()
        if self.center is not None:
            self._check_k("teacher_logits", teacher_logits)
            logits = logits - self.center
        return F.softmax(logits / teacher_temp, dim=-1)

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> dist.Work | _dist.CompletedWork:
        """Start the async all-reduce of this batch's ``[row sum, row count]`` (every leading
        dim is rows); returns at once, with the collective's handle (a completed one when
        nothing is in flight). ``apply_center_update`` is what waits for it."""
        _validate.min_ndim("teacher_output", teacher_output, 2)
        self._check_k("teacher_output", teacher_output)
        v = self.variant
        rows = teacher_output.detach().reshape(-1, teacher_output.shape[-1])
        n_rows, k = rows.shape
        packed = torch.empty(k + 1, dtype=torch.float32, device=rows.device)
        if v.center_divisor == "mean_of_means":  # every rank counts as one, even an empty one
            packed[:k] = rows.float().mean(dim=0) if n_rows else 0.0
            packed[k] = 1.0
        else:
            torch.sum(rows, dim=0, dtype=torch.float32, out=packed[:k])
            packed[k] = n_rows
        if not v.updates_accumulate:
            self._pending.clear()
        work = None
        if v.center_all_reduce:  # synchronous (work None) only in the fake-async variant
            work = _dist.all_reduce(packed, group=self.process_group, async_op=v.center_async)
        self._pending.append((work, packed, n_rows))
        if v.center_ema_per == "update":  # the planted mistake: an EMA step per micro-batch
            self.apply_center_update()
        return work if work is not None else _dist.COMPLETED

    @torch.no_grad()
    def apply_center_update(self) -> None:
        """Wait for every pending all-reduce and fold them into the EMA center."""
        if not self._pending:
            return
        v = self.variant
        pending, self._pending = self._pending, []
        total, local_rows = None, 0
        for work, packed, n_rows in pending:
            if work is not None:
                work.wait()
            total = packed if total is None else total + packed
            local_rows += n_rows
        assert total is not None
        rows = total[-1] if v.center_divisor != "local_rows" else total.new_tensor(local_rows)
        if v.center_count_dtype == "float16":
            rows = rows.half().float()
        batch_center = (total[:-1] / rows.clamp_min(1.0)).unsqueeze(0)
        if v.center_updates_combine == "mean_of_means":  # every update (micro-batch) weighs one
            batch_center = torch.stack([packed[:-1] / packed[-1].clamp_min(1.0)
                                        for _, packed, _ in pending]).mean(dim=0, keepdim=True)
        dtype = getattr(torch, v.center_dtype)
        if self.center is None:
            if rows.item() > 0:  # one host sync, on the first update only
                self.center = batch_center.to(dtype)
            return
        m = self.center_momentum
        center = self.center.float()
        if v.center_ema == "swapped":
            updated = center * (1.0 - m) + batch_center * m
        else:
            updated = center * m + batch_center * (1.0 - m)
        # No rows on any rank: keep the center (decided on device, no host sync).
        self.center = torch.where(rows > 0, updated, center).to(dtype)

    @property
    def has_pending_update(self) -> bool:
        return bool(self._pending)

    def _check_k(self, name: str, tensor: torch.Tensor) -> None:
        if self.center is not None and tensor.shape[-1] != self.center.shape[-1]:
            raise ValueError(
                f"{name} has K={tensor.shape[-1]} prototypes (shape {tuple(tensor.shape)}) but "
                f"the center has K={self.center.shape[-1]} (shape {tuple(self.center.shape)})"
            )

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # A fresh module has no center yet: adopt the saved one's shape before loading into it.
        key = prefix + "center"
        if self.center is None and isinstance(state_dict.get(key), torch.Tensor):
            saved = state_dict[key]
            self.center = torch.empty(saved.shape, dtype=torch.float32, device=saved.device)
        super()._load_from_state_dict(state_dict, prefix, *args)


class iBOTPatchCenter(TeacherCenter):  # noqa: N801 - the name the patch_centering kind drives
    """The iBOT patch head's center: its own EMA, over every rank's masked patch tokens
    (``[M, K]``, or any leading dims: all are rows), beside the CLS head's.

    DINOv2 and DINOv3 keep it inside their ``iBOTPatchLoss``; here it is the CLS center's
    exact mechanism under the name the ``patch_centering`` kind looks up, so an empty rank
    (M = 0) still joins the all-reduce and uneven masked counts weigh every token alike
    (DINOv2's patch center is a mean of per-rank means there).
    """
