"""How reliably the likely-cause diagnosis names a mistake written in another style.

    python benchmarks/bench_diagnosis_styles.py [--world-sizes 1,2,3] [--faults A,B]
                                                [--json reports/bench/diagnosis_styles.json]

Each module of ``tests/fixtures/otherstyle`` is the seed API written a second way
(independently of harness.losses) with one known mistake done as other code does it, or
two at once. The catalogue's cases of the kinds the mistake touches run against it; of
the results that fail *because of the mistake* (the same case passes on the second
style's correct module, ``correct``: a failure of its own -- its global max shift
underflows on extreme logits, its collective count exceeds a comms budget, its
``update_center`` keeps only the last micro-batch of a step (as stable-pretraining's and
DINOv2's do) -- is not the mistake's), ``named`` counts those whose diagnosis names the planted mistake (for two at
once: names planted mistakes only, ``both`` counts those that name the two -- a case
with a softmax teacher runs no Sinkhorn, so only the loss mistake can show there),
``wrong`` those that name another one. Target (issue 17): every fault named in every
such result, none named wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cases import load_cases
from harness.checks.runner import run_all
from harness.commands.common import case_paths, plan_cases
from harness.report import BenchSection, collect_environment, write_json
from harness.report.figures import Figure, figure_result
from harness.report.model import Report
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "tests.fixtures.otherstyle"
#: fixture module -> (the mistakes its diagnosis must name, the kinds that exercise it)
FAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "per_sample_shift": (("sinkhorn_per_sample_shift",), ("sinkhorn",)),
    "no_shift": (("sinkhorn_no_shift",), ("sinkhorn",)),
    "local_count": (("sinkhorn_local_count",), ("sinkhorn",)),
    "rows_local": (("sinkhorn_rows_not_reduced",), ("sinkhorn",)),
    "short": (("sinkhorn_one_iteration_short",), ("sinkhorn",)),
    "center_gather_means": (("center_mean_of_means",), ("centering",)),
    "center_local_rows": (("center_divisor_no_world",), ("centering",)),
    "center_not_reduced": (("center_not_all_reduced",), ("centering",)),
    "center_ema_swapped": (("ema_weights_swapped",), ("centering",)),
    "center_bf16": (("center_bf16",), ("centering",)),
    "cls_local_batch": (("loss_local_batch",), ("cls", "dinov2")),
    "cls_diagonal": (("diagonal_not_excluded",), ("cls", "dinov2")),
    "ibot_local_mean": (("ibot_per_rank_mean",), ("ibot", "dinov2")),
    "two_at_once": (("loss_local_batch", "sinkhorn_local_count"), ("cls", "dinov2")),
}


def measure(executor: PoolExecutor, name: str, plan: list, base_failing: set[str]) -> dict:
    mistakes, kinds = FAULTS[name]
    target = load_target(f"{PACKAGE}.{name}")
    results = run_all([p for p in plan if p[0].kind in kinds], executor, target)
    failing = [r for r in results if r.status == "fail" and any(not c.passed for c in r.checks)
               and r.test_id not in base_failing]
    said = [set(r.extra.get("mistakes") or ()) for r in failing]
    named = [r for r, s in zip(failing, said, strict=True) if s and s <= set(mistakes)]
    wrong = [r for r, s in zip(failing, said, strict=True) if s - set(mistakes)]
    both = sum(s == set(mistakes) for s in said)
    return {"failing": len(failing), "named": len(named), "wrong": len(wrong), "both": both,
            "not_named": sorted(f"{r.test_id}: {r.extra.get('diagnosis')}"
                                for r in failing if r not in named or r in wrong)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-sizes", default="1,2,3")
    p.add_argument("--faults", default=",".join(FAULTS))
    p.add_argument("--json", default="reports/bench/diagnosis_styles.json")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    plan = plan_cases(load_cases(case_paths(None)), "gloo",
                      [int(w) for w in args.world_sizes.split(",")], None)
    t0 = time.perf_counter()
    rows = {}
    with PoolExecutor(pg_timeout_s=10.0) as executor:
        correct = run_all(plan, executor, load_target(f"{PACKAGE}.correct"))
        failing = {r.test_id for r in correct if r.status in ("fail", "error")}
        alarms = sorted(t for t in failing if not t.startswith(("comms-", "sinkhorn-extreme",
                                                                "sinkhorn-outlier",
                                                                "centering-micro-")))
        print(f"correct: fails {len(failing)} cases, {len(alarms)} beyond comms budgets, "
              f"extreme logits and accumulated centers: {alarms}", flush=True)
        for name in args.faults.split(","):
            rows[name] = measure(executor, name, plan, failing)
            r = rows[name]
            print(f"{name:22s} named {r['named']:3d}/{r['failing']:3d}  wrong {r['wrong']}"
                  f"  (all planted named: {r['both']})", flush=True)
            for line in r["not_named"][:4]:
                print(f"    {line}")
    seconds = time.perf_counter() - t0
    share = [r["named"] / r["failing"] if r["failing"] else 0.0 for r in rows.values()]
    figures = [Figure("named_share_min", [min(share, default=0.0)], better="higher",
                      target=(">=", 1.0)),
               Figure("named_wrong", [sum(r["wrong"] for r in rows.values())], target=("<=", 0)),
               Figure("false_alarms", [len(alarms)], target=("<=", 0))]
    result = figure_result("diagnosis-second-style", figures, backend="gloo", world_size=3,
                           duration_s=seconds, extra={"faults": rows})
    report = Report(results=[result], environment=collect_environment("gloo"),
                    target={"impl": f"{PACKAGE}.*", "api": "seed"},
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    bench=BenchSection("diagnosis-styles", seconds=round(seconds, 1),
                                       extra={"world_sizes": args.world_sizes}))
    write_json(Path(args.json), report)
    print(f"wrote {args.json} ({seconds:.0f} s)")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
