"""How much a warm pool saves: pool start vs per-case overhead vs spawn-per-case.

    python -m harness.runtime.bench [--world-sizes 2,4] [--repeats 10] [--json PATH]

Measured side by side in one process, per world size:
  pool_start_s            RankPool.start() of a fresh pool, zygote already running (this is
                          also what replacing a pool after a failure costs)
  zygote_boot_measured_s  the one-time zygote start of this process (one `import torch`);
                          0-ish if a pool had already started it
  pool_start_cold_s       pool_start_s + zygote_boot_measured_s: the first pool of a process
  warm_case_ms_*          RankPool.run() of a trivial program (one all-reduce of one
                          element) on a warm pool, parent-side wall time per case
  spawn_case_ms_*         the common pattern of other harnesses, per case: spawn W
                          processes (torch.multiprocessing, start method "spawn"),
                          init_process_group (file:// rendezvous, no port race), one
                          all-reduce, destroy_process_group, join
  spawn_over_warm_ratio   spawn_case_ms_median / warm_case_ms_median
Targets: warm_case_ms_median <= 20 and ratio >= 50 at 2 ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from harness.runtime.pool import RankPool
from harness.runtime.spec import PoolSpec, parse_world_sizes, threads_per_rank, usable_cpu_count
from harness.runtime.zygote import get_zygote

TRIVIAL_PROGRAM = "harness.runtime.testing_programs:all_reduce_one"
WARM_CASE_MS_TARGET = 20.0
RATIO_TARGET = 50.0


def bench_pool(
    world_sizes: tuple[int, ...] | list[int] = (2, 4),
    repeats: int = 10,
    *,
    warm_repeats: int | None = None,
    spawn_repeats: int | dict[int, int] | None = None,
    backend: str = "gloo",
    deadline_s: float = 60.0,
) -> dict[str, Any]:
    """Measure pool start, warm per-case overhead and spawn-per-case; a JSON-able dict.

    warm_repeats defaults to max(repeats, 50) (a warm case is cheap; more samples make a
    steadier median). spawn_repeats defaults to repeats; an int -> dict maps a world size
    to its own count (fewer at 4 ranks on a small machine), and the dict reports it."""
    import torch

    warm_n = max(10, warm_repeats if warm_repeats is not None else max(repeats, 50))
    out: dict[str, Any] = {
        "schema": 1,
        "benchmark": "pool",
        "backend": backend,
        "program": TRIVIAL_PROGRAM,
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpus_usable": usable_cpu_count(),
            "hostname": platform.node(),
        },
        "targets": {"warm_case_ms_median_max": WARM_CASE_MS_TARGET, "spawn_over_warm_ratio_min": RATIO_TARGET},
        "world_sizes": {},
    }
    zygote = get_zygote()
    t0 = time.monotonic()
    zygote.ensure_running()
    out["zygote_boot_measured_s"] = round(time.monotonic() - t0, 4)

    for ws in world_sizes:
        spec = PoolSpec(backend, int(ws))
        reason = spec.unavailable_reason()
        if reason is not None:
            out["world_sizes"][str(ws)] = {"skipped": reason}
            continue
        n_spawn = _spawn_count(spawn_repeats, int(ws), repeats)
        row: dict[str, Any] = {"threads_per_rank": threads_per_rank(int(ws))}

        pool = RankPool(spec)
        try:
            row["pool_start_s"] = round(pool.start(), 4)
            pool.run(TRIVIAL_PROGRAM, None, deadline_s=deadline_s)  # first case: not counted
            warm_ms = []
            for _ in range(warm_n):
                t = time.perf_counter()
                pool.run(TRIVIAL_PROGRAM, None, deadline_s=deadline_s)
                warm_ms.append((time.perf_counter() - t) * 1e3)
        finally:
            pool.close()
        row["pool_start_cold_s"] = round(row["pool_start_s"] + out["zygote_boot_measured_s"], 4)
        row.update(_stats("warm_case_ms", warm_ms))
        row["warm_case_repeats"] = warm_n

        spawn_ms = [_spawn_case_ms(int(ws), backend) for _ in range(n_spawn)]
        row.update(_stats("spawn_case_ms", spawn_ms))
        row["spawn_case_repeats"] = n_spawn
        row["spawn_over_warm_ratio"] = round(row["spawn_case_ms_median"] / row["warm_case_ms_median"], 1)
        row["meets_targets"] = (
            row["warm_case_ms_median"] <= WARM_CASE_MS_TARGET and row["spawn_over_warm_ratio"] >= RATIO_TARGET
        )
        out["world_sizes"][str(ws)] = row
    return out


def _spawn_count(spawn_repeats: int | dict[int, int] | None, ws: int, repeats: int) -> int:
    if spawn_repeats is None:
        return max(1, repeats)
    if isinstance(spawn_repeats, dict):
        return max(1, int(spawn_repeats.get(ws, repeats)))
    return max(1, int(spawn_repeats))


def _stats(prefix: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=10, method="inclusive") if len(ordered) >= 2 else [ordered[0]] * 9
    return {
        f"{prefix}_median": round(statistics.median(ordered), 3),
        f"{prefix}_p10": round(q[0], 3),
        f"{prefix}_p90": round(q[-1], 3),
        f"{prefix}_min": round(ordered[0], 3),
        f"{prefix}_max": round(ordered[-1], 3),
    }


def _spawn_case_ms(world_size: int, backend: str) -> float:
    """One case the common way: fresh processes, fresh group, one collective, tear down."""
    import torch.multiprocessing as mp

    tmp = tempfile.mkdtemp(prefix="dino-bench-spawn-")
    try:
        t = time.perf_counter()
        mp.start_processes(_spawn_case_rank, args=(world_size, backend, os.path.join(tmp, "store")),
                           nprocs=world_size, join=True, start_method="spawn")
        return (time.perf_counter() - t) * 1e3
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _spawn_case_rank(rank: int, world_size: int, backend: str, store_path: str) -> None:
    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{store_path}", rank=rank, world_size=world_size)
    x = torch.ones(1, device="cuda" if backend == "nccl" else "cpu")
    dist.all_reduce(x)
    if backend == "nccl":
        torch.cuda.synchronize()
    dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runtime.bench", description="warm pool vs spawn-per-case")
    parser.add_argument("--world-sizes", default="2,4")
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--repeats", type=int, default=10, help="spawn-per-case repeats (warm: max(this, 50))")
    parser.add_argument("--spawn-repeats-4", type=int, default=None, help="spawn repeats at 4 ranks, if fewer")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    sizes = parse_world_sizes(args.world_sizes, args.backend)
    spawn: dict[int, int] | None = None
    if args.spawn_repeats_4 is not None:
        spawn = {ws: (args.spawn_repeats_4 if ws >= 4 else args.repeats) for ws in sizes}
    result = bench_pool(sizes, args.repeats, spawn_repeats=spawn, backend=args.backend)
    text = json.dumps(result, indent=2)
    if args.json_path:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_path)), exist_ok=True)
        with open(args.json_path, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
