"""iBOT's masked-patch loss in DINOv2's per-image form (``forward_masked``), exact on N ranks."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn as nn

from . import _dist, _validate
from .accumulation import Accumulates
from .cross_entropy import cross_entropy_loss
from .sinkhorn import sinkhorn_knopp
from .variants import REFERENCE, Variant


class iBOTMaskedPatchLoss(Accumulates, nn.Module):  # noqa: N801 - the ibot_masked kind's name
    """DINOv2 / DINOv3 ``iBOTPatchLoss.forward_masked`` on one process: each masked patch's
    cross-entropy weighted by ``1 / masked count of its image`` (or ``masks_weight``),
    summed, divided by the number of images -- images that mask nothing included.

    Distributed contract: the local sum is scaled by ``world_size / global image count``
    (one all-reduce of the image count), so the mean over ranks is the single-process loss
    on the whole batch and ``grad / world_size`` the rank's slice of its gradient, on
    uneven images per rank and uneven masked counts alike; a rank with no image or no
    masked patch adds 0 and still joins the all-reduce. (A patch's weight needs only its
    own image's mask, which lives on the rank that holds the image.) Inside
    ``micro_batches(sizes)`` (images) each call is weighed by its share of the step's
    images (:mod:`~harness.losses.accumulation`); its Sinkhorn is handed the step's
    masked patches and normalises them whole.

    ``variant``: the known mistakes the planted faults make (:mod:`harness.losses.variants`).
    """

    variant: ClassVar[Variant] = REFERENCE

    def __init__(
        self, student_temp: float = 0.1, *, process_group: dist.ProcessGroup | None = None,
        variant: Variant | None = None,
    ) -> None:
        super().__init__()
        if variant is not None:
            self.variant = variant  # type: ignore[misc]
        _validate.positive("student_temp", student_temp)
        self.student_temp = float(student_temp)
        self.process_group = self.variant.group(process_group)

    def forward_masked(
        self,
        student_patch_tokens_masked: torch.Tensor,
        teacher_patch_tokens_masked: torch.Tensor,
        student_masks_flat: torch.Tensor,
        n_masked_patches: int | None = None,
        masks_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[M, K]`` student logits and teacher probs of the masked patches (row-major mask
        order, as ``tokens[masks]`` gives them), ``[images, N]`` boolean masks; only the first
        ``n_masked_patches`` rows count when given (DINOv2's padded buffers)."""
        names = ("student_patch_tokens_masked", "teacher_patch_tokens_masked")
        _validate.tensor_ndim(names[0], student_patch_tokens_masked, (2,))
        _validate.tensor_ndim(names[1], teacher_patch_tokens_masked, (2,))
        if student_patch_tokens_masked.shape != teacher_patch_tokens_masked.shape:
            raise ValueError(
                f"{names[0]} and {names[1]} must have the same [M, K] shape, got "
                f"{tuple(student_patch_tokens_masked.shape)} and "
                f"{tuple(teacher_patch_tokens_masked.shape)}"
            )
        _validate.bool_mask("student_masks_flat", student_masks_flat)
        per_patch = cross_entropy_loss(teacher_patch_tokens_masked, student_patch_tokens_masked,
                                       self.student_temp)
        if n_masked_patches is not None:
            _validate.row_count("n_masked_patches", n_masked_patches, per_patch.shape[0])
            per_patch = per_patch[:n_masked_patches]
        if masks_weight is None:
            weights, source = _image_weights(student_masks_flat), "student_masks_flat marks"
        else:
            _validate.tensor_ndim("masks_weight", masks_weight, (1,))
            weights, source = masks_weight.float(), "masks_weight weighs"
        if weights.shape[0] != per_patch.shape[0]:
            raise ValueError(
                f"{source} {weights.shape[0]} masked patches, but {per_patch.shape[0]} rows of "
                f"{names[0]} {tuple(student_patch_tokens_masked.shape)} count "
                f"(n_masked_patches={n_masked_patches})"
            )
        total = (per_patch * weights).sum()
        images = student_masks_flat.shape[0]
        if self.variant.ibot_masked_normalisation == "local_images":
            return self._weighed(total / images, images)  # DINOv2's: 0/0 without images
        v = self.variant
        return self._weighed(total * _dist.ddp_scale(images, per_patch.device, self.process_group,
                                                     count_dtype=v.loss_count_dtype,
                                                     world_cap=v.world_size_cap), images)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self,
        teacher_output: torch.Tensor,
        teacher_temp: float,
        n_masked_patches_tensor: torch.Tensor | int | None,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """Sinkhorn over every rank's masked patches: the reference Sinkhorn, whose sample
        count cancels, so ``n_masked_patches_tensor`` may hold the local or the global count
        (it is validated, never all-reduced: DINOv2 all-reduces it in place, a collective
        the count does not need)."""
        return sinkhorn_knopp(
            teacher_output, teacher_temp, n_masked_patches_tensor, n_iterations,
            process_group=self.process_group, variant=self.variant,
        )


def _image_weights(masks: torch.Tensor) -> torch.Tensor:
    """``1 / max(1, masked count of its image)`` for each masked patch, in row-major order."""
    per_image = masks.sum(dim=-1).clamp(min=1).float().reciprocal()
    return per_image.unsqueeze(-1).expand_as(masks)[masks]

