"""facebookresearch/dino ``main_dino.py``, the original DINO: ``DINOLoss(out_dim, ncrops,
warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs, student_temp,
center_momentum)`` with ``forward(student_output [ncrops*B, K], teacher_output [2*B, K],
epoch)``: the teacher is always 2 global crops, centering and the teacher softmax happen
inside ``forward``, and ``update_center`` all-reduces synchronously there (nothing to
hide behind the backward pass). No Sinkhorn.
"""

from __future__ import annotations

from typing import Any

import torch

from ..semantics import Semantics
from ._base import Mark, Style, namespace
from ._wrappers import ForwardCentered

MARK = Mark("DINOLoss", init=("out_dim", "ncrops", "warmup_teacher_temp", "teacher_temp",
                              "warmup_teacher_temp_epochs", "nepochs"),
            methods={"forward": ("student_output", "teacher_output", "epoch"),
                     "update_center": ("teacher_output",)})


class CLS(ForwardCentered):
    def build(self, k: int) -> Any:
        # Temperature 1 at every epoch: see ForwardCentered (the probs come in as logits).
        return self.loss_cls(k, 2, 1.0, 1.0, 0, 1, student_temp=self.student_temp,
                             center_momentum=self.center_momentum)

    def call_forward(self, inner: Any, student: torch.Tensor,
                     teacher_logits: torch.Tensor) -> torch.Tensor:
        inner.ncrops = student.shape[0]  # student crops, crop-major like its data loader
        k = student.shape[-1]
        return inner(student.reshape(-1, k), teacher_logits.reshape(-1, k), 0)


STYLE = Style(
    name="dino",
    summary="facebookresearch/dino main_dino.py: DINOLoss(out_dim, ncrops, warmup_teacher_temp, "
            "teacher_temp, warmup_teacher_temp_epochs, nepochs) with forward(student_output, "
            "teacher_output, epoch)",
    marks=(MARK,),
    adapt=lambda module: namespace(DINOv1Loss=type("DINOv1Loss", (CLS,),
                                                   {"loss_cls": module.DINOLoss})),
    semantics=Semantics(center_init="zero", cls_reduction="mean_off_diagonal",
                        center_update="forward", teacher_views=2),
    specificity=50,
)
