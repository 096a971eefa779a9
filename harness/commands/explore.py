"""`dino-harness explore`: search the case space for this target's mistakes (harness.explore).

Prints a line when a new kind of failure first shows and when each finding is shrunk and
rerun from its case file, then the report (the search, the findings, each shrunk case's
panel with its diagnosis and rerun line). Writes ``<report-dir>/<run>/report.json`` (the
report schema, with an ``explore`` section) and the case files under
``<report-dir>/<run>/cases/``. Exit code: 0 nothing found, 1 a finding, 3 a finding is
a rank that hung or crashed (``harness.outcome`` on the shrunk cases' results); 2 bad
input before anything ran.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from rich.console import Console

from ..errors import UsageError
from ..explore import (
    Exploration,
    Finding,
    Limits,
    Signature,
    Space,
    explore,
    kinds_to_search,
    likely_cause,
    parse,
)
from ..explore.findings import Example
from ..report import RunWriter, collect_environment, describe_target, render_report, write_json
from ..report.explore_model import FINDING, ExploreSection, FindingRecord
from ..results import CaseResult
from ..targets import Target, load_target
from .common import announce, require_runnable

#: A rank that skips a collective must cost seconds, not the default 30 s group timeout
#: (as in selfcheck): every legitimate collective of a drawn case completes well within.
HANG_TIMEOUT_S = 10.0
DATABASE = ".explore-db"  # under --report-dir: Hypothesis's example database, per space


def explore_command(args: argparse.Namespace) -> int:
    from ..runtime import launched_by_torchrun
    from ..runtime.pool import boot_zygote

    if launched_by_torchrun():
        raise UsageError("explore runs its own rank pools: run it without torchrun")
    _check_numbers(args)
    boot_zygote(args.backend)
    from ..runtime.executor import PoolExecutor

    target = load_target(args.impl, args.api, args.adapter)
    announce(target)
    assumptions = parse(args.assume)
    if assumptions.world_size is not None and assumptions.world_size > args.max_world_size:
        raise UsageError(f"--assume world-size={assumptions.world_size} is above "
                         f"--max-world-size {args.max_world_size}")
    chosen, unsearched = kinds_to_search(target, _words(args.kinds))
    space = Space(tuple(chosen), args.max_world_size, args.backend, assumptions)
    low, high = space.world_sizes()
    require_runnable(args.backend, list(range(low, high + 1)))
    report_dir = Path(args.report_dir)
    limits = Limits(budget_s=args.budget, max_examples=args.max_examples,
                    max_findings=args.max_findings, seed=args.seed,
                    database=report_dir / DATABASE / _space_id(target, space))
    writer = RunWriter(report_dir, environment=collect_environment(args.backend),
                       target=describe_target(target.spec.impl, target.spec.api))
    print(f"# explore: kinds {', '.join(chosen)}; world sizes {low}..{high}; "
          f"assumptions: {', '.join(assumptions.words) or 'none'}; budget {args.budget:g} s; "
          f"seed {args.seed if args.seed is not None else 'random'}", flush=True)
    with PoolExecutor(pg_timeout_s=HANG_TIMEOUT_S) as executor:
        exploration = explore(target, space, limits, executor, writer.run_dir / "cases",
                              unsearched=unsearched, on_failure=_said_failure,
                              on_finding=_said_finding)
    for finding in exploration.findings:
        writer.add(shown_result(finding))
    report = writer.finish_report(explore=section(exploration, target))
    if args.json:
        write_json(Path(args.json), report)
    console = Console()
    render_report(report, console)
    console.print(f"report: {writer.report_path}")
    return report.exit_code


def section(exploration: Exploration, target: Target) -> ExploreSection:
    """The report's explore section."""
    p, limits, space = exploration.progress, exploration.limits, exploration.space
    return ExploreSection(
        seconds=round(p.seconds, 2), budget_s=limits.budget_s, seed=limits.seed,
        configurations=p.configurations, skipped=p.skipped, invalid=p.invalid, rounds=p.rounds,
        stopped=p.stopped, time_to_first_failure_s=None if p.first_failure_s is None
        else round(p.first_failure_s, 2), max_world_size=space.world_sizes()[1],
        kinds=list(space.kinds), unsearched=exploration.unsearched,
        assumptions=[list(line) for line in space.assumptions.lines()],
        findings=[record(f) for f in exploration.findings])


def shown_result(finding: Finding) -> CaseResult:
    """The result the report shows for a finding: the rerun from its case file, or -- when
    that did not fail the same way -- the search's own, under the file's case name."""
    if finding.reproduced and finding.reproduction is not None:
        result = finding.reproduction
    else:
        result = finding.example.result
        if finding.case_table is not None:
            result.case = str(finding.case_table["name"])
        if finding.rerun:
            result.extra["repro"] = finding.rerun
    result.extra[FINDING] = finding.key
    return result


def record(finding: Finding) -> FindingRecord:
    """A finding as the report holds it: the table is the case file's."""
    sig, table = finding.signature, finding.case_table or finding.example.table
    return FindingRecord(key=finding.key, quantity=sig.quantity, cause=list(sig.cause),
                         likely_cause=likely_cause(finding.example.result),
                         examples=finding.examples, first_seen_s=round(finding.first_seen_s, 2),
                         case=str(table["name"]), kind=str(table["kind"]),
                         world_size=int(table["world_sizes"][0]), file=finding.file,
                         reproduced=finding.reproduced, table=table)


def _said_failure(sig: Signature, example: Example) -> None:
    t = example.table
    print(f"  {example.seconds:6.1f}s  new failure {sig.key}: {t['kind']} "
          f"ws{t['world_sizes'][0]}", flush=True)


def _said_finding(finding: Finding) -> None:
    ok = {True: "reproduced", False: "NOT reproduced", None: "?"}[finding.reproduced]
    t = finding.example.table
    print(f"  shrunk  {finding.key}: {t['kind']} ws{t['world_sizes'][0]}, {finding.examples} "
          f"failing configuration(s); {ok} by run on {finding.file}", flush=True)


def _space_id(target: Target, space: Space) -> str:
    """The database folder of one (target, space): choices of another space mean nothing."""
    text = json.dumps([target.spec.impl, target.spec.api, target.spec.adapter, space.kinds,
                       space.max_world_size, space.backend, space.assumptions.words])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _words(items: list[str] | None) -> list[str] | None:
    if not items:
        return None
    return [w.strip() for item in items for w in item.split(",") if w.strip()]


def _check_numbers(args: argparse.Namespace) -> None:
    for flag, value in (("--max-world-size", args.max_world_size),
                        ("--max-examples", args.max_examples),
                        ("--max-findings", args.max_findings)):
        if value is not None and value < 1:
            raise UsageError(f"{flag}: expected an int >= 1, got {value}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed: expected an int >= 0, got {args.seed}")
