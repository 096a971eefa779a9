"""`dino-harness bench overlap` and `dino-harness bench pool`.

overlap: run the overlap catalogue (cases/overlap/, or --cases) against the target on
         warm rank pools, one table per backend x world size (the report package's
         overlap table: medians, intervals, a hidden-vs-exposed bar), each result's
         verdict and notes, the DDP comparison with --ddp; the report (DESIGN §4 schema 1,
         with ``metrics``, ``prototypes``, ``batch_per_rank``, ``iterations`` and a
         per-rank ``timeline``) under reports/<run-id>/ and at --json.
pool:    the warm-pool benchmark of harness.runtime.bench, as a table and --json.

Exit codes: harness.outcome (0 ok · 1 the target raised · 2 bad input · 3 a rank hung or
crashed).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import UsageError
from ..outcome import ExitCode, exit_code_of
from ..results import CaseResult
from .common import case_paths, require_runnable, world_sizes_arg

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
    if not pairs:
        names = ", ".join(c.name for c in cases) or "none"
        raise UsageError(f"no overlap case runs on backend {args.backend!r} at world sizes "
                         f"{world_sizes}{' with --quick' if quick else ''} (cases: {names}; "
                         "check their 'backends' and 'world_sizes')")
    return sorted(pairs, key=lambda p: p[1])  # stable: case order kept within a world size


def overlap_command(args: argparse.Namespace) -> int:
    from ..overlap.runner import PG_TIMEOUT_S, enable_nccl_timing, run_case
    from ..report import (
        LiveView,
        RunWriter,
        collect_environment,
        describe_target,
        write_json,
    )
    from ..runtime.executor import PoolExecutor
    from ..targets import load_target

    target = load_target(args.impl, args.api)  # TargetError -> exit 2, before any pool starts
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
                                  api=target.spec.api, ddp=use_ddp,
                                  iterations=QUICK_ITERATIONS if quick else None,
                                  warmup=QUICK_WARMUP if quick else None)
                writer.add(result)
                results.append(result)
                live.case_finished(result)
    report_path = writer.finish()
    report = writer.report()
    report["bench"] = {"name": "overlap", "quick": quick, "ddp": ddp,
                       "seconds": round(time.perf_counter() - t0, 2)}
    write_json(report_path, report)
    if args.json:
        write_json(Path(args.json), report)

    console = Console()
    render_overlap(report, console)
    console.print(f"report: {report_path}" + (f"   json: {args.json}" if args.json else "")
                  + f"   ({time.perf_counter() - t0:.1f} s)")
    return exit_code_of(results)


def render_overlap(report: Mapping[str, Any], console: Console) -> None:
    """One overlap table per backend x world size, then each result's verdict and notes,
    the DDP comparison, skips and errors."""
    from ..report.console import ByWidth, errors_group, overlap_list, overlap_table

    results = [r for r in report.get("results") or [] if isinstance(r, Mapping)]
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in results:
        if r.get("status") == "pass" and r.get("metrics"):
            groups.setdefault((str(r.get("backend")), int(r.get("world_size", 0))), []).append(r)
    for (backend, ws), rs in sorted(groups.items()):
        console.rule(Text(f"{backend} · {ws} rank{'s' if ws != 1 else ''}", style="bold cyan"))
        console.print(ByWidth(lambda width, rs=rs: overlap_table(rs, width) if width >= 120
                              else overlap_list(rs)))
        for r in rs:
            console.print(_verdict_line(r))
            for reason in r.get("inconclusive_reasons") or []:
                console.print(Text(f"    inconclusive: {reason}", style="yellow"))
            noisy = [str(text).split(":", 1)[0] for text in r.get("noisy") or []]
            if noisy:
                console.print(Text(f"    noisy (wide 95% interval): {', '.join(noisy)} — "
                                   "details in the report's 'noisy' field", style="dim yellow"))
            for note in r.get("notes") or []:
                console.print(Text(f"    note: {note}", style="dim"))
    ddp_table = ddp_comparison(results)
    if ddp_table is not None:
        console.print(ddp_table)
    for r in results:
        if r.get("status") == "skip":
            console.print(Text(f"skipped {r.get('case')}[{r.get('backend')}-ws{r.get('world_size')}]: "
                               f"{r.get('skip_reason')}", style="yellow"))
        elif r.get("status") == "error":
            console.print(Text(f"ERROR {r.get('case')}[{r.get('backend')}-ws{r.get('world_size')}] "
                               f"({r.get('failure', 'error')})", style="bold magenta"))
            console.print(errors_group(r))


def _verdict_line(r: Mapping[str, Any]) -> Text:
    flag = ""
    style = "green"
    if r.get("inconclusive"):
        flag, style = "  [INCONCLUSIVE]", "yellow"
    if r.get("comm_exceeds_backward"):
        flag += "  [comm > backward]"
    return Text.assemble((f"  {r.get('case')} ws{r.get('world_size')}: ", "bold"),
                         (str(r.get("verdict", "")), style), (flag, "bold yellow"))


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


DDP_COLUMNS = (("bwd_ms", "bwd ms", False), ("comm_ms", "comm ms", False),
               ("exposed_ms", "exposed ms", False), ("hidden_fraction", "hidden", True),
               ("interference", "interference", True), ("efficiency", "efficiency", True))


def ddp_pairs(results: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(plain, ddp) result pairs of the same case, backend and world size."""
    plain = {(r.get("case"), r.get("backend"), r.get("world_size")): r for r in results
             if r.get("metrics") and not r.get("ddp")}
    pairs = []
    for r in results:
        if r.get("metrics") and r.get("ddp"):
            base = plain.get((str(r.get("case", "")).removesuffix("-ddp"), r.get("backend"),
                              r.get("world_size")))
            if base is not None:
                pairs.append((base, r))
    return pairs


