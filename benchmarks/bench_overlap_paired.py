"""Can the overlap metric tell fake from real async at the default settings? Five runs each.

    python benchmarks/bench_overlap_paired.py [--runs 5] [--log-runs 3]
                                              [--json reports/bench/overlap_paired.json]

What ``dino-harness bench overlap --quick --world-sizes 2`` runs (gloo, 2 ranks, the
quick K = 65536 case, 20 iterations after 2 warm-up ones), ``--runs`` times for the
fake-async control (``harness.faults.fake_async``) and the reference, interleaved on one
warm pool. Per target and run: the headline (paired) hidden fraction, its 95 % interval
width, and the phase protocol's hidden fraction (the cross-check). ``--log-runs`` more
runs of each keep the timed collectives in the harness's collective log
(``log_timed=True``), interleaved too: the log's effect on the figures, measured.

Targets (issue 12): fake median within +-0.15 of 0 with an interval no wider than 0.3;
reference >= 0.8 with an interval no wider than 0.25 (median over runs of each run's
median and interval width). The JSON is a schema-1 report (harness/report/figures.py):
``dino-harness compare NEW BASELINE`` gates every figure.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from harness.commands.bench import QUICK_ITERATIONS, QUICK_WARMUP
from harness.overlap.cases import load_overlap_cases
from harness.overlap.controls import FAKE_TARGET, REFERENCE_TARGET
from harness.overlap.metrics import headline
from harness.overlap.runner import PG_TIMEOUT_S, run_case
from harness.paths import catalogue_dir
from harness.report import BenchSection, collect_environment, write_json
from harness.report.figures import Figure, figure_result
from harness.report.model import Report
from harness.runtime.executor import PoolExecutor

TARGETS = {FAKE_TARGET: "fake-async", REFERENCE_TARGET: "reference"}


def one_run(executor: PoolExecutor, case: Any, impl: str, *, log_timed: bool) -> dict[str, float]:
    r = run_case(executor, case, "gloo", 2, impl=impl, iterations=QUICK_ITERATIONS,
                 warmup=QUICK_WARMUP, log_timed=log_timed)
    if r.status != "pass" or not r.metrics:
        raise SystemExit(f"{impl}: {r.status}: {r.error}")
    m = r.metrics
    top = headline(m)
    return {"hidden": m[top], "width": m[top + "_ci_high"] - m[top + "_ci_low"],
            "phases": m["hidden_fraction"],
            "phases_width": m["hidden_fraction_ci_high"] - m["hidden_fraction_ci_low"],
            "allreduce_ms": m.get("allreduce_overlapped_ms", math.nan), "comm_ms": m["comm_ms"],
            "call_ms": m["collective_call_ms"], "inconclusive": float(r.extra["inconclusive"]),
            "paired": float(top == "hidden_fraction_paired")}


def figures_for(label: str, runs: list[dict[str, float]], logged: list[dict[str, float]]) -> list[Figure]:
    fake = label == "fake-async"
    col = {k: [r[k] for r in runs] for k in runs[0]}
    figs = [
        Figure("hidden_fraction_paired", col["hidden"], better="lower" if fake else "higher"),
        Figure("hidden_fraction_paired_abs", [abs(v) for v in col["hidden"]], target=("<=", 0.15))
        if fake else Figure("hidden_fraction_paired_min", col["hidden"], target=(">=", 0.8),
                            gated=False),
        Figure("hidden_ci_width", col["width"], target=("<=", 0.3 if fake else 0.25)),
        Figure("hidden_fraction", col["phases"], better="lower" if fake else "higher", gated=False),
        Figure("hidden_fraction_ci_width", col["phases_width"], gated=False),
        Figure("inconclusive_runs", col["inconclusive"], gated=False),
        Figure("allreduce_overlapped_ms", col["allreduce_ms"], gated=False),
        Figure("comm_ms", col["comm_ms"], gated=False),
        Figure("collective_call_ms", col["call_ms"], gated=False),
    ]
    if logged:
        lc = {k: [r[k] for r in logged] for k in logged[0]}
        figs += [Figure("logged_hidden_fraction_paired", lc["hidden"], gated=False),
                 Figure("logged_collective_call_ms", lc["call_ms"], gated=False),
                 Figure("logged_allreduce_overlapped_ms", lc["allreduce_ms"], gated=False),
                 Figure("logged_hidden_fraction", lc["phases"], gated=False)]
    return figs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--log-runs", type=int, default=3)
    p.add_argument("--json", default="reports/bench/overlap_paired.json")
    args = p.parse_args(argv)
    case = next(c for c in load_overlap_cases([catalogue_dir("overlap")]) if c.quick)
    runs: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
    logged: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
    t0 = time.perf_counter()
    with PoolExecutor(pg_timeout_s=PG_TIMEOUT_S, max_pools=1) as executor:
        for i in range(max(args.runs, args.log_runs)):
            for impl in TARGETS:  # interleaved: both see the same load
                if i < args.runs:
                    runs[impl].append(one_run(executor, case, impl, log_timed=False))
                if i < args.log_runs:
                    logged[impl].append(one_run(executor, case, impl, log_timed=True))
                print(f"run {i + 1} {TARGETS[impl]}: "
                      + (f"{runs[impl][-1]['hidden']:.3f} (width {runs[impl][-1]['width']:.3f}, "
                         f"phases {runs[impl][-1]['phases']:.3f})" if i < args.runs else "")
                      + (f"  logged {logged[impl][-1]['hidden']:.3f}" if i < args.log_runs else ""),
                      flush=True)
    seconds = time.perf_counter() - t0
    results = [figure_result(f"bench-overlap-paired-{label}", figures_for(label, runs[impl], logged[impl]),
                             backend="gloo", world_size=2, duration_s=seconds / 2,
                             extra={"impl": impl, "case": case.name, "prototypes": case.K,
                                    "iterations": QUICK_ITERATIONS, "runs_each": args.runs})
               for impl, label in TARGETS.items()]
    report = Report(results=results, environment=collect_environment("gloo"),
                    target={"impl": "benchmarks/bench_overlap_paired.py", "api": "seed"},
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    bench=BenchSection("overlap-paired", seconds=round(seconds, 1),
                                       extra={"command": "python benchmarks/bench_overlap_paired.py",
                                              "note": "2 cores shared with other users"}))
    write_json(Path(args.json), report)
    for r in results:
        m = r.metrics or {}
        print(f"{r.case}: {r.status}  paired median {m['hidden_fraction_paired']:.3f} "
              f"[{m['hidden_fraction_paired_ci_low']:.3f}, {m['hidden_fraction_paired_ci_high']:.3f}] "
              f"interval width {m['hidden_ci_width']:.3f}  phases {m['hidden_fraction']:.3f}")
    print(f"wrote {args.json} ({seconds:.0f} s)")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
