"""Sinkhorn-Knopp over the global batch: each rank's rows of the single-process result."""

from __future__ import annotations

from typing import Any

import torch

from .. import golden
from ..case import shard
from ..runtime import RankContext
from ..targets import Target
from .collect import Checks
from .job import Job, quantised, to_host, to_torch


def num_samples_arg(convention: str, local_rows: int, global_rows: int,
                    device: torch.device) -> int | torch.Tensor | None:
    """The three ways callers pass the sample count; a correct target gives the same answer."""
    if convention == "global_int":
        return global_rows
    if convention == "local_tensor":
        return torch.tensor(local_rows, device=device)
    return None


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    case, api = job.case, job.target_api().api
    sizes = case.batch_sizes(job.world_size)
    local = to_torch(job.local(job.data()["teacher"], sizes, ctx.rank, 0), case.teacher_dtype,
                     ctx.device)
    num_samples = num_samples_arg(case.num_samples, local.shape[0], sum(sizes), ctx.device)
    out = api.sinkhorn_knopp(local, case.teacher_temp, num_samples, case.n_iterations)
    return {"q": to_host(out)}


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    case = job.case
    checks = Checks()
    tol = case.tolerance("sinkhorn")
    sizes = case.batch_sizes(job.world_size)
    for rank, out in enumerate(ranks):
        checks.add("sinkhorn", "dist_vs_single", out["q"], shard(single["q"], sizes, rank, 0), tol,
                   rank=rank)
    logits = quantised(job.data()["teacher"], case.teacher_dtype)
    checks.add("sinkhorn", "single_vs_oracle", single["q"],
               golden.sinkhorn(logits, case.teacher_temp, case.n_iterations), tol)
    return checks.result()
