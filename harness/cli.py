"""`dino-harness` (also `python -m harness`): the command-line contract (README, "Command line").

Exit codes are decided in :mod:`harness.outcome`; every bad input is a
:class:`harness.errors.BadInput` and exits 2 here, in one place.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import styles
from .errors import BadInput, UsageError
from .outcome import ExitCode
from .paths import DEFAULT_FAMILY, FAMILIES
from .targets import AUTO


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dino-harness",
        description="Distributed correctness and overlap harness for DINO-style losses.",
        epilog="Exit codes: 0 passed, 1 a check failed, 2 bad input, 3 a rank hung or crashed.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def target_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--impl", default="harness.losses",
                       help="target: a module name or a .py file path, optionally "
                            "followed by :attribute (default: harness.losses)")
        p.add_argument("--api", default=AUTO, choices=[AUTO, *styles.names()],
                       help="the target's API style (default: auto, which says what it chose)")
        p.add_argument("--adapter", default=None, metavar="FILE.py",
                       help="a style of your own: a file defining STYLE = harness.styles.Style(...)")

    def dist_flags(p: argparse.ArgumentParser, sizes: str | None) -> None:
        p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
        p.add_argument("--world-sizes", default=sizes,
                       help="e.g. 1,2,4 or auto (default " + (sizes or "1,2,3,4 for the "
                            "correctness family, each case's own world_sizes for scale") + ")")

    def family_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--family", default=DEFAULT_FAMILY, choices=list(FAMILIES),
                       help="which catalogue, when no --cases is given: correctness (default) or "
                            "scale (production sizes at 8-64 ranks: minutes)")

    run = sub.add_parser("run", help="run the correctness catalogue")
    target_flags(run)
    run.add_argument("--step", default=None, metavar="FILE.py:function",
                     help="a training step of your own for the step kind (README: 'Check your "
                          "own training step'; default: the reference's)")
    run.add_argument("--cases", nargs="+", metavar="PATH", help="case files or folders")
    family_flag(run)
    dist_flags(run, None)
    run.add_argument("--filter", default=None, metavar="TEXT",
                     help="only cases whose test id contains TEXT")
    run.add_argument("--timeout", type=_positive_float, default=None, metavar="SECONDS",
                     help="per-case deadline (default: the case's deadline_s)")
    run.add_argument("--report-dir", default="reports", metavar="DIR")
    run.add_argument("--json", default=None, metavar="PATH", help="also write the report here")

    selfcheck = sub.add_parser("selfcheck", help="run the catalogue against every planted fault")
    selfcheck.add_argument("--cases", nargs="+", metavar="PATH")
    family_flag(selfcheck)
    dist_flags(selfcheck, None)
    selfcheck.add_argument("--faults", default=None, help="comma-separated subset of faults")
    selfcheck.add_argument("--no-overlap", action="store_true",
                           help="skip the overlap controls (timing: meaningless on an "
                                "oversubscribed machine)")
    selfcheck.add_argument("--json", default=None, metavar="PATH")

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    overlap = bench_sub.add_parser("overlap", help="how much of the center all-reduce hides")
    target_flags(overlap)
    dist_flags(overlap, "1,2")
    overlap.add_argument("--quick", action="store_true")
    overlap.add_argument("--ddp", action="store_true")
    overlap.add_argument("--cases", nargs="+", metavar="PATH")
    overlap.add_argument("--filter", default=None, metavar="TEXT",
                         help="only cases whose case[backend-wsN] contains TEXT")
    overlap.add_argument("--json", default=None, metavar="PATH")
    pool = bench_sub.add_parser("pool", help="warm pool vs spawn-per-case overhead")
    pool.add_argument("--world-sizes", default="2,4")
    pool.add_argument("--repeats", type=int, default=10)
    pool.add_argument("--json", default=None, metavar="PATH")

    explore = sub.add_parser("explore", help="search the case space for mistakes no case lists; "
                             "shrink each to a minimal case file")
    target_flags(explore)
    explore.add_argument("--kinds", nargs="+", metavar="KIND",
                         help="the case kinds to search (default: every kind the target has)")
    explore.add_argument("--budget", type=_positive_float, default=120.0, metavar="SECONDS",
                         help="wall time for the search and the shrinking (default 120)")
    explore.add_argument("--max-world-size", type=int, default=4, metavar="N",
                         help="the largest world size drawn (default 4)")
    explore.add_argument("--assume", nargs="+", metavar="ASSUMPTION",
                         help="what the training guarantees, the search stays inside it: "
                              "equal-batches no-empty-rank head-like-logits float32 "
                              "world-size=N KEY=VALUE")
    explore.add_argument("--seed", type=int, default=None, metavar="N",
                         help="deterministic search (default: random, replaying the example "
                              "database's earlier failures first)")
    explore.add_argument("--max-examples", type=int, default=None, metavar="N",
                         help="stop after N generated configurations (shrinking comes on top)")
    explore.add_argument("--max-findings", type=int, default=None, metavar="N",
                         help="stop once N findings are shrunk")
    explore.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    explore.add_argument("--report-dir", default="reports", metavar="DIR")
    explore.add_argument("--json", default=None, metavar="PATH", help="also write the report here")

    report = sub.add_parser("report", help="render a saved report")
    report.add_argument("path")
    report.add_argument("--format", default="console", choices=["console", "md", "html"])
    report.add_argument("--output", default=None, metavar="FILE")

    compare = sub.add_parser("compare", help="gate a report against a baseline")
    compare.add_argument("new")
    compare.add_argument("baseline")
    compare.add_argument("--format", default="console", choices=["console", "md", "html"])

    listing = sub.add_parser("list", help="list the cases")
    listing.add_argument("--cases", nargs="+", metavar="PATH")
    family_flag(listing)

    test_dist = sub.add_parser("test-dist", help="what `make test-dist` runs: gloo suites, "
                               "then NCCL tests, catalogue and overlap bench on visible GPUs")
    test_dist.add_argument("--report-dir", default="reports/test-dist", metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BadInput as exc:
        print(f"dino-harness: error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT


def _dispatch(args: argparse.Namespace) -> int:
    """Each command's module is imported only when that command runs (fast ``--help``)."""
    if args.command == "run":
        from .commands.run import run_command

        return run_command(args)
    if args.command == "selfcheck":
        from .commands.selfcheck import selfcheck_command

        return selfcheck_command(args)
    if args.command == "explore":
        from .commands.explore import explore_command

        return explore_command(args)
    if args.command == "list":
        from .commands.run import list_command

        return list_command(args)
    if args.command == "bench":
        from .commands.bench import bench_command

        return bench_command(args)
    if args.command == "report":
        from .report import report_command

        return report_command(args.path, args.format, args.output)
    if args.command == "compare":
        from .report import compare_command

        return compare_command(args.new, args.baseline, args.format)
    if args.command == "test-dist":
        from .commands.test_dist import main as test_dist

        return test_dist(["--report-dir", args.report_dir])
    raise UsageError(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
