"""Sinkhorn-Knopp over the global batch: each rank's rows of the single-process result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import golden
from ..cases import shard
from ..cases.kind import Kind, Tensor
from ..checks.collect import Checks
from ..checks.diagnose import Diagnosis, explain, modelled_world
from ..golden import sharded

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    from ..checks.job import group_kwargs, num_samples_arg, to_host, to_torch  # torch: ranks only

    case, api = job.case, job.target_api().api
    global_rows = sum(job.world_counts("teacher", ctx.rank))
    local = to_torch(job.shard("teacher", ctx.rank), case.teacher_dtype, ctx.device)
    num_samples = num_samples_arg(case.num_samples, local.shape[0], global_rows, ctx.device)
    out = api.sinkhorn_knopp(local, case.teacher_temp, num_samples, case.n_iterations,
                             **group_kwargs())
    return {"q": to_host(out)}


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    from ..checks.job import quantised  # torch

    case = job.case
    checks = Checks()
    tol = job.tolerance("sinkhorn")
    sizes = job.counts("teacher")
    for rank, out in enumerate(ranks):
        checks.add("sinkhorn", "dist_vs_single", out["q"], shard(single["q"], sizes, rank, 0), tol,
                   rank=rank)
    logits = quantised(job.data()["teacher"], case.teacher_dtype)
    checks.add("sinkhorn", "single_vs_oracle", single["q"],
               golden.sinkhorn(logits, case.teacher_temp, case.n_iterations), tol)
    if checks.failed_any():
        checks.diagnose(_diagnosis(job, logits, ranks, single))
    return checks.result()


def _diagnosis(job: Job, logits: Any, ranks: list[dict], single: dict) -> Diagnosis:
    """Which known Sinkhorn mistake gives every rank's output (and the one process's)."""
    from ..checks.job import quantised  # torch

    case = job.case
    observed = [(out["q"], job.tolerance("sinkhorn")) for out in [*ranks, single]]

    def predict(flaws: sharded.Flaws) -> list[Any]:
        temp, n = case.teacher_temp, case.n_iterations
        world, pick = modelled_world(job, flaws)
        rows = logits if world is job else quantised(world.data()["teacher"], case.teacher_dtype)
        sizes = world.counts("teacher")
        shards = [shard(rows, sizes, rank, 0) for rank in range(len(sizes))]
        return [*sharded.sinkhorn(shards, temp, n, flaws)[pick],
                *sharded.sinkhorn([logits], temp, n, flaws)]

    return explain("sinkhorn", observed, predict)


KIND = Kind(
    name="sinkhorn",
    order=1,
    keys=frozenset({"batch_per_rank", "n_iterations", "num_samples", "group_size"}),
    tensors={"teacher": Tensor(1, "batch", "teacher")},
    needs=("sinkhorn_knopp",),
    rank_program=rank_program,
    verify=verify,
)
