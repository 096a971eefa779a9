"""`dino-harness selfcheck`: the proof that the checks can fail.

Runs the catalogue against the reference (everything must pass) and against every
planted fault (each must be caught by at least one case: a failing check, or the hang or
crash the fault is designed to cause -- an unrelated error does not count),
and prints which cases caught which fault; then the overlap metric's controls (a
fake-async update_center must hide nothing, the reference must hide most of its
all-reduce). Exit 1 if any fault survives, the reference fails anything, or the
overlap metric cannot tell the two controls apart.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..cases import load_cases
from ..checks.runner import run_all
from ..errors import UsageError
from ..faults import FAULTS, catches, module_name
from ..overlap.controls import controls as overlap_controls
from ..results import CaseResult
from ..runtime.executor import PoolExecutor
from ..targets import load_target
from .common import case_paths, plan_cases, require_runnable, world_sizes_arg

HANG_TIMEOUT_S = 10.0


def selfcheck_command(args: argparse.Namespace) -> int:
    console = Console()
    cases = load_cases(case_paths(args.cases))
    world_sizes = world_sizes_arg(args.world_sizes, args.backend)
    names = list(FAULTS) if not args.faults else [n.strip() for n in args.faults.split(",")]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise UsageError(f"--faults: unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    plan = plan_cases(cases, args.backend, world_sizes, None)
    require_runnable(args.backend, sorted({ws for _, _, ws in plan}))
    # A planted hang must cost seconds, not the default 30 s process-group timeout; every
    # legitimate collective of the catalogue completes in well under a second.
    executor = PoolExecutor(pg_timeout_s=HANG_TIMEOUT_S)
    rows, summary = [], {"reference": {}, "faults": {}}
    try:
        start = time.perf_counter()
        reference = run_all(plan, executor, load_target("harness.losses"))
        bad = [r for r in reference if r.status in ("fail", "error")]
        summary["reference"] = {"cases": len(reference), "false_alarms": [r.test_id for r in bad],
                                "seconds": round(time.perf_counter() - start, 2)}
        rows.append(("reference", "must pass", "PASS" if not bad else "FALSE ALARM",
                     ", ".join(r.test_id for r in bad[:6]) or f"{len(reference)} cases passed"))
        for name in names:
            fault = FAULTS[name]
            fault_plan = [p for p in plan if p[0].kind in fault.kinds]
            start = time.perf_counter()
            results = run_all(fault_plan, executor, load_target(module_name(name)))
            caught = [r for r in results
                      if catches(fault, r.status, r.extra.get("failure"),
                                 sum(not c.passed for c in r.checks))]
            wrong = [r for r in results if r.status in ("fail", "error") and r not in caught]
            summary["faults"][name] = {
                "description": fault.description,
                "caught_by": [_why(r) for r in caught],
                "failed_otherwise": [_why(r) for r in wrong],
                "cases_run": len(results),
                "seconds": round(time.perf_counter() - start, 2),
            }
            verdict = f"caught by {len(caught)}/{len(results)}" if caught else "SURVIVED"
            rows.append((name, fault.description, verdict,
                         ", ".join(r.test_id for r in caught[:4]) + (" ..." if len(caught) > 4 else "")))
        if args.no_overlap:
            summary["overlap_controls"] = {"skipped": True, "passed": False,
                                           "text": "skipped (--no-overlap)"}
        else:
            controls = overlap_controls(world_size=2)
            summary["overlap_controls"] = {k: v for k, v in controls.items() if k != "results"}
        controls = summary["overlap_controls"]
        verdict = ("skipped" if controls["skipped"] else
                   "told apart" if controls["passed"] else "NOT TOLD APART")
        rows.append(("overlap controls", "fake-async update_center vs the reference", verdict,
                     controls["text"]))
    finally:
        executor.close()

    table = Table(title="selfcheck: every planted fault must be caught", show_lines=False)
    for column in ("target", "bug", "verdict", "caught by (first cases)"):
        table.add_column(column, overflow="fold")
    for name, description, verdict, where in rows:
        style = "red" if verdict in ("SURVIVED", "FALSE ALARM", "NOT TOLD APART") else "green"
        table.add_row(name, description, f"[{style}]{verdict}[/{style}]", where)
    console.print(table)
    survived = [n for n, f in summary["faults"].items() if not f["caught_by"]]
    false_alarms = summary["reference"]["false_alarms"]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
    controls_ok = summary["overlap_controls"]["passed"] or summary["overlap_controls"]["skipped"]
    ok = not survived and not false_alarms and controls_ok
    console.print(
        f"[bold {'green' if ok else 'red'}]selfcheck: {len(names) - len(survived)}/{len(names)} "
        f"faults caught, {len(false_alarms)} false alarm(s) on the reference, overlap metric "
        f"{'tells fake from real async' if controls_ok else 'CANNOT tell fake from real async'}[/]"
    )
    return 0 if ok else 1


def _why(result: CaseResult) -> dict[str, str]:
    failing = [c for c in result.checks if not c.passed]
    if failing:
        worst = failing[0]
        reason = f"{worst.name} {worst.comparison}" + (f" rank {worst.rank}" if worst.rank is not None else "")
    else:
        reason = f"{result.extra.get('failure', 'error')}: {result.error.type if result.error else ''}"
    return {"case": result.test_id, "reason": reason}
