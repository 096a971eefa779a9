"""Assemble a complete seed API around one faulty piece.

Every planted fault is the reference implementation with exactly one bug; this wires the
faulty Sinkhorn or loss class into every place the seed API reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import losses as reference


def seed_api(
    *,
    sinkhorn: Callable[..., torch.Tensor] = reference.sinkhorn_knopp,
    dino: type[reference.DINOv1Loss] = reference.DINOv1Loss,
    ibot: type[reference.iBOTPatchLoss] = reference.iBOTPatchLoss,
) -> dict[str, Any]:
    class DINOv1Loss(dino):  # type: ignore[misc, valid-type]
        def sinkhorn_knopp_teacher(self, teacher_logits, teacher_temp, num_samples=None,
                                   n_iterations=3):
            flat = teacher_logits.reshape(-1, teacher_logits.shape[-1])
            out = sinkhorn(flat, teacher_temp, num_samples, n_iterations,
                           process_group=self.process_group)
            return out.reshape(teacher_logits.shape)

    class iBOTPatchLoss(ibot):  # type: ignore[misc, valid-type]  # noqa: N801
        def sinkhorn_knopp_teacher(self, teacher_patch_tokens, teacher_temp, num_samples=None,
                                   n_iterations=3):
            return sinkhorn(teacher_patch_tokens, teacher_temp, num_samples, n_iterations,
                            process_group=self.process_group)

    class DINOv2Loss(reference.DINOv2Loss):
        def __init__(self, dino_loss_weight=1.0, ibot_loss_weight=1.0, temperature_student=0.1,
                     center_momentum=0.9, student_temp=0.1, *, process_group=None):
            super().__init__(dino_loss_weight, ibot_loss_weight, temperature_student,
                             center_momentum, student_temp, process_group=process_group)
            self.dino_loss = DINOv1Loss(temperature_student, center_momentum,
                                        process_group=process_group)
            self.ibot_patch_loss = iBOTPatchLoss(student_temp, process_group=process_group)

    return {
        "cross_entropy_loss": reference.cross_entropy_loss,
        "sinkhorn_knopp": sinkhorn,
        "DINOv1Loss": DINOv1Loss,
        "iBOTPatchLoss": iBOTPatchLoss,
        "DINOv2Loss": DINOv2Loss,
    }
