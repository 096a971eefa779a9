"""lightly-ai/lightly ``lightly/loss/dino_loss.py``: ``DINOLoss(output_dim,
warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, student_temp,
center_momentum, center_mode)`` with ``forward(teacher_out: list, student_out: list,
teacher_temp=None, epoch=None)`` -- the teacher first; centering inside ``forward``
through ``update_center`` (a ``[1, 1, K]`` center, a synchronous all-reduce of the mean of
per-rank means). No Sinkhorn. Where the target also has lightly's ``IBOTPatchLoss``
(``lightly.loss``), its masked form -- ``forward(teacher_out [M, K], student_out [M, K],
mask [B, H, W], teacher_temp)``, per-image weights, centering inside -- is driven by the
``ibot_masked`` kind.
"""

from __future__ import annotations

from typing import Any

import torch

from ..semantics import Semantics
from ._base import Mark, Style, namespace
from ._wrappers import ForwardCentered, Lazy

MARK = Mark("DINOLoss", init=("output_dim", "warmup_teacher_temp", "teacher_temp",
                              "warmup_teacher_temp_epochs", "student_temp", "center_momentum"),
            methods={"forward": ("teacher_out", "student_out", "teacher_temp"),
                     "update_center": ("teacher_out",)})


class CLS(ForwardCentered):
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


class MaskedPatch(Lazy):
    """lightly's ``IBOTPatchLoss`` as the masked iBOT API: its teacher is centered and
    softmaxed inside ``forward``, so it gets the logits ``log(p) + center`` at temperature 1
    (see ForwardCentered), and the ``[B, N]`` image mask as the ``[B, 1, N]`` it reads."""

    def __init__(self, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum

    def build(self, k: int) -> Any:
        return self.loss_cls(output_dim=k, teacher_temp=1.0, student_temp=self.student_temp,
                             center_momentum=self.center_momentum)

    def forward_masked(self, student_patch_tokens_masked: torch.Tensor,
                       teacher_patch_tokens_masked: torch.Tensor, student_masks_flat: torch.Tensor,
                       n_masked_patches: int | None = None,
                       masks_weight: torch.Tensor | None = None) -> torch.Tensor:
        inner = self.module(student_patch_tokens_masked.shape[-1])
        probs = teacher_patch_tokens_masked.float().clamp_min(torch.finfo(torch.float32).tiny)
        logits = probs.log() + inner.center.value.detach()
        images, patches = student_masks_flat.shape
        return inner(logits, student_patch_tokens_masked,
                     student_masks_flat.reshape(images, 1, patches), teacher_temp=1.0)


def adapt(module: Any) -> Any:
    patch = getattr(module, "IBOTPatchLoss", None)
    return namespace(
        DINOv1Loss=type("DINOv1Loss", (CLS,), {"loss_cls": module.DINOLoss}),
        iBOTMaskedPatchLoss=type("iBOTMaskedPatchLoss", (MaskedPatch,), {"loss_cls": patch})
        if patch is not None else None)


STYLE = Style(
    name="lightly",
    summary="lightly lightly/loss/dino_loss.py: DINOLoss(output_dim, warmup_teacher_temp, "
            "teacher_temp, ...) with forward(teacher_out, student_out, teacher_temp, epoch)",
    marks=(MARK,),
    adapt=adapt,
    semantics=Semantics(center_init="zero", cls_reduction="mean_off_diagonal",
                        center_update="forward"),
    # Since v1.5.26 its forward raises ValueError when no view pair is left (S = T = 1).
    contracts=lambda module: frozenset({"raises"}),
    specificity=40,
)
