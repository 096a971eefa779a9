"""iBOT masked-patch loss: mean cross-entropy over every rank's masked patches."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn as nn

from . import _dist, _validate
from .accumulation import Accumulates
from .cross_entropy import cross_entropy_loss
from .sinkhorn import sinkhorn_knopp
from .variants import REFERENCE, Variant


class iBOTPatchLoss(Accumulates, nn.Module):  # noqa: N801 - the seed API's name
    """Local loss = ``world_size * sum(local CE) / global masked count``.

    So the mean over ranks is the single-process mean over all masked patches, also when
    ranks hold different numbers of masked patches, or none (such a rank contributes 0
    and still joins the count all-reduce). Inside ``micro_batches(sizes)`` (masked
    patches) each call is weighed by its share of the step
    (:mod:`~harness.losses.accumulation`). ``variant``: see :mod:`harness.losses.variants`.
    """

    variant: ClassVar[Variant] = REFERENCE

    def __init__(
        self, student_temp: float = 0.1, *, process_group: dist.ProcessGroup | None = None,
        variant: Variant | None = None,
    ) -> None:
        super().__init__()
        if variant is not None:
            self.variant = variant  # type: ignore[misc]
        _validate.positive("student_temp", student_temp)
        self.student_temp = float(student_temp)
        self.process_group = self.variant.group(process_group)

    def forward(
        self, student_patch_logits: torch.Tensor, teacher_patch_probs: torch.Tensor
    ) -> torch.Tensor:
        _validate.tensor_ndim("student_patch_logits", student_patch_logits, (2,))
        _validate.tensor_ndim("teacher_patch_probs", teacher_patch_probs, (2,))
        if student_patch_logits.shape != teacher_patch_probs.shape:
            raise ValueError(
                "student_patch_logits and teacher_patch_probs must have the same [M, K] shape, "
                f"got {tuple(student_patch_logits.shape)} and {tuple(teacher_patch_probs.shape)}"
            )
        per_patch = cross_entropy_loss(teacher_patch_probs, student_patch_logits, self.student_temp)
        masked = student_patch_logits.shape[0]
        if self.variant.ibot_normalisation == "local_mean":
            return self._weighed(per_patch.mean(), masked)
        v = self.variant
        scale = _dist.ddp_scale(masked, student_patch_logits.device, self.process_group,
                                count_dtype=v.loss_count_dtype, world_cap=v.world_size_cap)
        return self._weighed(per_patch.sum() * scale, masked)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self,
        teacher_patch_tokens: torch.Tensor,
        teacher_temp: float,
        num_samples: int | torch.Tensor | None = None,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """Sinkhorn over every rank's ``[M, K]`` masked patches (inside ``micro_batches``:
        the step's)."""
        return self._teacher(lambda tokens: sinkhorn_knopp(
            tokens, teacher_temp, num_samples, n_iterations,
            process_group=self.process_group, variant=self.variant,
        ), teacher_patch_tokens)
