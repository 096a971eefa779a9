"""The memory guard, the OOM-kill classification and the figures (memory.py), on a fake
probe and a fake cgroup tree: no processes, nothing allocated."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from harness.results import RankError
from harness.runtime import memory
from harness.runtime.failure import RankFailure, RunEnd, classify, crash_error
from harness.runtime.memory import MB, MemoryFigures, MemoryWatch, floor_bytes

GB = 1024 * MB
ZYGOTE = 150 * MB  # what every forked rank starts with


@dataclass
class FakeProbe:
    anons: dict[int, int | None] = field(default_factory=dict)  # pid -> anonymous bytes
    free: int = 16 * GB  # available
    size: int = 24 * GB  # total
    kills: int | None = 0

    def anon(self, pid: int) -> int | None:
        return self.anons.get(pid)

    def available(self) -> int:
        return self.free

    def total(self) -> int:
        return self.size

    def oom_kills(self) -> int | None:
        return self.kills


def watch(probe: FakeProbe, floor_mb: float | None = 1024) -> MemoryWatch:
    return MemoryWatch({0: 100, 1: 101, 2: 102}, inherited=ZYGOTE, floor_mb=floor_mb, probe=probe)


def test_samples_keep_each_ranks_peak_the_pools_peak_and_the_lowest_available() -> None:
    probe = FakeProbe(anons={100: ZYGOTE + 10 * MB, 101: ZYGOTE + 300 * MB, 102: ZYGOTE})
    w = watch(probe)
    assert w.sample({0, 1, 2}) is None
    probe.anons.update({100: ZYGOTE + 50 * MB, 101: ZYGOTE + 100 * MB})
    probe.free = 12 * GB
    assert w.sample({0, 1, 2}) is None
    f = w.figures
    assert f.rank_peak_mb == {0: 50.0, 1: 300.0, 2: 0.0}  # private: beyond the zygote's share
    assert f.total_peak_mb == 310.0  # one sample's sum, not a sum of per-rank peaks
    assert f.available_min_mb == 12 * 1024 and f.floor_mb == 1024 and f.samples == 2


def test_a_rank_that_gave_back_inherited_memory_counts_zero_not_negative() -> None:
    w = watch(FakeProbe(anons={100: ZYGOTE - 5 * MB}))
    w.sample({0})
    assert w.figures.rank_peak_mb == {0: 0.0}


def test_the_guard_stops_the_largest_running_rank_under_the_floor_with_the_figures() -> None:
    probe = FakeProbe(anons={100: ZYGOTE + 900 * MB, 101: ZYGOTE + 2000 * MB, 102: ZYGOTE + 700 * MB},
                      free=800 * MB)
    stop = watch(probe, floor_mb=1024).sample({0, 2})  # rank 1 (the largest) has finished
    assert isinstance(stop, RankError)
    assert (stop.rank, stop.type) == (0, "OutOfMemory")
    assert stop.message == (
        "rank 0 stopped by the harness before the kernel's OOM killer: the machine had 800 MB "
        "available, under the 1024 MB floor (DINO_HARNESS_MEMORY_FLOOR_MB sets it); it held "
        "900 MB private, the pool 3600 MB in all")


def test_the_guard_waits_while_memory_is_above_the_floor_and_is_off_at_zero() -> None:
    probe = FakeProbe(anons={100: ZYGOTE}, free=1025 * MB)
    assert watch(probe, floor_mb=1024).sample({0}) is None
    probe.free = 0
    assert watch(probe, floor_mb=0).sample({0}) is None
    assert watch(probe, floor_mb=1024).sample(set()) is None  # nothing runs: nothing to stop


def test_the_default_floor_is_a_gib_or_five_percent_and_can_be_overridden(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(memory.FLOOR_ENV, raising=False)
    assert floor_bytes(8 * GB) == 1 * GB
    assert floor_bytes(100 * GB) == 5 * GB
    assert floor_bytes(100 * GB, override_mb=300) == 300 * MB
    monkeypatch.setenv(memory.FLOOR_ENV, "2048")
    assert floor_bytes(100 * GB) == 2 * GB
    assert floor_bytes(100 * GB, override_mb=0) == 0  # the pool's own setting wins
    monkeypatch.setenv(memory.FLOOR_ENV, "lots")
    with pytest.raises(ValueError, match="DINO_HARNESS_MEMORY_FLOOR_MB='lots'"):
        floor_bytes(100 * GB)


def test_a_sigkill_while_the_oom_kill_counter_rose_is_a_kill_for_memory() -> None:
    probe = FakeProbe(anons={100: ZYGOTE, 101: ZYGOTE + 5000 * MB, 102: ZYGOTE + 20 * MB},
                      free=90 * MB, kills=3)
    w = watch(probe, floor_mb=0)
    w.sample({0, 1, 2})
    probe.kills = 4
    error = w.explain_kill(crash_error(1, -9, "log tail"))
    assert (error.rank, error.type, error.signal, error.traceback) == (1, "OutOfMemory", "SIGKILL", "log tail")
    assert error.message == (
        "rank 1 was killed by SIGKILL from the kernel's OOM killer (OOM kills 3 -> 4); at the "
        "last sample it held 5000 MB private, the pool 5020 MB in all, and the machine had "
        "90 MB available")


def test_a_sigkill_without_an_oom_kill_stays_a_plain_crash() -> None:
    w = watch(FakeProbe(kills=3))
    crash = crash_error(1, -9, "")
    assert w.explain_kill(crash) is crash
    segfault = crash_error(1, -11, "")
    assert w.explain_kill(segfault) is segfault  # only SIGKILL is the OOM killer's signal


def test_a_sigkill_with_no_readable_counter_says_the_cause_is_unknown() -> None:
    w = watch(FakeProbe(kills=None))
    error = w.explain_kill(crash_error(1, -9, ""))
    assert (error.type, error.signal) == ("Crash", "SIGKILL")
    assert error.message == ("rank 1 was killed by SIGKILL (by the kernel's OOM killer or not: "
                             "unknown, no OOM-kill counter is readable here)")


def test_a_memory_stop_is_a_crash_of_the_stopped_rank_first_the_others_killed() -> None:
    stop = RankError(rank=2, type="OutOfMemory", message="rank 2 stopped by the harness ...")
    figures = MemoryFigures(rank_peak_mb={0: 1.0, 1: 2.0, 2: 900.0}, total_peak_mb=903.0,
                            available_min_mb=800.0, floor_mb=1024.0, samples=5)
    f = classify(RunEnd(program="m:f", label="gloo-ws3", deadline_s=60.0, outcomes={0: "ok"},
                        errors={}, running=[1, 2], out_of_memory=stop, memory=figures))
    assert f.kind == "crash" and f.first_error is stop
    assert f.outcomes == {0: "ok", 1: "killed", 2: "crashed"}
    assert f.ranks == [2] and f.memory is figures


def test_an_oom_kill_comes_before_the_errors_it_caused() -> None:
    kill = RankError(rank=2, type="OutOfMemory", message="killed by the OOM killer", signal="SIGKILL")
    lost = RankError(rank=0, type="RuntimeError", message="connection closed by peer")
    f = classify(RunEnd(program="m:f", label="", deadline_s=60.0,
                        outcomes={0: "raised", 2: "crashed"}, errors={0: lost, 2: kill},
                        running=[1], failed_first=True))
    assert f.ranks == [2, 0] and f.kind == "crash"


def test_the_figures_travel_with_a_rank_failure() -> None:
    figures = MemoryFigures(rank_peak_mb={1: 512.04, 0: 3.0}, total_peak_mb=515.04,
                            available_min_mb=700.0, floor_mb=1024.0, samples=2)
    f = RankFailure("crash", [crash_error(1, -9, "")], {0: "killed", 1: "crashed"}, memory=figures)
    assert pickle.loads(pickle.dumps(f)).memory == figures
    assert f.to_json()["memory"] == {"rank_peak_mb": {"0": 3.0, "1": 512.0}, "total_peak_mb": 515.0,
                                     "available_min_mb": 700.0, "floor_mb": 1024.0, "samples": 2}
    assert RankFailure("hang", [], {0: "hung"}).to_json()["memory"] is None


# ------------------------------------------------------------------------ cgroups


@pytest.fixture
def fake_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """/proc files and cgroup roots under tmp_path; returns a writer of fake files."""
    real_read = memory._read
    files: dict[str, str] = {"/proc/meminfo": "MemTotal: 25000000 kB\nMemAvailable: 20000000 kB\n",
                             "/proc/vmstat": "pgfault 12\noom_kill 7\n"}

    def fake_read(path: str) -> str:
        return files[path] if path in files else real_read(path)

    monkeypatch.setattr(memory, "_read", fake_read)
    monkeypatch.setattr(memory, "_V2", replace(memory._V2, roots=(str(tmp_path / "v2"),)))
    monkeypatch.setattr(memory, "_V1", replace(memory._V1, roots=(str(tmp_path / "v1"),)))
    for cached in (memory._cgroup_chain, memory._limited_cgroups, memory._total):
        cached.cache_clear()

    def write(path: str, text: str) -> None:
        if path.startswith("/proc/"):
            files[path] = text
            return
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    yield write
    for cached in (memory._cgroup_chain, memory._limited_cgroups, memory._total):
        cached.cache_clear()  # the next reader finds the real ones again


def test_a_cgroup_v2_limit_bounds_what_is_available(fake_system: Callable[[str, str], None]) -> None:
    fake_system("/proc/self/cgroup", "0::/pod/ctr\n")
    fake_system("v2/cgroup.controllers", "cpu memory pids\n")
    fake_system("v2/pod/memory.max", str(4 * GB))  # the limit is on the parent cgroup
    fake_system("v2/pod/memory.current", str(3 * GB))
    fake_system("v2/pod/memory.stat", f"anon 100\ninactive_file {GB}\n")
    fake_system("v2/pod/ctr/memory.max", "max\n")
    fake_system("v2/pod/ctr/memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    assert memory.PROC.available() == 4 * GB - (3 * GB - GB)  # the limit less the working set
    assert memory.PROC.total() == 4 * GB
    assert memory.PROC.oom_kills() == 1  # the cgroup's counter, not the machine's 7


def test_cgroup_v1_and_no_limit_fall_back_to_the_machine(fake_system: Callable[[str, str], None]) -> None:
    fake_system("/proc/self/cgroup", "4:memory:/job\n1:cpu:/job\n0::/\n")
    fake_system("v1/memory.usage_in_bytes", "1\n")
    fake_system("v1/job/memory.limit_in_bytes", "9223372036854771712\n")  # v1's "no limit"
    fake_system("v1/job/memory.usage_in_bytes", str(GB))
    fake_system("v1/job/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert (memory.PROC.available(), memory.PROC.total()) == (20000000 * 1024, 25000000 * 1024)
    assert memory.PROC.oom_kills() == 2


def test_no_cgroup_counter_reads_the_machines(fake_system: Callable[[str, str], None]) -> None:
    fake_system("/proc/self/cgroup", "")
    assert memory.PROC.oom_kills() == 7
    fake_system("/proc/vmstat", "pgfault 12\n")
    assert memory.PROC.oom_kills() is None
