"""facebookresearch/dinov3 ``dinov3/loss``: DINOv2's losses with NaN centers until
``init_weights()`` (which the harness calls, as DINOv3's training does before step 0),
``forward(student_logits [S,B,K], teacher_probs [T,B,K], ignore_diagonal)`` (driven with
``ignore_diagonal=True``: the mean over off-diagonal pairs), collectives on
``dinov3.distributed.get_process_subgroup()``, and an iBOT Sinkhorn module that DINOv3
compiles (run eagerly here: torch.compile is switched off on the ranks that build it).
KoLeo: ``KoLeoLossDistributed(topk, loss_group_size)``, neighbours in the batch all-gathered
with autograd (or its groups), driven as the seed ``KoLeoLoss``; its per-rank ``KoLeoLoss``
is DINOv2's, which the dinov2 style drives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..semantics import Semantics
from . import dinov2
from ._base import Mark, Style

CLS_MARK = Mark("DINOLoss", init=("out_dim", "student_temp", "center_momentum"),
                methods={"init_weights": (),
                         "forward": ("student_logits", "teacher_probs", "ignore_diagonal"),
                         "softmax_center_teacher": ("teacher_output", "teacher_temp",
                                                    "update_centers")})


class CLS(dinov2.CLS):
    def build(self, k: int) -> Any:
        inner = super().build(k)
        inner.init_weights()
        return inner

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        inner = self.module(student_logits.shape[-1])
        return inner(student_logits, teacher_probs, ignore_diagonal=True)

    def softmax_center_teacher(self, teacher_logits: torch.Tensor, teacher_temp: float,
                               update_centers: bool = True) -> torch.Tensor:
        return self.module(teacher_logits.shape[-1]).softmax_center_teacher(
            teacher_logits, teacher_temp, update_centers=update_centers)


class KoLeo(torch.nn.Module):
    """The seed ``KoLeoLoss(topk, group_size)`` over DINOv3's ``KoLeoLossDistributed``."""

    loss_cls: Any = None  # set per target by adapt_with
    #: What the koleo kind may ask that this code cannot do, and why (skipped cases).
    koleo_limits = {
        "uneven": "DINOv3's KoLeoLossDistributed all-gathers equal shapes and raises "
                  "ValueError unless loss_group_size % local_B == 0 and global_B % "
                  "loss_group_size == 0",
    }

    def __init__(self, topk: int = 1, group_size: int | None = None) -> None:
        # DINOv3's koleo_loss.py calls torch.distributed.nn.all_gather without importing
        # the submodule: its training process has it from FSDP; here it is imported.
        import torch.distributed.nn  # noqa: F401

        super().__init__()
        self.inner = self.loss_cls(topk=topk, loss_group_size=group_size)

    def forward(self, student_output: torch.Tensor) -> torch.Tensor:
        return self.inner(student_output)


def ready_patch_loss(build: Callable[[], Any]) -> Any:
    """A DINOv3 ``iBOTPatchLoss`` as its training uses it: built with torch.compile off (its
    constructor compiles its Sinkhorn module; here it runs eagerly), then ``init_weights()``
    (its centers are NaN before)."""
    import torch._dynamo

    torch._dynamo.config.disable = True
    inner = build()
    inner.init_weights()
    return inner


class MaskedPatch(dinov2.MaskedPatch):
    def build(self, k: int) -> Any:
        return ready_patch_loss(lambda: dinov2.MaskedPatch.build(self, k))


class PatchCenter(dinov2.PatchCenter):
    def build(self, k: int) -> Any:
        return ready_patch_loss(lambda: dinov2.PatchCenter.build(self, k))

    def softmax_center_teacher(self, teacher_tokens: torch.Tensor, teacher_temp: float,
                               update_centers: bool = True) -> torch.Tensor:
        inner = self.module(teacher_tokens.shape[-1])
        return inner.softmax_center_teacher(teacher_tokens.unsqueeze(0), teacher_temp=teacher_temp,
                                            update_centers=update_centers).squeeze(0)


STYLE = Style(
    name="dinov3",
    summary="facebookresearch/dinov3: DINOLoss with init_weights() and forward(student_logits, "
            "teacher_probs, ignore_diagonal); iBOTPatchLoss",
    marks=(CLS_MARK,),
    adapt=lambda module: dinov2.adapt_with(module, CLS, MaskedPatch, PatchCenter,
                                           (KoLeo, "KoLeoLossDistributed")),
    semantics=Semantics(center_init="zero", cls_reduction="mean_off_diagonal"),
    specificity=30,
)
