"""Reference Sinkhorn and centering against the seed-style baseline, side by side.

    python benchmarks/bench_losses.py [--ks 4096,65536,262144] [--rows 128] [--repeats 9]
                                      [--world-size 2] [--json reports/bench/losses.json]

On one warm gloo pool, each rank alternates the two implementations in every repeat
(order swapped each repeat), barrier-aligned; a repeat's time is the slowest rank's.
Numbers (per K):
  reference_ms_median / seed_ms_median   median over repeats of one call, milliseconds
  ratio                                  reference_ms_median / seed_ms_median
  paired_ratio_median                    median over repeats of reference/seed in that repeat
  *_collectives                          collectives one call issues (recorded at the dispatcher)
The issue's target: Sinkhorn ratio <= 1.2 at K=65536, 128 rows per rank, 2 ranks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from seed_style import SeedCenter, seed_sinkhorn

from harness.losses import DINOv1Loss, sinkhorn_knopp
from harness.runtime.collectives import CollectiveRecorder


def _timed(fn) -> float:
    dist.barrier()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _collectives(fn) -> int:
    recorder = CollectiveRecorder()
    with recorder, recorder.section("call") as calls:
        fn()
    return len(calls)


def rank_program(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    k, rows, repeats = payload["K"], payload["rows"], payload["repeats"]
    generator = torch.Generator().manual_seed(1000 * ctx.rank + k)
    # |logits / temp| stays below ~80: the seed-style exp neither overflows nor underflows,
    # so both run on their fast paths and the comparison is fair to the baseline.
    logits = torch.randn(rows, k, generator=generator) * 0.5
    teacher = torch.randn(2, rows // 2, k, generator=generator)
    ref_center, seed_center = DINOv1Loss(), SeedCenter()

    def center_ref() -> None:
        ref_center.update_center(teacher)
        ref_center.apply_center_update()

    def center_seed() -> None:
        seed_center.update_center(teacher)
        seed_center.apply_center_update()

    pairs = {
        "sinkhorn": (lambda: sinkhorn_knopp(logits, 0.04, n_iterations=3),
                     lambda: seed_sinkhorn(logits, 0.04, n_iterations=3)),
        "centering": (center_ref, center_seed),
    }
    out: dict[str, Any] = {}
    for what, (reference, seed) in pairs.items():
        for fn in (reference, seed):  # warm-up
            fn()
        ref_ms, seed_ms = [], []
        for repeat in range(repeats):
            order = [(reference, ref_ms), (seed, seed_ms)]
            for fn, sink in (order if repeat % 2 == 0 else order[::-1]):
                sink.append(_timed(fn))
        out[what] = {"reference_ms": ref_ms, "seed_ms": seed_ms,
                     "reference_collectives": _collectives(reference),
                     "seed_collectives": _collectives(seed)}
    return out


def summarise(per_rank: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    rows = []
    for what in per_rank[0]:
        slowest = {name: [max(r[what][name][i] for r in per_rank)
                          for i in range(len(per_rank[0][what][name]))]
                   for name in ("reference_ms", "seed_ms")}
        ref, seed = slowest["reference_ms"], slowest["seed_ms"]
        rows.append({
            "what": what, "K": k,
            "reference_ms_median": statistics.median(ref),
            "seed_ms_median": statistics.median(seed),
            "ratio": statistics.median(ref) / statistics.median(seed),
            "paired_ratio_median": statistics.median(a / b for a, b in zip(ref, seed, strict=True)),
            "reference_collectives": per_rank[0][what]["reference_collectives"],
            "seed_collectives": per_rank[0][what]["seed_collectives"],
            "repeats": len(ref),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="4096,65536,262144")
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--json", default="reports/bench/losses.json")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from harness.report import collect_environment
    from harness.runtime import PoolCache, PoolSpec

    results = []
    with PoolCache() as pools:
        for k in (int(x) for x in args.ks.split(",")):
            payload = {"K": k, "rows": args.rows, "repeats": args.repeats}
            per_rank = pools.run(PoolSpec("gloo", args.world_size), "bench_losses:rank_program",
                                 payload, deadline_s=600)
            results.extend(summarise(per_rank, k))
    report = {"schema": 1, "tool": "dino-harness", "bench": "losses",
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "environment": collect_environment("gloo"), "backend": "gloo",
              "world_size": args.world_size, "rows_per_rank": args.rows, "n_iterations": 3,
              "results": results}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))

    table = Table(title=f"reference vs seed-style, gloo, {args.world_size} ranks, "
                        f"{args.rows} rows/rank, median of {args.repeats}")
    for column in ("what", "K", "reference ms", "seed ms", "ratio", "paired ratio",
                   "collectives ref/seed"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(r["what"], str(r["K"]), f"{r['reference_ms_median']:.2f}",
                      f"{r['seed_ms_median']:.2f}", f"{r['ratio']:.2f}",
                      f"{r['paired_ratio_median']:.2f}",
                      f"{r['reference_collectives']}/{r['seed_collectives']}")
    Console().print(table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
