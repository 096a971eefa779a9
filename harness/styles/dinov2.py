"""facebookresearch/dinov2 ``dinov2/loss``: ``DINOLoss(out_dim, student_temp,
center_momentum)`` and ``iBOTPatchLoss(patch_out_dim, student_temp, center_momentum)``.

CLS: ``forward(student_output_list, teacher_out_softmaxed_centered_list)`` sums over every
(student, teacher) pair, the diagonal included, each term a mean over the local batch; the
center is a zero buffer with an async all-reduce in ``update_center`` applied by the next
``softmax_center_teacher``; ``sinkhorn_knopp_teacher(t, temp, n_iterations)`` on ``[N, K]``.
iBOT: the masked form ``forward_masked`` (per-image weights) and a Sinkhorn that
all-reduces the caller's count tensor -- the ``ibot_masked`` kind drives them as
``iBOTMaskedPatchLoss`` -- and the patch head's centering on ``[1, M, K]`` tokens, driven
by the ``patch_centering`` kind as ``iBOTPatchCenter``. KoLeo: ``KoLeoLoss()``, the nearest
neighbour in the rank's own batch (no collective: per rank by design), driven by the
``koleo`` kind as the seed ``KoLeoLoss``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch

from ..semantics import Semantics
from ._base import Mark, Style, namespace
from ._wrappers import Lazy

CLS_MARK = Mark("DINOLoss", init=("out_dim", "student_temp", "center_momentum"),
                methods={"forward": ("student_output_list", "teacher_out_softmaxed_centered_list"),
                         "softmax_center_teacher": ("teacher_output", "teacher_temp"),
                         "update_center": ("teacher_output",)})


class CLS(Lazy):
    """The seed ``DINOv1Loss`` over a DINOv2/DINOv3 ``DINOLoss``."""

    def __init__(self, temperature_student: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = temperature_student
        self.center_momentum = center_momentum

    def build(self, k: int) -> Any:
        return self.loss_cls(k, student_temp=self.student_temp, center_momentum=self.center_momentum)

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        inner = self.module(student_logits.shape[-1])
        return inner(list(student_logits.unbind(0)), list(teacher_probs.unbind(0)))

    def softmax_center_teacher(self, teacher_logits: torch.Tensor, teacher_temp: float,
                               update_centers: bool = True) -> torch.Tensor:
        # DINOv2 always applies the queued update here (update_centers has no meaning).
        return self.module(teacher_logits.shape[-1]).softmax_center_teacher(
            teacher_logits, teacher_temp)

    def update_center(self, teacher_output: torch.Tensor) -> None:
        k = teacher_output.shape[-1]
        self.module(k).update_center(teacher_output.reshape(-1, k))

    def apply_center_update(self) -> None:
        if self.inner is not None:
            self.inner.apply_center_update()

    def sinkhorn_knopp_teacher(self, teacher_logits: torch.Tensor, teacher_temp: float,
                               num_samples: Any = None, n_iterations: int = 3) -> torch.Tensor:
        k = teacher_logits.shape[-1]
        out = self.module(k).sinkhorn_knopp_teacher(teacher_logits.reshape(-1, k), teacher_temp,
                                                    n_iterations=n_iterations)
        return out.reshape(teacher_logits.shape)


class MaskedPatch(Lazy):
    """DINOv2/DINOv3 ``iBOTPatchLoss``, built with K on first use; its own methods."""

    def __init__(self, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum

    def build(self, k: int) -> Any:
        return self.loss_cls(k, student_temp=self.student_temp, center_momentum=self.center_momentum)

    def forward_masked(self, student_patch_tokens_masked: torch.Tensor,
                       teacher_patch_tokens_masked: torch.Tensor, student_masks_flat: torch.Tensor,
                       n_masked_patches: int | None = None,
                       masks_weight: torch.Tensor | None = None) -> torch.Tensor:
        inner = self.module(student_patch_tokens_masked.shape[-1])
        return inner.forward_masked(student_patch_tokens_masked, teacher_patch_tokens_masked,
                                    student_masks_flat, n_masked_patches=n_masked_patches,
                                    masks_weight=masks_weight)

    def sinkhorn_knopp_teacher(self, teacher_output: torch.Tensor, teacher_temp: float,
                               n_masked_patches_tensor: torch.Tensor,
                               n_iterations: int = 3) -> torch.Tensor:
        inner = self.module(teacher_output.shape[-1])
        return inner.sinkhorn_knopp_teacher(teacher_output, teacher_temp,
                                            n_masked_patches_tensor, n_iterations=n_iterations)


class PatchCenter(Lazy):
    """The patch head's centering of a DINOv2/DINOv3 ``iBOTPatchLoss`` on ``[M, K]`` masked
    tokens, handed over as the ``[1, M, K]`` its training code passes."""

    def __init__(self, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.center_momentum = center_momentum

    def build(self, k: int) -> Any:
        return self.loss_cls(k, center_momentum=self.center_momentum)

    def softmax_center_teacher(self, teacher_tokens: torch.Tensor, teacher_temp: float,
                               update_centers: bool = True) -> torch.Tensor:
        inner = self.module(teacher_tokens.shape[-1])
        return inner.softmax_center_teacher(teacher_tokens.unsqueeze(0),
                                            teacher_temp=teacher_temp).squeeze(0)

    def update_center(self, teacher_tokens: torch.Tensor) -> None:
        self.module(teacher_tokens.shape[-1]).update_center(teacher_tokens.unsqueeze(0))

    def apply_center_update(self) -> None:
        if self.inner is not None:
            self.inner.apply_center_update()


class KoLeo(torch.nn.Module):
    """The seed ``KoLeoLoss(topk, group_size)`` over DINOv2's ``KoLeoLoss()``."""

    loss_cls: Any = None  # set per target by adapt_with
    #: What the koleo kind may ask that this code cannot do, and why (skipped cases).
    koleo_limits = {
        "topk": "DINOv2's KoLeoLoss takes the nearest neighbour only",
        "groups": "DINOv2's KoLeoLoss has no groups: its neighbours are the rank's own batch",
        "small_rank": "DINOv2's KoLeoLoss looks in the rank's own batch: torch.max over an "
                      "empty row raises, a lone sample is its own neighbour",
        # the step kind: one process on the whole batch is one regulariser, N ranks are N
        "step": "DINOv2's KoLeoLoss looks in the rank's own batch, by design: a step on N "
                "ranks is not one process's",
    }

    def __init__(self, topk: int = 1, group_size: int | None = None) -> None:
        super().__init__()
        if topk != 1 or group_size is not None:
            raise ValueError(f"DINOv2's KoLeoLoss has no topk or groups, got topk={topk}, "
                             f"group_size={group_size}")
        self.inner = self.loss_cls()

    def forward(self, student_output: torch.Tensor) -> torch.Tensor:
        return self.inner(student_output)


