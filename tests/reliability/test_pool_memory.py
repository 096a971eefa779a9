"""The parent's memory figures of a real pool, and the memory guard stopping one for real:
tripped by raising the floor above what the machine has, never by exhausting the memory
of a machine others share (the ranks allocate 64 MB at most)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from harness.runtime import PoolSpec, RankFailure, RankPool
from harness.runtime.leaks import running
from harness.runtime.memory import MB, PROC

P = "harness.runtime.testing_programs:"
SPEC = PoolSpec("gloo", 2, pg_timeout_s=30.0)


@pytest.fixture
def pool() -> Iterator[RankPool]:
    with RankPool(SPEC) as p:
        yield p


def test_the_figures_of_a_run_are_plausible(pool: RankPool) -> None:
    pool.run(P + "hold_memory", {"rank": 1, "mb": 64, "sleep_s": 0.6}, deadline_s=30)
    f = pool.last_memory
    assert f is not None and f.samples >= 3  # at the start, every 0.25 s, at the end
    assert 60 <= f.rank_peak_mb[1] <= 64 + 32, f
    assert f.rank_peak_mb[0] < 32, f  # a warm rank that allocated nothing holds a few MB
    assert f.rank_peak_mb[1] <= f.total_peak_mb <= f.rank_peak_mb[0] + f.rank_peak_mb[1] + 1e-6
    total_mb = PROC.total() / MB
    assert f.available_min_mb is not None and 0 < f.available_min_mb < total_mb
    assert f.floor_mb >= 1024


def test_the_guard_stops_the_pool_under_the_floor_naming_the_largest_rank(pool: RankPool) -> None:
    pool.run(P + "hold_memory", {"rank": 1, "mb": 64}, deadline_s=30)  # rank 1 keeps 64 MB
    pids = pool.pids
    available_mb = PROC.available() / MB
    pool.memory_floor_mb = available_mb + 4096  # as if the machine were nearly out of memory
    t0 = time.monotonic()
    with pytest.raises(RankFailure) as info:
        pool.run(P + "hold_memory", {"rank": -1, "sleep_s": 60}, deadline_s=30)
    elapsed = time.monotonic() - t0
    failure = info.value
    assert failure.kind == "crash"
    assert failure.outcomes == {0: "killed", 1: "crashed"}
    err = failure.first_error
    assert err is not None and (err.rank, err.type) == (1, "OutOfMemory")
    assert "stopped by the harness before the kernel's OOM killer" in err.message
    assert f"under the {pool.memory_floor_mb:.0f} MB floor" in err.message
    held = re.search(r"it held (\d+) MB private, the pool (\d+) MB in all", err.message)
    assert held and 60 <= int(held[1]) <= int(held[2]) <= 64 + 64, err.message
    assert failure.memory is not None and failure.memory.rank_peak_mb[1] >= 60
    assert elapsed < 2, f"the guard must stop the pool at once, took {elapsed:.1f} s"
    assert not pool.alive and running(pids) == []
