"""Parent side: run one overlap case on a warm pool and turn the ranks' raw times into a
:class:`~harness.results.CaseResult` (report schema 1 plus the overlap fields)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from typing import TYPE_CHECKING, Any

from ..outcome import rank_failure_fields, verify_failure_fields
from ..results import CaseResult
from .cases import OverlapCase
from .clock_cuda import TIMING_ENV
from .metrics import aggregate, assess, classify, headline, verdict_text

if TYPE_CHECKING:
    from ..runtime.executor import Executor

# The overlap cases run for minutes: a collective stuck for this long is a hang.
PG_TIMEOUT_S = 60.0

KIND = "overlap"
PROGRAM = "harness.overlap.program:overlap_rank"  # program.py; not imported here (torch)


def enable_nccl_timing() -> None:
    """NCCL reads TORCH_NCCL_ENABLE_TIMING when a process group is created, and pool
    workers copy this process's environment when they start: set it before any NCCL pool
    starts (an explicit value from the user is kept)."""
    os.environ.setdefault(TIMING_ENV, "1")


def result_name(case: OverlapCase, ddp: bool) -> str:
    return f"{case.name}-ddp" if ddp else case.name


def run_case(executor: Executor, case: OverlapCase, backend: str, world_size: int, *,
             impl: str = "harness.losses", api: str = "seed", ddp: bool = False,
             iterations: int | None = None, warmup: int | None = None,
             log_timed: bool = False, adapter: str | None = None) -> CaseResult:
    """Run the protocol on ``world_size`` ranks of ``executor``.

    Returns a "skip" result when the spec cannot run here (NCCL without enough GPUs), a
    failed one when a rank raised, crashed or hung (:func:`harness.outcome.rank_failure_fields`),
    and then with the command that reruns it (``repro``), else a "pass" result carrying
    the metrics. ``log_timed``: keep the timed collectives in the harness's collective log
    (program.py; by default they bypass it)."""
    result = _run_case(executor, case, backend, world_size, impl=impl, api=api, ddp=ddp,
                       iterations=iterations, warmup=warmup, log_timed=log_timed,
                       adapter=adapter)
    if result.status in ("fail", "error"):
        result.extra["repro"] = repro(case, backend, world_size, impl=impl, api=api, ddp=ddp,
                                      adapter=adapter)
    return result


def repro(case: OverlapCase, backend: str, world_size: int, *, impl: str, api: str,
          ddp: bool, adapter: str | None = None) -> str:
    """The one command line that reruns just this overlap case at this world size."""
    style = ["--adapter", adapter] if adapter else ["--api", api]
    args = ["dino-harness", "bench", "overlap", "--impl", impl, *style]
    if case.file:
        args += ["--cases", case.file]
    args += ["--filter", case.test_id(backend, world_size), "--world-sizes", str(world_size),
             "--backend", backend] + (["--ddp"] if ddp else [])
    return shlex.join(args)


def _run_case(executor: Executor, case: OverlapCase, backend: str, world_size: int, *,
              impl: str, api: str, ddp: bool, iterations: int | None,
              warmup: int | None, log_timed: bool, adapter: str | None) -> CaseResult:
    from ..runtime import PoolUnavailable, RankFailure

    if iterations is not None or warmup is not None:
        case = dataclasses.replace(case, iterations=iterations or case.iterations,
                                   warmup=warmup or case.warmup)
    name = result_name(case, ddp)
    base_extra: dict[str, Any] = {
        "prototypes": case.K, "batch_per_rank": case.batch_per_rank, "iterations": case.iterations,
        "ddp": ddp, "workload": workload_info(case),
    }
    reason = executor.unavailable_reason(backend, world_size)
    if reason is not None:
        return CaseResult(name, KIND, backend, world_size, "skip", 0.0, skip_reason=reason,
                          extra=base_extra)
    if backend == "nccl":
        enable_nccl_timing()
    payload = {"case": case.to_payload(), "impl": impl, "api": api, "ddp": ddp,
               "log_timed": log_timed, "adapter": adapter}
    t0 = time.perf_counter()
    try:
        ranks = executor.run(backend, world_size, PROGRAM, payload, case.deadline_s)
    except PoolUnavailable as exc:
        return CaseResult(name, KIND, backend, world_size, "skip", time.perf_counter() - t0,
                          skip_reason=str(exc), extra=base_extra)
    except RankFailure as failure:
        fields = rank_failure_fields(failure)
        return CaseResult(name, KIND, backend, world_size, duration_s=time.perf_counter() - t0,
                          **{**fields, "extra": {**base_extra, **fields["extra"]}})
    duration = time.perf_counter() - t0
    try:
        return build_result(name, backend, world_size, case, ranks, duration, base_extra)
    except Exception as exc:  # noqa: BLE001 - odd rank output must not stop the bench
        fields = verify_failure_fields(exc, "building the overlap metrics failed")
        return CaseResult(name, KIND, backend, world_size, duration_s=duration,
                          **{**fields, "extra": {**base_extra, **fields["extra"]}})


def workload_info(case: OverlapCase) -> dict[str, Any]:
    return {"head": case.head_shape(), "views_student": case.views_student,
            "views_teacher": case.views_teacher, "dtype": case.dtype,
            "teacher_dtype": case.teacher_dtype_name, "warmup": case.warmup,
            "description": case.description}


def build_result(name: str, backend: str, world_size: int, case: OverlapCase,
                 ranks: list[dict[str, Any]], duration: float,
                 base_extra: dict[str, Any]) -> CaseResult:
    agg = aggregate(ranks, seed=case.seed)
    metrics = agg["metrics"]
    inconclusive, reasons, noisy, notes, flags = assess(metrics, world_size=world_size,
                                                        has_comm=agg["has_comm"])
    rank_notes = sorted({n for res in ranks for n in res.get("notes") or []})
    extra = {
        **base_extra,
        "clock": ranks[0].get("clock"),
        "exposed_basis": agg["exposed_basis"],
        "verdict": verdict_text(metrics, has_comm=agg["has_comm"]),
        "classification": classify(metrics),
        "headline": headline(metrics),
        "timed_collectives_logged": bool(ranks[0].get("log_timed", False)),
        "inconclusive": inconclusive,
        "inconclusive_reasons": reasons,
        "noisy": noisy,
        "notes": notes + rank_notes,
        **flags,
        "collectives": ranks[0].get("collectives") or [],
        "threads_per_rank": ranks[0].get("threads"),
        "per_rank": agg["per_rank"],
        "representative_iteration": agg["representative_iteration"],
    }
    if agg["timeline"] is not None:
        extra["timeline"] = agg["timeline"]
    return CaseResult(name, KIND, backend, world_size, "pass", duration, metrics=metrics,
                      extra=extra)
