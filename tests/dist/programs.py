"""Rank programs for tests/dist (importable by pool workers)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from harness.losses import DINOv1Loss, iBOTMaskedPatchLoss, iBOTPatchCenter, sinkhorn_knopp


def subgroup_losses(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Two subgroups of two ranks each: every loss must reduce over its own subgroup only."""
    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    group = groups[ctx.rank // 2]
    rows = payload["rows"][ctx.rank]
    generator = torch.Generator().manual_seed(ctx.rank)
    teacher = torch.randn(rows, payload["K"], generator=generator) + ctx.rank
    loss = DINOv1Loss(process_group=group)
    loss.update_center(teacher)
    loss.apply_center_update()
    q = sinkhorn_knopp(teacher, 0.1, process_group=group)
    return {"teacher": teacher, "center": loss.center[0], "q": q}


def masked_patch_loss(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The reference masked iBOT loss on this rank's images (whole images per rank, maybe
    none), its teacher probs by its own Sinkhorn with the LOCAL masked count."""
    images = payload["images"][:ctx.world_size]
    first = sum(images[:ctx.rank])
    masks = torch.from_numpy(payload["masks"][first:first + images[ctx.rank]])
    start = int(payload["masks"][:first].sum())
    rows = slice(start, start + int(masks.sum()))
    student = torch.tensor(payload["student"][rows], dtype=torch.float32, requires_grad=True)
    logits = torch.tensor(payload["teacher"][rows], dtype=torch.float32)
    loss_fn = iBOTMaskedPatchLoss(student_temp=payload["student_temp"])
    count = torch.tensor([rows.stop - rows.start])
    probs = loss_fn.sinkhorn_knopp_teacher(logits, payload["teacher_temp"], count)
    loss = loss_fn.forward_masked(student, probs, masks)
    loss.backward()
    return {"loss": loss.item(), "grad": student.grad.numpy(), "probs": probs.numpy(),
            "count": int(count.item())}


def patch_center(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """The patch head's center and the CLS head's on the same rows, step by step."""
    sizes = payload["tokens"][:ctx.world_size]
    first = sum(sizes[:ctx.rank])
    patch, cls = iBOTPatchCenter(center_momentum=0.9), DINOv1Loss(center_momentum=0.9)
    centers = []
    for step in payload["steps"]:
        tokens = torch.tensor(step[first:first + sizes[ctx.rank]], dtype=torch.float32)
        for head in (patch, cls):
            head.softmax_center_teacher(tokens, 0.05)
            head.update_center(tokens)
        centers.append(None if patch.center is None else patch.center[0].clone())
    for head in (patch, cls):
        head.apply_center_update()
    return {"centers": [*centers, patch.center[0]], "same_as_cls": torch.equal(patch.center, cls.center)}
