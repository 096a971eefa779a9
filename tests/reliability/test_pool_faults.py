"""A pool survives every way a rank can fail: the caller gets a RankFailure naming the
rank (and every rank's outcome) within the deadline, no process or file is left, and the
next program runs on a fresh pool.

The tests of one module share a PoolCache, so the fresh pool a test checks is the pool
the next test breaks: N faults cost N+1 pool starts, and after the first one (which
boots the zygote, ~3 s here) a start costs tens of milliseconds.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.runtime import PoolCache, PoolSpec, PoolUnavailable, RankFailure, RankPool
from harness.runtime.leaks import group_members, running
from harness.runtime.zygote import get_zygote

P = "harness.runtime.testing_programs:"
SPEC = PoolSpec("gloo", 2, pg_timeout_s=30.0)  # pg timeout far above the test deadlines
FAST_PG_TIMEOUT = PoolSpec("gloo", 2, pg_timeout_s=2.0)


@pytest.fixture(scope="module")
def cache() -> Iterator[PoolCache]:
    with PoolCache() as c:
        yield c


def assert_pool_gone(pool: RankPool, pids: list[int], pgid: int | None, tmp_dir: str | None) -> None:
    """No worker, nothing in the pool's process group, no temp dir. The pool reaps its
    workers before run()/close() return, so this checks at once, without waiting."""
    assert not pool.alive
    assert running(pids) == [], f"workers still running: {running(pids)}"
    if pgid is not None:
        assert group_members(pgid) == [], f"processes left in group {pgid}"
    assert tmp_dir is None or not os.path.exists(tmp_dir), f"{tmp_dir} left behind"
    zygote_pid = get_zygote().pid
    if zygote_pid is not None:
        import psutil

        children = {p.pid for p in psutil.Process(zygote_pid).children()}
        assert not children & set(pids)


def fresh_pool_works(cache: PoolCache, spec: PoolSpec) -> None:
    results = cache.run(spec, P + "sum_ranks", 1, deadline_s=30)
    assert [r.tolist() for r in results] == [[3.0, 3.0], [3.0, 3.0]]  # (0+1) + (1+1)


def break_pool(cache: PoolCache, spec: PoolSpec, program: str, payload: dict, deadline_s: float
               ) -> tuple[RankFailure, float, RankPool, list[int], int | None, str | None]:
    pool = cache.get(spec)
    pids, pgid, tmp_dir = pool.pids, pool.pgid, pool.tmp_dir
    starts = cache.starts
    t0 = time.monotonic()
    with pytest.raises(RankFailure) as info:
        cache.run(spec, P + program, payload, deadline_s=deadline_s)
    elapsed = time.monotonic() - t0
    assert_pool_gone(pool, pids, pgid, tmp_dir)
    fresh_pool_works(cache, spec)
    assert cache.starts == starts + 1, "a failed pool must be replaced by a fresh one"
    assert cache.get(spec).pids != pids
    return info.value, elapsed, pool, pids, pgid, tmp_dir


def test_rank_raises(cache: PoolCache) -> None:
    failure, elapsed, *_ = break_pool(cache, SPEC, "raise_error", {"rank": 1}, deadline_s=20)
    assert failure.kind == "error"
    assert failure.ranks == [1]
    err = failure.errors[0]
    assert err.type == "ValueError" and "planted error on rank 1" in err.message
    assert "in raise_error" in err.traceback and "raise ValueError" in err.traceback
    # Rank 0 waits in the all_reduce for rank 1: killed after the grace period.
    assert failure.outcomes == {0: "killed", 1: "raised"}
    assert "all_reduce" in failure.stacks[0]
    assert elapsed < 10, elapsed


@pytest.mark.parametrize(
    "program, payload, signal_name, exit_code",
    [
        ("exit_code", {"rank": 1, "code": 3}, None, 3),
        ("kill_self", {"rank": 1}, "SIGKILL", None),
        ("segfault", {"rank": 1}, "SIGSEGV", None),
    ],
    ids=["os_exit_3", "sigkill", "segfault"],
)
def test_rank_dies(cache: PoolCache, program: str, payload: dict, signal_name: str | None,
                   exit_code: int | None) -> None:
    failure, elapsed, *_ = break_pool(cache, SPEC, program, payload, deadline_s=20)
    assert failure.kind == "crash"
    assert failure.ranks[0] == 1  # the crash is the cause, listed first
    err = failure.errors[0]
    assert err.type == "Crash"
    assert err.signal == signal_name
    assert err.exit_code == exit_code
    assert failure.outcomes[1] == "crashed"
    # Rank 0 loses its peer inside the all_reduce: gloo raises at once, or it is killed.
    assert failure.outcomes[0] in ("raised", "killed")
    if signal_name == "SIGSEGV":
        assert "Fatal Python error: Segmentation fault" in err.traceback
        assert "in segfault" in err.traceback  # faulthandler's stack from the rank's log
    assert elapsed < 10, f"a death must be seen at once, took {elapsed:.1f} s"


def test_skipped_collective_is_named_at_once(cache: PoolCache) -> None:
    """Rank 1 returns without the all_reduce rank 0 waits in: the collective logs show it,
    and the run ends in well under the deadline, naming rank 1 and the collective."""
    failure, elapsed, *_ = break_pool(cache, SPEC, "skip_collective", {"rank": 1}, deadline_s=20)
    assert failure.kind == "hang"
    assert failure.ranks[0] == 1  # the culprit first, though it was rank 0 that waited
    culprit = failure.errors[0]
    assert culprit.type == "Desync"
    assert "rank 1 finished after 0 collective(s) and never issued collective #1" in culprit.message
    assert "all_reduce(SUM, float32, shape [1])" in culprit.message
    assert "skip_collective" in failure.diagnosis
    waiting = next(e for e in failure.errors if e.rank == 0)
    assert waiting.type == "Waiting"
    assert "in all_reduce" in waiting.traceback and "in skip_collective" in waiting.traceback
    assert failure.collectives[0][0]["op"] == "all_reduce" and not failure.collectives[0][0]["completed"]
    assert elapsed < 5, f"a desync must be seen at once, took {elapsed:.1f} s"


def test_the_waiting_ranks_stack_is_taken_inside_the_collective(cache: PoolCache) -> None:
    """A rank announces a collective to the parent just before it enters it, and the parent
    acts on that at once: before the re-dump, about a third of these desyncs caught rank 0
    still sending the announcement (no "in all_reduce" in its stack) on a 2-core machine."""
    missing = []
    for attempt in range(15):
        with pytest.raises(RankFailure) as info:
            cache.run(SPEC, P + "skip_collective", {"rank": 1}, deadline_s=20)
        waiting = next(e for e in info.value.errors if e.rank == 0)
        if "in all_reduce" not in waiting.traceback:
            missing.append((attempt, waiting.traceback))
    assert not missing, missing[0]


def test_late_rank_hangs_until_deadline(cache: PoolCache) -> None:
    """deadline (3 s) < pg timeout (30 s), and no log diverges (rank 1 is only late): the
    deadline fires first -> kind "hang"."""
    failure, elapsed, *_ = break_pool(cache, SPEC, "stall_collective", {"rank": 1}, deadline_s=3)
    assert failure.kind == "hang"
    assert failure.outcomes == {0: "hung", 1: "hung"}
    err = failure.errors[0]
    assert err.type == "Hang"
    # where it waits: the all_reduce, called from the program
    assert "all_reduce" in err.message and "stall_collective" in err.message, err.message
    assert "<- stall_collective (runtime/testing_programs.py:" in err.message, err.message
    assert "in all_reduce" in err.traceback and "in stall_collective" in err.traceback
    if hasattr(torch._C._distributed_c10d, "_dump_fr_trace_json"):  # torch records gloo too
        assert "gloo:all_reduce" in err.traceback and "retired=False" in err.traceback
    assert 3 <= elapsed < 3 + 7, elapsed  # typically 3.1 s: dumps take milliseconds


def test_late_rank_fails_on_pg_timeout_first(cache: PoolCache) -> None:
    """pg timeout (2 s) < deadline (20 s): gloo's timeout fires first -> kind "error" on
    the waiting rank, with a Python traceback through the all_reduce."""
    failure, elapsed, *_ = break_pool(cache, FAST_PG_TIMEOUT, "stall_collective", {"rank": 1},
                                      deadline_s=20)
    assert failure.kind == "error"
    assert failure.outcomes == {0: "raised", 1: "killed"}
    assert failure.ranks == [0]
    err = failure.errors[0]
    assert "timed out" in err.message.lower() or "timeout" in err.message.lower(), err.message
    assert "in stall_collective" in err.traceback and "all_reduce" in err.traceback
    assert elapsed < 20, elapsed


def test_unknown_program_is_an_error_on_every_rank(cache: PoolCache) -> None:
    failure, *_ = break_pool(cache, SPEC, "no_such_program", {}, deadline_s=20)
    assert failure.kind == "error"
    assert failure.outcomes == {0: "raised", 1: "raised"}
    assert failure.errors[0].type == "AttributeError"


def test_unpicklable_payload_leaves_the_pool_alive(cache: PoolCache) -> None:
    pool = cache.get(SPEC)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):  # raised before anything is sent
        pool.run(P + "noop", lambda: None, deadline_s=10)
    assert pool.alive
    assert pool.run(P + "noop", None, deadline_s=10) == [None, None]


def test_close_kills_grandchildren_and_is_idempotent(cache: PoolCache) -> None:
    pool = RankPool(SPEC)
    pool.start()
    pids, pgid, tmp_dir = pool.pids, pool.pgid, pool.tmp_dir
    grandchildren = pool.run(P + "spawn_grandchild_and_sleep", None, deadline_s=20)
    assert len(running(grandchildren)) == 2
    pool.close()
    pool.close()
    assert pool.state == "closed"
    assert_pool_gone(pool, pids + grandchildren, pgid, tmp_dir)
    with pytest.raises(RuntimeError):
        pool.run(P + "noop", None, deadline_s=5)


def test_nccl_without_gpus_is_unavailable() -> None:
    spec = PoolSpec("nccl", 2)
    reason = spec.unavailable_reason()
    if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
        pytest.skip("this machine can run NCCL with 2 ranks")
    assert reason is not None and "NCCL" in reason
    with pytest.raises(PoolUnavailable):
        RankPool(spec).start()


def test_worker_killed_while_idle_is_replaced(cache: PoolCache) -> None:
    import signal

    from harness.runtime.leaks import wait_gone

    pool = cache.get(SPEC)
    pids, pgid, tmp_dir = pool.pids, pool.pgid, pool.tmp_dir
    os.kill(pids[1], signal.SIGKILL)
    assert wait_gone([pids[1]], timeout_s=10) == []
    starts = cache.starts
    fresh_pool_works(cache, SPEC)  # no RankFailure: the cache saw the dead worker first
    assert cache.starts == starts + 1
    assert_pool_gone(pool, pids, pgid, tmp_dir)


def test_a_rank_that_skips_its_second_center_update_is_named_in_seconds(tmp_path: Path) -> None:
    """The scenario of a real desync: rank 1 skips one center all-reduce, so the ranks'
    collectives pair up wrongly and rank 0 finally waits in one rank 1 never issues. Named
    at once -- culprit, collective number, step -- not after the process-group timeout."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "skip.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--impl",
         str(root / "tests" / "fixtures" / "skip_second_center_target.py"), "--world-sizes", "2",
         "--filter", "centering-equal-shards[", "--timeout", "20", "--report-dir",
         str(tmp_path / "r"), "--json", str(out)],
        cwd=root, env={**os.environ, "CI": "true", "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["failure"] == "hang" and result["error"]["rank"] == 1
    assert result["error"]["type"] == "Desync"
    assert "rank 1 broke the collective order at collective #2" in result["diagnosis"]
    assert "in step 2 update_center" in result["diagnosis"]
    assert "in step 1 update_center" in result["diagnosis"]
    assert "rank 1 Desync" in proc.stdout.split("rank 0 Waiting")[0]  # the cause comes first
    assert result["duration_s"] < 5 and wall < 60, (result["duration_s"], wall)
