"""What `dino-harness explore` finds from scratch, with no catalogue, and how fast.

    python benchmarks/bench_explore.py [--seeds 1,2,3] [--budget 120] [--faults A,B]
                                       [--configurations 1000] [--json reports/bench/explore.json]

* **Every planted fault of the correctness family** (``harness.faults`` whose ``family``
  is ``correctness``: what selfcheck runs by default, the step's included) is explored
  once per seed with ``--budget`` seconds, stopping after the first finding is shrunk (as
  ``--max-findings 1``): ``ttff_s`` is the time to the first failing configuration (the
  reference explores clean, so any failure is the fault's), ``shrunk_ws`` the world size
  of the smallest shrunk case, ``named`` whether a finding's likely cause names the
  fault's own mistake. Targets: found within the budget and shrunk to at most 3 ranks,
  medians over the seeds. The ``scale`` family is left out unless ``--faults`` names it
  (the JSON's ``left_out`` says why): planted to be right at 1-4 ranks, they show past
  2048 rows, past 8 ranks or with process groups (``cases/scale/``), mostly beyond the
  search's world sizes and batches (``--faults collectives_over_world`` is found at 2
  ranks in process groups of 1).
* **Correct code**: the reference with no assumption, and the official DINOv2 losses
  (``--impl dinov2.loss``, when installed) under ``--assume equal-batches
  head-like-logits``, each explored until ``--configurations`` configurations were
  generated: target 0 findings.

Every exploration runs in this process on one set of warm pools, as the command does
(``harness.explore.explore``). The JSON is a schema-1 report of gated figures
(harness/report/figures.py) that ``dino-harness compare`` gates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness.explore import Limits, Space, explore, kinds_to_search, parse
from harness.faults import FAULTS, mistake_of, module_name
from harness.report import BenchSection, collect_environment, write_json
from harness.report.figures import Figure, figure_result
from harness.report.model import Report
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target

MAX_WORLD_SIZE = 4
SHRUNK_WS_TARGET = 3
HANG_TIMEOUT_S = 10.0  # as the command: a hang costs seconds
CORRECT = (("harness.losses", ()), ("dinov2.loss", ("equal-batches", "head-like-logits")))


#: What the bench explores without --faults: what selfcheck runs by default.
FAMILY = "correctness"


def left_out(explored: list[str]) -> dict[str, str]:
    """The planted faults not explored, each with why (the JSON's ``left_out``)."""
    return {name: (f"family {fault.family}: planted to pass the correctness catalogue at 1-4 "
                   f"ranks and show at production sizes (selfcheck --family {fault.family})"
                   if fault.family != FAMILY else "not in --faults")
            for name, fault in FAULTS.items() if name not in explored}


def one(executor: PoolExecutor, impl: str, assume: tuple[str, ...], limits: Limits,
        tmp: Path):
    target = load_target(impl)
    kinds, unsearched = kinds_to_search(target, None)
    space = Space(tuple(kinds), MAX_WORLD_SIZE, "gloo", parse(list(assume)))
    return explore(target, space, limits, executor, tmp / f"{impl}-{time.monotonic_ns()}",
                   unsearched=unsearched)


def fault_result(executor: PoolExecutor, name: str, seeds: list[int], budget: float, tmp: Path):
    ttff, shrunk, named, seconds, configurations = [], [], [], [], []
    mistake = mistake_of(FAULTS[name])
    for seed in seeds:
        ex = one(executor, module_name(name), (), Limits(budget, max_findings=1, seed=seed), tmp)
        p = ex.progress
        found = p.first_failure_s is not None and bool(ex.findings)
        # not found: past the budget and the world sizes (a median must not drop it)
        ttff.append(p.first_failure_s if found else 2 * budget)
        shrunk.append(min((f.example.table["world_sizes"][0] for f in ex.findings),
                          default=MAX_WORLD_SIZE + 1))
        named.append(any(mistake is not None and mistake.name in s.cause
                         for f in ex.findings for s in f.signatures))
        seconds.append(p.seconds)
        configurations.append(p.configurations)
        print(f"{name} seed {seed}: first failure {ttff[-1]:.1f} s, shrunk to ws{shrunk[-1]}, "
              f"{'named' if named[-1] else 'not named'} ({[f.key for f in ex.findings]}), "
              f"{p.configurations} configurations, {p.seconds:.0f} s", flush=True)
    figures = [Figure("ttff_s", ttff, target=("<=", budget)),
               Figure("shrunk_ws", shrunk, target=("<=", SHRUNK_WS_TARGET)),
               Figure("seconds", seconds, gated=False)]
    return figure_result(f"explore-{name}", figures, backend="gloo", world_size=MAX_WORLD_SIZE,
                         duration_s=sum(seconds),
                         extra={"fault": name, "mistake": mistake.name if mistake else None,
                                "named": named, "configurations": configurations,
                                "seeds": seeds})


def correct_result(executor: PoolExecutor, impl: str, assume: tuple[str, ...], n: int,
                   tmp: Path):
    ex = one(executor, impl, assume, Limits(budget_s=3600.0, max_examples=n, seed=1), tmp)
    p = ex.progress
    print(f"{impl} (assume {', '.join(assume) or 'nothing'}): {len(ex.findings)} findings "
          f"{[f.key for f in ex.findings]} in {p.configurations} configurations "
          f"({p.generated} generated, {p.skipped} skipped), {p.seconds:.0f} s", flush=True)
    figures = [Figure("findings", [len(ex.findings)], target=("<=", 0)),
               Figure("configurations", [p.generated], better="higher", target=(">=", n)),
               Figure("seconds", [p.seconds], gated=False)]
    return figure_result(f"explore-correct-{impl}", figures, backend="gloo",
                         world_size=MAX_WORLD_SIZE, duration_s=p.seconds,
                         extra={"impl": impl, "assume": list(assume),
                                "findings": [f.key for f in ex.findings],
                                "distinct_configurations": p.configurations,
                                "skipped": p.skipped})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--budget", type=float, default=120.0)
    p.add_argument("--faults", default=",".join(n for n, f in FAULTS.items() if f.family == FAMILY))
    p.add_argument("--configurations", type=int, default=1000)
    p.add_argument("--json", default="reports/bench/explore.json")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    faults = args.faults.split(",")
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="dino-bench-explore-") as tmp, \
            PoolExecutor(pg_timeout_s=HANG_TIMEOUT_S) as executor:
        for name in faults:
            results.append(fault_result(executor, name, seeds, args.budget, Path(tmp)))
        for impl, assume in CORRECT:
            try:
                load_target(impl)
            except Exception as exc:  # noqa: BLE001 - dinov2 is optional
                print(f"{impl}: not measured ({exc})")
                continue
            results.append(correct_result(executor, impl, assume, args.configurations, Path(tmp)))
    seconds = time.perf_counter() - t0
    report = Report(results=results, environment=collect_environment("gloo"),
                    target={"impl": "harness.faults.*, harness.losses, dinov2.loss", "api": "auto"},
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    bench=BenchSection("explore", seconds=round(seconds, 1),
                                       extra={"command": "python benchmarks/bench_explore.py",
                                              "budget_s": args.budget, "seeds": seeds,
                                              "faults": faults, "left_out": left_out(faults),
                                              "note": "2 cores shared with other users"}))
    write_json(Path(args.json), report)
    print("\nfault                               median ttff s   shrunk ws   named")
    for r in results:
        if "fault" in r.extra:
            m = r.metrics or {}
            print(f"{r.extra['fault']:36s}{m['ttff_s']:>13.1f}{m['shrunk_ws']:>12.0f}"
                  f"{sum(r.extra['named']):>6d}/{len(r.extra['named'])}  {r.status}")
    all_ttff = [v for r in results if "fault" in r.extra for v in r.extra["runs"]["ttff_s"]]
    if all_ttff:
        print(f"median over every fault and seed: {statistics.median(all_ttff):.1f} s")
    print(f"wrote {args.json} ({seconds:.0f} s)")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
