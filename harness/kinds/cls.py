"""The CLS-token loss (``DINOv1Loss``) and its gradient under the DDP rule."""

from __future__ import annotations

from ._losses import Part, cls_bound, loss_kind

KIND = loss_kind(
    "cls", 2, {"cls": Part("student", "teacher_logits")}, "DINOv1Loss",
    lambda api, case, **group: api.DINOv1Loss(temperature_student=case.student_temp, **group),
    {"cls": cls_bound},
)
