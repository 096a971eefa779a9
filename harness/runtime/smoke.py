"""python -m harness.runtime.smoke [--world-size N] [--backend gloo|nccl]

One all-reduce through a warm pool, or, when launched by torchrun (any number of nodes),
through the InlineExecutor. Rank 0 prints one JSON line. Exit codes as everywhere in the
harness: 0 ok, 1 wrong sum, 2 usage, 3 a rank hung or crashed (or raised).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from harness.runtime.failure import RankFailure
from harness.runtime.inline import InlineExecutor, launched_by_torchrun
from harness.runtime.pool import PoolUnavailable, RankPool
from harness.runtime.spec import PoolSpec

PROGRAM = "harness.runtime.testing_programs:smoke_allreduce"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runtime.smoke", description=__doc__.split("\n")[2])
    parser.add_argument("--world-size", type=int, default=2, help="ranks of the pool (ignored under torchrun)")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds before the run counts as hung")
    parser.add_argument("--pg-timeout", type=float, default=30.0, help="process-group timeout, seconds")
    args = parser.parse_args(argv)

    t0 = time.monotonic()
    report: dict[str, Any] = {"backend": args.backend}
    executor: InlineExecutor | RankPool
    if launched_by_torchrun():
        executor = InlineExecutor(args.backend, pg_timeout_s=args.pg_timeout)
        report["mode"] = "inline"
    else:
        try:
            executor = RankPool(PoolSpec(args.backend, args.world_size, pg_timeout_s=args.pg_timeout))
        except ValueError as exc:
            print(json.dumps({"ok": False, "error": str(exc)}))
            return 2
        report["mode"] = "pool"
    try:
        report["start_s"] = round(executor.start(), 4)
        results = executor.run(PROGRAM, None, deadline_s=args.deadline)
    except PoolUnavailable as exc:
        print(json.dumps({**report, "ok": False, "skipped": str(exc)}))
        return 0
    except RankFailure as failure:
        if getattr(executor, "rank", 0) == 0:
            print(json.dumps({**report, "ok": False, "failure": failure.to_json()}))
        return 3
    finally:
        executor.close()

    if results is None:  # a non-zero rank under torchrun: rank 0 reports
        return 0
    world_size = len(results)
    expected = world_size * (world_size + 1) / 2
    ok = all(r["sum"] == expected for r in results)
    report.update({
        "ok": ok,
        "world_size": world_size,
        "sum": results[0]["sum"],
        "expected": expected,
        "hosts": sorted({r["host"] for r in results}),
        "ranks": [{k: r[k] for k in ("rank", "local_rank", "pid", "device", "sum")} for r in results],
        "seconds": round(time.monotonic() - t0, 4),
    })
    print(json.dumps(report), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
