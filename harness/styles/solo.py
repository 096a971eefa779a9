"""vturrisi/solo-learn ``solo/losses/dino.py``: ``DINOLoss(num_prototypes,
warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, num_epochs, student_temp,
num_large_crops, center_momentum)`` with ``forward(student_output, teacher_output)`` on
concatenated crops and the epoch in ``self.epoch``; centering inside ``forward`` with a
synchronous all-reduce, as the original DINO. Its student is chunked into
``num_large_crops`` pieces, so the harness sets that to the number of student crops. No
Sinkhorn.
"""

from __future__ import annotations

from typing import Any

import torch

from ..semantics import Semantics
from ._base import Mark, Style, namespace
from ._wrappers import ForwardCentered

MARK = Mark("DINOLoss", init=("num_prototypes", "warmup_teacher_temp", "teacher_temp",
                              "warmup_teacher_temp_epochs", "num_epochs", "num_large_crops"),
            methods={"forward": ("student_output", "teacher_output"),
                     "update_center": ("teacher_output",)})


class CLS(ForwardCentered):
    def build(self, k: int) -> Any:
        return self.loss_cls(k, 1.0, 1.0, 0, 1, student_temp=self.student_temp,
                             num_large_crops=2, center_momentum=self.center_momentum)

    def call_forward(self, inner: Any, student: torch.Tensor,
                     teacher_logits: torch.Tensor) -> torch.Tensor:
        inner.epoch = 0
        inner.num_large_crops = student.shape[0]  # it is the student's chunk count
        k = student.shape[-1]
        return inner(student.reshape(-1, k), teacher_logits.reshape(-1, k))


STYLE = Style(
    name="solo",
    summary="solo-learn solo/losses/dino.py: DINOLoss(num_prototypes, warmup_teacher_temp, "
            "teacher_temp, warmup_teacher_temp_epochs, num_epochs, ..., num_large_crops) with "
            "forward(student_output, teacher_output)",
    marks=(MARK,),
    adapt=lambda module: namespace(DINOv1Loss=type("DINOv1Loss", (CLS,),
                                                   {"loss_cls": module.DINOLoss})),
    semantics=Semantics(center_init="zero", cls_reduction="mean_off_diagonal",
                        center_update="forward", teacher_views=2),
    specificity=50,
)
