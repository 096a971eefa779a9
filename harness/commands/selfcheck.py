"""`dino-harness selfcheck`: the proof that the checks can fail.

Runs the catalogue against the reference (everything must pass) and against every
planted fault (each must be caught by at least one case: a failing check, or the hang or
crash the fault is designed to cause -- an unrelated error does not count),
and prints which cases caught which fault and the diagnoses they produced (a numeric
fault's own mistake must be named by at least one); then the overlap metric's controls (a
fake-async update_center must hide nothing, the reference must hide most of its
all-reduce). Exit 1 if any fault survives or goes undiagnosed, the reference fails anything, or the
overlap metric cannot tell the two controls apart.

Its report (the report schema, schema 1) holds every result, each tagged with the target
it ran against (``selfcheck_target``: "reference" or the fault), and a ``selfcheck``
section that decides the exit code, so ``dino-harness report`` shows it again and returns
the same code. ``--json`` keeps its former top-level keys (reference, faults,
overlap_controls) beside the schema's.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from ..cases import load_cases
from ..checks.runner import run_all
from ..errors import UsageError
from ..faults import FAULTS, catches, mistake_of, module_name
from ..overlap.controls import controls as overlap_controls
from ..report import (
    Report,
    RunWriter,
    SelfcheckSection,
    describe_target,
    render_report,
    write_json,
)
from ..report.environment import collect_environment
from ..report.model import Catch, FaultOutcome
from ..report.sections import REFERENCE, SELFCHECK_TARGET
from ..results import CaseResult
from ..runtime.executor import PoolExecutor
from ..targets import load_target
from .common import case_paths, plan_cases, require_memory, require_runnable, world_sizes_arg

HANG_TIMEOUT_S = 10.0


def selfcheck_command(args: argparse.Namespace) -> int:
    console = Console()
    cases = load_cases(case_paths(args.cases, args.family))
    world_sizes = world_sizes_arg(args.world_sizes, args.backend, args.family)
    names = ([n for n, f in FAULTS.items() if f.family == args.family] if not args.faults
             else [n.strip() for n in args.faults.split(",")])
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise UsageError(f"--faults: unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
    plan = plan_cases(cases, args.backend, world_sizes, None)
    require_runnable(args.backend, sorted({ws for _, _, ws in plan}))
    require_memory(plan)
    writer = RunWriter(Path(getattr(args, "report_dir", None) or "reports"),
                       environment=collect_environment(args.backend),
                       target={**describe_target("harness.losses", "seed"), "faults": names})

    def recorder(under_test: str):  # tag each result with what it ran against, stream it
        def on_result(result: CaseResult) -> None:
            result.extra[SELFCHECK_TARGET] = under_test
            writer.add(result)
        return on_result

    # A planted hang must cost seconds, not the default 30 s process-group timeout; every
    # legitimate collective of the catalogue completes in well under a second.
    executor = PoolExecutor(pg_timeout_s=HANG_TIMEOUT_S)
    section = SelfcheckSection()
    try:
        start = time.perf_counter()
        reference = run_all(plan, executor, load_target("harness.losses"),
                            on_result=recorder(REFERENCE))
        section.reference_cases = len(reference)
        section.false_alarms = [r.test_id for r in reference if r.status in ("fail", "error")]
        section.reference_seconds = round(time.perf_counter() - start, 2)
        for name in names:
            fault = FAULTS[name]
            fault_plan = [p for p in plan if p[0].kind in fault.kinds]
            start = time.perf_counter()
            results = run_all(fault_plan, executor, load_target(module_name(name)),
                              on_result=recorder(name))
            caught = [r for r in results
                      if catches(fault, r.status, r.extra.get("failure"),
                                 sum(not c.passed for c in r.checks))]
            wrong = [r for r in results if r.status in ("fail", "error") and r not in caught]
            mistake = mistake_of(fault)
            section.faults.append(FaultOutcome(
                name, fault.description, caught_by=[_why(r) for r in caught],
                failed_otherwise=[_why(r) for r in wrong], cases_run=len(results),
                seconds=round(time.perf_counter() - start, 2),
                mistake=mistake.name if mistake else None,
                diagnoses=dict(Counter(str(r.extra["diagnosis"]) for r in caught
                                       if r.extra.get("diagnosis")).most_common()),
                named=sum(bool(mistake) and mistake.name in r.extra.get("mistakes", ())
                          for r in caught)))
        if args.no_overlap:
            section.overlap_controls = {"skipped": True, "passed": False,
                                        "text": "skipped (--no-overlap)"}
        else:
            controls = overlap_controls(world_size=2)
            section.overlap_controls = {k: v for k, v in controls.items() if k != "results"}
    finally:
        executor.close()

    report = finish(writer, section)
    render_report(report, console)
    if args.json:
        write_json(Path(args.json), report)
    console.print(f"report: {writer.report_path}" + (f"   json: {args.json}" if args.json else ""))
    return report.exit_code


def finish(writer: RunWriter, section: SelfcheckSection) -> Report:
    """The report with its ``selfcheck`` section; the section's keys also stay at the top
    level, where tools that read ``selfcheck --json`` find them."""
    return writer.finish_report(selfcheck=section, extra=section.to_json())


def _why(result: CaseResult) -> Catch:
    failing = [c for c in result.checks if not c.passed]
    if failing:
        worst = failing[0]
        reason = f"{worst.name} {worst.comparison}" + (f" rank {worst.rank}" if worst.rank is not None else "")
    else:
        reason = f"{result.extra.get('failure', 'error')}: {result.error.type if result.error else ''}"
    return Catch(result.test_id, reason)
