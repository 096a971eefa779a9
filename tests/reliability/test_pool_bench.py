"""bench_pool returns every number, JSON-able, with units in the key names (one quick
round here; `python -m harness.runtime.bench` takes the real measurements)."""

from __future__ import annotations

import json
import math

from harness.runtime.bench import bench_pool


def test_bench_pool_quick_round() -> None:
    out = bench_pool(world_sizes=(2,), repeats=1, warm_repeats=10, spawn_repeats=1)
    json.dumps(out)
    row = out["world_sizes"]["2"]
    for key in ("pool_start_s", "pool_start_cold_s", "warm_case_ms_median", "warm_case_ms_p10",
                "warm_case_ms_p90", "spawn_case_ms_median", "spawn_over_warm_ratio"):
        assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0, key
    assert row["warm_case_repeats"] == 10 and row["spawn_case_repeats"] == 1
    assert row["warm_case_ms_median"] < row["spawn_case_ms_median"]
    assert out["zygote_boot_measured_s"] >= 0
