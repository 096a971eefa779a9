"""Sinkhorn-Knopp over the global batch: each rank's rows of the single-process result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import golden
from ..cases import shard
from ..cases.kind import Kind, Tensor
from ..checks.collect import Checks
from ..checks.diagnose import Diagnosis, explain
from ..golden import sharded

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    from ..checks.job import num_samples_arg, to_host, to_torch  # torch: on the ranks only

    case, api = job.case, job.target_api().api
    sizes = case.batch_sizes(job.world_size)
    local = to_torch(job.shard("teacher", ctx.rank), case.teacher_dtype, ctx.device)
    num_samples = num_samples_arg(case.num_samples, local.shape[0], sum(sizes), ctx.device)
    out = api.sinkhorn_knopp(local, case.teacher_temp, num_samples, case.n_iterations)
    return {"q": to_host(out)}


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    from ..checks.job import quantised  # torch

    case = job.case
    checks = Checks()
    tol = job.tolerance("sinkhorn")
    sizes = case.batch_sizes(job.world_size)
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
    case = job.case
    sizes = case.batch_sizes(job.world_size)
    shards = [shard(logits, sizes, rank, 0) for rank in range(len(sizes))]
    observed = [(out["q"], job.tolerance("sinkhorn")) for out in [*ranks, single]]

    def predict(flaws: sharded.Flaws) -> list[Any]:
        temp, n = case.teacher_temp, case.n_iterations
        return [*sharded.sinkhorn(shards, temp, n, flaws), *sharded.sinkhorn([logits], temp, n, flaws)]

    return explain("sinkhorn", observed, predict)


KIND = Kind(
    name="sinkhorn",
    order=1,
    keys=frozenset({"batch_per_rank", "n_iterations", "num_samples"}),
    tensors={"teacher": Tensor(1, "batch", "teacher")},
    needs=("sinkhorn_knopp",),
    rank_program=rank_program,
    verify=verify,
)
