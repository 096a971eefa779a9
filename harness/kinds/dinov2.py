"""The weighted CLS + patch loss (``DINOv2Loss``) and its gradients under the DDP rule."""

from __future__ import annotations

from ._losses import Part, cls_bound, loss_kind, patch_bound
from ._micro import MASKED

KIND = loss_kind(
    "dinov2", 4,
    {"cls": Part("student", "teacher_logits", "dino_weight"),
     "patch": Part("student_patch", "teacher_patch_logits", "ibot_weight", count=MASKED,
                   loss_sinkhorn=False)},
    "DINOv2Loss",
    lambda api, case, **group: api.DINOv2Loss(dino_loss_weight=case.dino_weight,
                                              ibot_loss_weight=case.ibot_weight,
                                              temperature_student=case.student_temp,
                                              student_temp=case.student_temp, **group),
    {"cls": cls_bound, "patch": patch_bound},
)
