"""lightly-ai/lightly ``lightly/loss/dino_loss.py``: ``DINOLoss(output_dim,
warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, student_temp,
center_momentum, center_mode)`` with ``forward(teacher_out: list, student_out: list,
teacher_temp=None, epoch=None)`` -- the teacher first; centering inside ``forward``
through ``update_center`` (a ``[1, 1, K]`` center, a synchronous all-reduce of the mean of
per-rank means). No Sinkhorn.
"""

from __future__ import annotations

from typing import Any

import torch

from ..semantics import Semantics
from ._base import Mark, Style, namespace
from ._wrappers import ForwardCentered

MARK = Mark("DINOLoss", init=("output_dim", "warmup_teacher_temp", "teacher_temp",
                              "warmup_teacher_temp_epochs", "student_temp", "center_momentum"),
            methods={"forward": ("teacher_out", "student_out", "teacher_temp"),
                     "update_center": ("teacher_out",)})


class CLS(ForwardCentered):
    loss_cls: Any = None

    def build(self, k: int) -> Any:
        return self.loss_cls(output_dim=k, warmup_teacher_temp=1.0, teacher_temp=1.0,
                             warmup_teacher_temp_epochs=1, student_temp=self.student_temp,
                             center_momentum=self.center_momentum)

    def call_forward(self, inner: Any, student: torch.Tensor,
                     teacher_logits: torch.Tensor) -> torch.Tensor:
        return inner(list(teacher_logits.unbind(0)), list(student.unbind(0)), teacher_temp=1.0)

    def call_update(self, inner: Any, teacher: torch.Tensor) -> None:
        views = teacher if teacher.ndim == 3 else teacher.unsqueeze(0)  # [T, B, K]
        inner.update_center(views)


STYLE = Style(
    name="lightly",
    summary="lightly lightly/loss/dino_loss.py: DINOLoss(output_dim, warmup_teacher_temp, "
            "teacher_temp, ...) with forward(teacher_out, student_out, teacher_temp, epoch)",
    marks=(MARK,),
    adapt=lambda module: namespace(DINOv1Loss=type("DINOv1Loss", (CLS,),
                                                   {"loss_cls": module.DINOLoss})),
    semantics=Semantics(center_init="zero", cls_reduction="mean_off_diagonal"),
    # Since v1.5.26 its forward raises ValueError when no view pair is left (S = T = 1).
    contracts=lambda module: frozenset({"raises"}),
    specificity=40,
)
