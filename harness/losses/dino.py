"""DINOv1 CLS-token loss with teacher centering (async EMA center) and Sinkhorn-Knopp."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import _dist, _validate
from .sinkhorn import sinkhorn_knopp
from .variants import REFERENCE, Variant


class DINOv1Loss(nn.Module):
    """Cross-entropy between every student view s and teacher view t with s != t.

    Distributed contract: the local loss is scaled by ``world_size / global_batch`` so
    that the mean over ranks equals the single-process loss and DDP's gradient average
    gives the single-process gradient, also with uneven per-rank batches.

    Centering: ``update_center`` starts ONE async all-reduce of ``[sum over rows, rows]``
    (exact global mean on uneven shards); ``apply_center_update`` waits and applies the
    EMA. Several ``update_center`` calls before one apply combine all their rows.
    The center is a float32 ``[1, K]`` buffer, ``None`` until the first update.

    ``variant`` (class attribute or keyword) selects the known mistakes the planted faults
    make; see :mod:`harness.losses.variants`. The default is the correct algorithm.
    """

    center: torch.Tensor | None
    variant: ClassVar[Variant] = REFERENCE

    def __init__(
        self,
        temperature_student: float = 0.1,
        center_momentum: float = 0.9,
        *,
        process_group: dist.ProcessGroup | None = None,
        variant: Variant | None = None,
    ) -> None:
        super().__init__()
        if variant is not None:
            self.variant = variant  # type: ignore[misc]
        _validate.positive("temperature_student", temperature_student)
        _validate.momentum("center_momentum", center_momentum)
        self.student_temp = float(temperature_student)
        self.center_momentum = float(center_momentum)
        self.process_group = process_group
        self.register_buffer("center", None)
        # (work handle or None, packed [row sum, row count], this rank's row count)
        self._pending: list[tuple[dist.Work | None, torch.Tensor, int]] = []

    # -- loss -------------------------------------------------------------------------
    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        names = ("student_logits", "teacher_probs")
        _validate.tensor_ndim(names[0], student_logits, (3,))
        _validate.tensor_ndim(names[1], teacher_probs, (3,))
        _validate.same_dim(names, student_logits, teacher_probs, 1, "batch sizes (dim 1)")
        _validate.same_dim(names, student_logits, teacher_probs, 2, "prototype counts K (dim 2)")
        n_student, n_teacher = student_logits.shape[0], teacher_probs.shape[0]
        # The first min(S, T) views are the same crops.
        n_same = min(n_student, n_teacher) if self.variant.cls_pairs == "off_diagonal" else 0
        n_pairs = n_student * n_teacher - n_same
        if n_pairs == 0:
            raise ValueError(
                f"no student/teacher view pair with s != t: student_logits "
                f"{tuple(student_logits.shape)}, teacher_probs {tuple(teacher_probs.shape)} "
                "(S = T = 1 views; the loss would be 0/0)"
            )
        log_probs = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        probs = teacher_probs.float()
        # sum over all (s, t) pairs of <t, log p_s>, minus the same-crop pairs s == t.
        all_pairs = torch.einsum("bk,bk->", probs.sum(dim=0), log_probs.sum(dim=0))
        same_crop = torch.einsum("vbk,vbk->", probs[:n_same], log_probs[:n_same])
        total = same_crop - all_pairs

        batch = student_logits.shape[1]
        if self.variant.cls_normalisation == "local_batch":
            return total / (n_pairs * max(batch, 1))
        global_batch = _dist.global_count(batch, student_logits.device, self.process_group)
        if global_batch == 0:
            return total * 0.0
        scale = _dist.world_size(self.process_group) / (n_pairs * global_batch)
        return total * scale

    # -- centering ----------------------------------------------------------------------
    @torch.no_grad()
    def softmax_center_teacher(
        self, teacher_logits: torch.Tensor, teacher_temp: float, update_centers: bool = True
    ) -> torch.Tensor:
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
        """Start the async all-reduce of this batch's ``[row sum, row count]``; returns at
        once, with the collective's handle (a completed one when nothing is in flight).
        ``apply_center_update`` is what waits for it."""
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
        batch_center = (total[:-1] / rows.clamp_min(1.0)).unsqueeze(0)
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

    # -- Sinkhorn -------------------------------------------------------------------------
    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self,
        teacher_logits: torch.Tensor,
        teacher_temp: float,
        num_samples: int | torch.Tensor | None = None,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """Sinkhorn over every leading dim flattened (all views, all ranks), reshaped back."""
        _validate.min_ndim("teacher_logits", teacher_logits, 2)
        flat = teacher_logits.reshape(-1, teacher_logits.shape[-1])
        out = sinkhorn_knopp(
            flat, teacher_temp, num_samples, n_iterations, process_group=self.process_group,
            variant=self.variant,
        )
        return out.reshape(teacher_logits.shape)

    # -- state -------------------------------------------------------------------------
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