def adapt_with(module: ModuleType, cls_base: type[CLS], patch_base: type[MaskedPatch],
               center_base: type[PatchCenter] = PatchCenter,
               koleo: tuple[type[torch.nn.Module], str] = (KoLeo, "KoLeoLoss")) -> Any:
    """The namespace of a DINOv2-family module: its CLS loss, Sinkhorn, masked iBOT, and
    KoLeo (``koleo``: the face and the name of the module's class it drives)."""
    cls = type("DINOv1Loss", (cls_base,), {"loss_cls": module.DINOLoss})

    def sinkhorn_knopp(teacher_output: torch.Tensor, teacher_temp: float,
                       num_samples: Any = None, n_iterations: int = 3) -> torch.Tensor:
        return cls().sinkhorn_knopp_teacher(teacher_output, teacher_temp, num_samples,
                                            n_iterations)

    patch_cls = getattr(module, "iBOTPatchLoss", None)
    masked = (type("iBOTMaskedPatchLoss", (patch_base,), {"loss_cls": patch_cls})
              if patch_cls is not None and hasattr(patch_cls, "forward_masked") else None)
    center = (type("iBOTPatchCenter", (center_base,), {"loss_cls": patch_cls})
              if patch_cls is not None and hasattr(patch_cls, "update_center") else None)
    koleo_base, koleo_name = koleo
    koleo_cls = getattr(module, koleo_name, None)
    koleo_face = (type("KoLeoLoss", (koleo_base,), {"loss_cls": koleo_cls})
                  if koleo_cls is not None else None)
    return namespace(DINOv1Loss=cls, sinkhorn_knopp=sinkhorn_knopp, iBOTMaskedPatchLoss=masked,
                     iBOTPatchCenter=center, KoLeoLoss=koleo_face)


STYLE = Style(
    name="dinov2",
    summary="facebookresearch/dinov2: DINOLoss(out_dim, student_temp, center_momentum) with "
            "forward(student_output_list, teacher_out_softmaxed_centered_list); iBOTPatchLoss",
    marks=(CLS_MARK,),
    adapt=lambda module: adapt_with(module, CLS, MaskedPatch),
    semantics=Semantics(center_init="zero", cls_reduction="sum_all_pairs", koleo_neighbours="rank"),
    specificity=20,
)
