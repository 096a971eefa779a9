"""The reference losses with one normalisation mistake each."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import DINOv1Loss, _dist, cross_entropy_loss, iBOTPatchLoss


class DiagonalIncluded(DINOv1Loss):
    """Pairs every student view with every teacher view, the same crop included."""

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        total = -torch.einsum("tbk,sbk->", teacher_probs.float(), log_probs)
        pairs = student_logits.shape[0] * teacher_probs.shape[0]

        world = _dist.world_size(self.process_group)
        batch = _dist.global_count(student_logits.shape[1], student_logits.device, self.process_group)
        return total * world / (pairs * batch)


class LocalBatchNormalised(DINOv1Loss):
    """Divides by the local batch size: right only when every rank holds the same batch."""

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        n_same = min(student_logits.shape[0], teacher_probs.shape[0])
        pairs = student_logits.shape[0] * teacher_probs.shape[0] - n_same
        log_probs = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        probs = teacher_probs.float()
        total = torch.einsum("vbk,vbk->", probs[:n_same], log_probs[:n_same]) - torch.einsum(
            "bk,bk->", probs.sum(0), log_probs.sum(0))
        return total / (pairs * max(student_logits.shape[1], 1))


class IbotPerRankMean(iBOTPatchLoss):
    """Mean over this rank's masked patches: wrong on uneven counts, 0/0 on a rank with none."""

    def forward(self, student_patch_logits: torch.Tensor,
                teacher_patch_probs: torch.Tensor) -> torch.Tensor:
        return cross_entropy_loss(teacher_patch_probs, student_patch_logits, self.student_temp).mean()
