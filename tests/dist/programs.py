"""Rank programs for tests/dist (importable by pool workers)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from harness.losses import DINOv1Loss, sinkhorn_knopp


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
