"""The masked-patch loss (``iBOTPatchLoss``) and its gradient under the DDP rule."""

from __future__ import annotations

from ._losses import Part, loss_kind, patch_bound
from ._micro import MASKED

KIND = loss_kind(
    "ibot", 3, {"patch": Part("student_patch", "teacher_patch_logits", count=MASKED)}, "iBOTPatchLoss",
    lambda api, case, **group: api.iBOTPatchLoss(student_temp=case.student_temp, **group),
    {"patch": patch_bound},
)