def _change(a: Mapping[str, Any], b: Mapping[str, Any], key: str, pct: bool) -> str:
    def f(v: float) -> str:
        if math.isnan(v):
            return "—"
        return f"{v:.0%}" if pct else f"{v:.3g}"

    return f"{f(_num(a['metrics'].get(key)))} → {f(_num(b['metrics'].get(key)))}"


def ddp_comparison(results: Sequence[Mapping[str, Any]]) -> Any:
    """Plain → DDP, per case and world size: what sharing the group with the gradient
    buckets does to backward, the all-reduce, and how much of it hides. A table on wide
    consoles, a line per pair on narrow ones; None without pairs."""
    from rich.console import Group

    from ..report.console import ByWidth

    pairs = ddp_pairs(results)
    if not pairs:
        return None
    title = Text("DDP vs plain (plain → ddp): the center all-reduce sharing the group with "
                 "the gradient buckets", style="bold")

    def build(width: int) -> Any:
        if width >= 120:
            t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
            t.add_column("case")
            t.add_column("ws", justify="right")
            for _, header, _ in DDP_COLUMNS:
                t.add_column(header, justify="right", no_wrap=True)
            for base, d in pairs:
                t.add_row(str(base.get("case")), str(base.get("world_size")),
                          *[_change(base, d, key, pct) for key, _, pct in DDP_COLUMNS])
            return t
        lines: list[Any] = [title]
        for base, d in pairs:
            parts = " · ".join(f"{header} {_change(base, d, key, pct)}"
                               for key, header, pct in DDP_COLUMNS)
            lines.append(Text.assemble((f"  {base.get('case')} ws{base.get('world_size')}: ", "bold"),
                                       parts))
        return Group(*lines)

    return ByWidth(build)


# -------------------------------------------------------------------------------- pool

def pool_command(args: argparse.Namespace) -> int:
    from ..report import write_json

    try:
        from ..runtime.bench import bench_pool
    except ImportError as exc:  # pragma: no cover - the runtime ships it
        raise UsageError(f"the pool benchmark is not available: {exc}") from exc
    if args.repeats < 1:
        raise UsageError(f"--repeats: expected an int >= 1, got {args.repeats}")
    sizes = world_sizes_arg(args.world_sizes, "gloo")
    result = bench_pool(world_sizes=sizes, repeats=args.repeats)
    console = Console()
    console.print(pool_table(result))
    if args.json:
        write_json(Path(args.json), result)
        console.print(f"json: {args.json}")
    return ExitCode.OK


def pool_table(result: Mapping[str, Any]) -> Table:
    t = Table(title=Text(f"warm pool vs spawn-per-case ({result.get('backend', 'gloo')}); "
                         f"zygote boot {result.get('zygote_boot_measured_s', '?')} s", style="bold"),
              title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for col in ("ws", "pool start s", "cold start s", "warm case ms", "spawn case ms", "ratio",
                "targets"):
        t.add_column(col, justify="right", overflow="fold", min_width=2)

    def g(v: Any) -> str:
        x = _num(v)
        if math.isnan(x):
            return "—"
        return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"
    targets = result.get("targets") or {}
    for ws, row in (result.get("world_sizes") or {}).items():
        if "skipped" in row:
            t.add_row(str(ws), Text(f"skipped: {row['skipped']}", style="yellow"), "", "", "", "", "")
            continue
        ok = row.get("meets_targets")
        t.add_row(
            str(ws), g(row.get("pool_start_s")), g(row.get("pool_start_cold_s")),
            f"{g(row.get('warm_case_ms_median'))} [{g(row.get('warm_case_ms_p10'))}–"
            f"{g(row.get('warm_case_ms_p90'))}]",
            f"{g(row.get('spawn_case_ms_median'))} [{g(row.get('spawn_case_ms_p10'))}–"
            f"{g(row.get('spawn_case_ms_p90'))}]",
            f"{g(row.get('spawn_over_warm_ratio'))}×",
            Text("met" if ok else "missed", style="green" if ok else "red"),
        )
    t.caption = (f"targets: warm case ≤ {targets.get('warm_case_ms_median_max', '?')} ms, "
                 f"ratio ≥ {targets.get('spawn_over_warm_ratio_min', '?')}× at 2 ranks")
    return t
