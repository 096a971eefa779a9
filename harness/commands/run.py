"""`dino-harness run` and `dino-harness list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..case import Case, expand, load_cases
from ..checks.runner import PoolExecutor, run_all
from ..errors import UsageError
from ..outcome import exit_code_of
from ..results import CaseResult
from ..targets import Target, load_target
from .common import case_paths, require_runnable, world_sizes_arg


def plan_cases(cases: list[Case], backend: str, world_sizes: list[int],
               text: str | None) -> list[tuple[Case, str, int]]:
    plan = expand(cases, [backend], world_sizes)
    if text:
        plan = [(c, b, w) for c, b, w in plan if text in c.test_id(b, w)]
    if not plan:
        raise UsageError(
            f"no case matches backend {backend!r}, world sizes {world_sizes}"
            + (f" and --filter {text!r}" if text else "")
        )
    return plan


def run_command(args: argparse.Namespace) -> int:
    from ..runtime import launched_by_torchrun

    target = load_target(args.impl, args.api)
    cases = load_cases(case_paths(args.cases))
    if launched_by_torchrun():
        from .torchrun import run_under_torchrun

        return run_under_torchrun(args, target, cases)
    world_sizes = world_sizes_arg(args.world_sizes, args.backend)
    plan = plan_cases(cases, args.backend, world_sizes, args.filter)
    require_runnable(args.backend, sorted({ws for _, _, ws in plan}))
    from ..runtime import pg_timeout_for

    executor = PoolExecutor(pg_timeout_s=pg_timeout_for(args.timeout))
    try:
        return execute(plan, executor, target, args)
    finally:
        executor.close()


def execute(plan: list[tuple[Case, str, int]], executor, target: Target,
            args: argparse.Namespace) -> int:
    """Run the plan with the live view, stream every result to disk, print the summary."""
    from ..report import (
        LiveView,
        RunWriter,
        collect_environment,
        describe_target,
        render_report,
        write_json,
    )

    writer = RunWriter(Path(args.report_dir), environment=collect_environment(args.backend),
                       target=describe_target(target.spec.impl, target.spec.api))

    with LiveView() as live:
        live.start(len(plan))

        def started(case: Case, backend: str, world_size: int) -> None:
            live.case_started(case.test_id(backend, world_size), f"{backend} x{world_size}")

        def finished(result: CaseResult) -> None:
            writer.add(result)
            live.case_finished(result)

        results = run_all(plan, executor, target, timeout_s=args.timeout, on_start=started,
                          on_result=finished)
    report = writer.finish_report()  # the typed report just written: no read-back from disk
    if args.json:
        write_json(Path(args.json), report)
    console = Console(stderr=False)
    render_report(report, console)
    console.print(f"report: {writer.report_path}")
    return exit_code_of(results)


def list_command(args: argparse.Namespace) -> int:
    cases = load_cases(case_paths(args.cases))
    table = Table(title=f"{len(cases)} cases")
    table.add_column("case", no_wrap=True)
    for column in ("kind", "world sizes", "backends"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for case in cases:
        table.add_row(case.name, case.kind, ",".join(map(str, case.world_sizes)),
                      ",".join(case.backends), case.description)
    Console(file=sys.stdout).print(table)
    return 0
