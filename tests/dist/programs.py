"""Rank programs for tests/dist (importable by pool workers)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from harness.losses import DINOv1Loss, iBOTPatchCenter, sinkhorn_knopp


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
