"""DINOv2 combination: weighted DINO CLS loss plus optional iBOT patch loss."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn as nn

from .accumulation import MicroBatches
from .dino import DINOv1Loss
from .ibot import iBOTPatchLoss
from .variants import REFERENCE, Variant


class DINOv2Loss(nn.Module):
    """``w_dino * DINOv1Loss + w_ibot * iBOTPatchLoss``; centering and Sinkhorn of the CLS
    head are reached through ``dino_loss``, of the patch head through ``ibot_patch_loss``.
    ``variant`` is handed to both (:mod:`harness.losses.variants`)."""

    variant: ClassVar[Variant] = REFERENCE

    def __init__(
        self,
        dino_loss_weight: float = 1.0,
        ibot_loss_weight: float = 1.0,
        temperature_student: float = 0.1,
        center_momentum: float = 0.9,
        student_temp: float = 0.1,
        *,
        process_group: dist.ProcessGroup | None = None,
        variant: Variant | None = None,
    ) -> None:
        super().__init__()
        if variant is not None:
            self.variant = variant  # type: ignore[misc]
        self.dino_loss_weight = float(dino_loss_weight)
        self.ibot_loss_weight = float(ibot_loss_weight)
        self.dino_loss = DINOv1Loss(temperature_student, center_momentum,
                                    process_group=process_group, variant=self.variant)
        self.ibot_patch_loss = iBOTPatchLoss(student_temp, process_group=process_group,
                                             variant=self.variant)

    def forward(
        self,
        student_cls_logits: torch.Tensor,
        teacher_cls_probs: torch.Tensor,
        student_patch_logits: torch.Tensor | None = None,
        teacher_patch_probs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if (student_patch_logits is None) != (teacher_patch_probs is None):
            raise ValueError(
                "student_patch_logits and teacher_patch_probs must both be given or both be None"
            )
        loss = self.dino_loss_weight * self.dino_loss(student_cls_logits, teacher_cls_probs)
        if student_patch_logits is not None:
            patch = self.ibot_patch_loss(student_patch_logits, teacher_patch_probs)
            loss = loss + self.ibot_loss_weight * patch
        return loss

    @contextmanager
    def micro_batches(self, sizes: Sequence[int],
                      patch_sizes: Sequence[int] | None = None) -> Iterator[MicroBatches]:
        """One optimizer step's micro-batches (:mod:`~harness.losses.accumulation`): this
        rank's sizes in samples and, when the calls have patch terms, in masked patches;
        each term is weighed by its own share of the step (a sample share and a patch share
        differ, so no one scale of the whole loss could)."""
        patch = (self.ibot_patch_loss.micro_batches(patch_sizes) if patch_sizes is not None
                 else nullcontext())
        with self.dino_loss.micro_batches(sizes) as micro, patch:
            yield micro

    # The CLS centering API, so a DINOv2Loss drops in where a DINOv1Loss is driven.
    @property
    def center(self) -> torch.Tensor | None:
        return self.dino_loss.center

    def softmax_center_teacher(self, *args, **kwargs) -> torch.Tensor:
        return self.dino_loss.softmax_center_teacher(*args, **kwargs)

    def update_center(self, teacher_output: torch.Tensor) -> object:
        return self.dino_loss.update_center(teacher_output)

    def apply_center_update(self) -> None:
        self.dino_loss.apply_center_update()

    def sinkhorn_knopp_teacher(self, *args, **kwargs) -> torch.Tensor:
        return self.dino_loss.sinkhorn_knopp_teacher(*args, **kwargs)
