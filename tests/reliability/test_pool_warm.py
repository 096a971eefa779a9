"""Warm pools: started once, reused for many programs, cached per spec."""

from __future__ import annotations

import os
import statistics
import time

import torch

from harness.runtime import PoolCache, PoolSpec, RankPool, threads_per_rank

P = "harness.runtime.testing_programs:"


def test_many_programs_on_one_warm_pool() -> None:
    with RankPool(PoolSpec("gloo", 2)) as pool:
        first = pool.run(P + "rank_info", None, deadline_s=30)
        pids = [r["pid"] for r in first]
        assert pids == pool.pids
        times = []
        for i in range(150):
            t = time.perf_counter()
            out = pool.run(P + "sum_ranks", i, deadline_s=30)
            times.append(time.perf_counter() - t)
            expected = float(2 * i + 1)  # (0 + i) + (1 + i)
            assert all(isinstance(r, torch.Tensor) and r.device.type == "cpu" for r in out)
            assert [r.tolist() for r in out] == [[expected, expected]] * 2
        assert pool.run(P + "noop", None, deadline_s=30) == [None, None]
        last = pool.run(P + "rank_info", None, deadline_s=30)
        assert [r["pid"] for r in last] == pids, "the workers must be the same processes"
        assert pool.runs == 153
        # Loose bound (a loaded CI box); the real number is in `python -m harness.runtime.bench`.
        assert statistics.median(times) < 0.2


def test_worker_setup_matches_the_parent() -> None:
    with RankPool(PoolSpec("gloo", 2)) as pool:
        info = pool.run(P + "rank_info", {"x": 1}, deadline_s=30)
    assert [r["rank"] for r in info] == [0, 1]
    for r in info:
        assert r["world_size"] == 2 and r["backend"] == "gloo" and r["device"] == "cpu"
        assert r["is_initialized"]
        assert r["threads"] == threads_per_rank(2)
        assert r["cwd"] == os.getcwd()
        assert r["payload"] == {"x": 1}
        assert r["pgid"] == pool.pgid  # one process group per pool: one killpg stops it
        # The zygote imported what every rank's first case imports, and froze it: a rank's
        # collector never walks (and copies) the inherited objects.
        assert r["warm_modules"] == ["harness.kinds", "harness.losses"]
        assert r["gc_enabled"] and r["gc_frozen"] > 10_000


def test_programs_cannot_leak_global_torch_state() -> None:
    with RankPool(PoolSpec("gloo", 1)) as pool:
        assert pool.run(P + "set_default_dtype_double", None, deadline_s=30) == ["torch.float64"]
        assert pool.run(P + "default_dtype", None, deadline_s=30) == ["torch.float32"]


def test_cached_pools_are_reused() -> None:
    with PoolCache() as cache:
        two = PoolSpec("gloo", 2)
        pool = cache.get(two)
        assert cache.get(two) is pool
        a = cache.run(two, P + "rank_info", None, deadline_s=30)
        b = cache.run(PoolSpec("gloo", 2), P + "rank_info", None, deadline_s=30)  # equal spec, new object
        assert [r["pid"] for r in a] == [r["pid"] for r in b] == pool.pids
        assert cache.starts == 1

        four = PoolSpec("gloo", 4)
        out = cache.run(four, P + "sum_ranks", 0, deadline_s=60)
        assert [r.tolist() for r in out] == [[6.0, 6.0]] * 4
        assert cache.starts == 2
        assert set(cache.pools()) == {two, four}
        assert cache.get(two) is pool  # still warm
        pids = pool.pids + cache.get(four).pids
    assert not pool.alive
    from harness.runtime.leaks import running

    assert running(pids) == []


def test_cache_bounds_live_pools() -> None:
    with PoolCache(max_pools=1) as cache:
        p1 = cache.get(PoolSpec("gloo", 1))
        p2 = cache.get(PoolSpec("gloo", 2))
        assert not p1.alive and p2.alive
        assert list(cache.pools()) == [PoolSpec("gloo", 2)]
