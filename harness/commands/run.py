"""`dino-harness run` and `dino-harness list`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..cases import Case, load_cases
from ..outcome import exit_code_of
from ..results import CaseResult
from ..targets import Target, load_target
from .common import (
    announce,
    case_paths,
    plan_cases,
    require_memory,
    require_runnable,
    world_sizes_arg,
)


def run_command(args: argparse.Namespace) -> int:
    from ..runtime import launched_by_torchrun, pg_timeout_for
    from ..runtime.pool import boot_zygote

    if not launched_by_torchrun():
        boot_zygote(args.backend)  # its `import torch` overlaps ours, which starts below
    from ..runtime.executor import PoolExecutor, TorchrunExecutor

    target = load_target(args.impl, args.api, args.adapter, args.step)
    announce(target)
    cases = load_cases(case_paths(args.cases, args.family))
    pg_timeout_s = pg_timeout_for(args.timeout)
    executor: PoolExecutor | TorchrunExecutor
    if launched_by_torchrun():
        executor = TorchrunExecutor(args.backend, pg_timeout_s=pg_timeout_s)
        plan = plan_cases(cases, args.backend, [executor.world_size], args.filter)
    else:
        world_sizes = world_sizes_arg(args.world_sizes, args.backend, args.family)
        plan = plan_cases(cases, args.backend, world_sizes, args.filter)
        require_runnable(args.backend, sorted({w for _, _, w in plan}))
        require_memory(plan)
        executor = PoolExecutor(pg_timeout_s=pg_timeout_s)
    try:
        if isinstance(executor, TorchrunExecutor) and executor.rank != 0:
            from .torchrun import follow

            return follow(plan, executor, target, args.timeout)
        return execute(plan, executor, target, args)
    finally:
        executor.close()


def execute(plan: list[tuple[Case, str, int]], executor, target: Target,
            args: argparse.Namespace) -> int:
    """Run the plan with the live view, stream every result to disk, print the summary."""
    from ..checks.runner import run_all  # imports torch: after the zygote's boot began
    from ..report import (
        LiveView,
        RunWriter,
        collect_environment,
        describe_target,
        render_report,
        write_json,
    )

    writer = RunWriter(Path(args.report_dir), environment=collect_environment(args.backend),
                       target={**describe_target(target.spec.impl, target.spec.api),
                               **({"step": target.spec.step} if target.spec.step else {})})

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
    cases = load_cases(case_paths(args.cases, args.family))
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
