"""`dino-harness bench overlap` and `dino-harness bench pool`.

overlap: run the overlap catalogue (cases/overlap/, or --cases) against the target on
         warm rank pools; the report (the report schema, schema 1, with ``metrics``,
         ``prototypes``, ``batch_per_rank``, ``iterations``, a per-rank ``timeline`` and a
         ``bench`` section) under reports/<run-id>/ and at --json.
pool:    the warm-pool benchmark of harness.runtime.bench: one result per world size and a
         ``bench`` section with its rows; --json keeps the benchmark's own keys too.

Both print the report as ``dino-harness report`` shows it again later: the tables are the
report package's sections, not this module's.

Exit codes: harness.outcome (0 ok · 1 the target raised · 2 bad input · 3 a rank hung or
crashed).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ..errors import UsageError
from ..results import CaseResult
from .common import announce, case_paths, require_runnable, world_sizes_arg

if TYPE_CHECKING:
    from ..report.model import BenchSection

QUICK_ITERATIONS = 20
QUICK_WARMUP = 2


def bench_command(args: argparse.Namespace) -> int:
    if args.bench == "overlap":
        return overlap_command(args)
    if args.bench == "pool":
        return pool_command(args)
    raise UsageError(f"unknown benchmark {args.bench!r}; expected overlap or pool")


# ----------------------------------------------------------------------------- overlap

def overlap_plan(args: argparse.Namespace) -> list[tuple[Any, int]]:
    """(case, world size) pairs, world size outer (one warm pool at a time)."""
    from ..overlap.cases import load_overlap_cases, plan

    cases = load_overlap_cases(case_paths(getattr(args, "cases", None), subdir="overlap"))
    world_sizes = world_sizes_arg(args.world_sizes, args.backend)
    quick = bool(getattr(args, "quick", False))
    if quick and not any(c.quick for c in cases):
        cases = cases[:1]  # explicit files without a quick case: their first case
        quick = False
    pairs = plan(cases, args.backend, world_sizes, quick=quick)
    if text := getattr(args, "filter", None):
        pairs = [(c, ws) for c, ws in pairs if text in c.test_id(args.backend, ws)]
    if not pairs:
        names = ", ".join(c.name for c in cases) or "none"
        raise UsageError(f"no overlap case runs on backend {args.backend!r} at world sizes "
                         f"{world_sizes}{' with --quick' if quick else ''}"
                         f"{f' and --filter {text!r}' if text else ''} (cases: {names}; "
                         "check their 'backends' and 'world_sizes')")
    return sorted(pairs, key=lambda p: p[1])  # stable: case order kept within a world size


def overlap_command(args: argparse.Namespace) -> int:
    from ..overlap.runner import PG_TIMEOUT_S, enable_nccl_timing, run_case
    from ..report import (
        BenchSection,
        LiveView,
        RunWriter,
        collect_environment,
        describe_target,
        render_report,
        write_json,
    )
    from ..runtime.executor import PoolExecutor
    from ..targets import load_target

    target = load_target(args.impl, args.api, args.adapter)  # TargetError: exit 2 now
    announce(target)
    pairs = overlap_plan(args)
    require_runnable(args.backend, sorted({ws for _, ws in pairs}))
    quick = bool(getattr(args, "quick", False))
    ddp = bool(getattr(args, "ddp", False))
    variants = [False, True] if ddp else [False]
    if args.backend == "nccl":
        enable_nccl_timing()  # read at process-group creation: before any pool starts

    report_dir = Path(getattr(args, "report_dir", None) or "reports")
    writer = RunWriter(report_dir, environment=collect_environment(args.backend),
                       target=describe_target(target.spec.impl, target.spec.api))
    results: list[CaseResult] = []
    t0 = time.perf_counter()
    # NCCL pools of different world sizes share the GPUs: keep one warm at a time.
    with PoolExecutor(pg_timeout_s=PG_TIMEOUT_S, max_pools=1) as executor, LiveView() as live:
        live.start(len(pairs) * len(variants))
        for case, ws in pairs:
            for use_ddp in variants:
                label = f"{case.name}{'-ddp' if use_ddp else ''}[{args.backend}-ws{ws}]"
                live.case_started(label, f"{args.backend} x{ws}")
                result = run_case(executor, case, args.backend, ws, impl=target.spec.impl,
                                  api=target.spec.api, adapter=target.spec.adapter,
                                  ddp=use_ddp,
                                  iterations=QUICK_ITERATIONS if quick else None,
                                  warmup=QUICK_WARMUP if quick else None)
                writer.add(result)
                results.append(result)
                live.case_finished(result)
    report = writer.finish_report(bench=BenchSection(
        "overlap", seconds=round(time.perf_counter() - t0, 2), extra={"quick": quick, "ddp": ddp}))
    if args.json:
        write_json(Path(args.json), report)

    console = Console()
    render_report(report, console)
    console.print(f"report: {writer.report_path}" + (f"   json: {args.json}" if args.json else "")
                  + f"   ({time.perf_counter() - t0:.1f} s)")
    return report.exit_code


# -------------------------------------------------------------------------------- pool

def pool_command(args: argparse.Namespace) -> int:
    from ..report import RunWriter, collect_environment, render_report, write_json

    try:
        from ..runtime.bench import bench_pool
    except ImportError as exc:  # pragma: no cover - the runtime ships it
        raise UsageError(f"the pool benchmark is not available: {exc}") from exc
    if args.repeats < 1:
        raise UsageError(f"--repeats: expected an int >= 1, got {args.repeats}")
    sizes = world_sizes_arg(args.world_sizes, "gloo")
    t0 = time.perf_counter()
    result = bench_pool(world_sizes=sizes, repeats=args.repeats)
    backend = str(result.get("backend", "gloo"))
    writer = RunWriter(Path(getattr(args, "report_dir", None) or "reports"),
                       environment={**collect_environment(backend), **result.get("environment", {})},
                       target={"impl": "harness.runtime.bench", "program": result.get("program")})
    for row_result in pool_results(result):
        writer.add(row_result)
    report = writer.finish_report(bench=pool_section(result, time.perf_counter() - t0),
                                  extra=result)
    console = Console()
    render_report(report, console)
    if args.json:
        write_json(Path(args.json), report)
        console.print(f"json: {args.json}")
    return report.exit_code


def pool_results(result: dict[str, Any]) -> list[CaseResult]:
    """One result per world size: measured (pass) or skipped with the reason."""
    backend = str(result.get("backend", "gloo"))
    out = []
    for ws, row in (result.get("world_sizes") or {}).items():
        skipped = row.get("skipped")
        out.append(CaseResult("pool-warm-vs-spawn", "pool", backend, int(ws),
                              "skip" if skipped else "pass", 0.0,
                              skip_reason=str(skipped) if skipped else None))
    return out


def pool_section(result: dict[str, Any], seconds: float) -> BenchSection:
    """The ``bench`` section of a pool report: its rows per world size and its targets."""
    from ..report import BenchSection

    keys = ("backend", "targets", "zygote_boot_measured_s")
    return BenchSection("pool", seconds=round(seconds, 2), world_sizes=result.get("world_sizes") or {},
                        extra={k: result[k] for k in keys if k in result})
