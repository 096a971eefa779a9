"""Memory, told honestly: what each rank holds, what the machine has left, and a guard that
stops a pool before the kernel's OOM killer picks a victim.

The parent samples while a run is in flight (the gather loop wakes at least every 0.25 s;
it samples at most that often, and once when the run ends):

* a rank's **private memory**: its anonymous resident memory beyond what it inherited from
  the zygote (``/proc/PID/statm`` resident - shared, minus the zygote's own). A forked rank
  shares the zygote's ~150 MB until it writes to it, so resident - shared alone would
  count that W times. This misses the few MB of inherited pages a rank copies on write
  (smaps_rollup's exact USS does not: ~6 MB a rank here), but costs ~10 us a rank where
  smaps_rollup costs ~4 ms: a sample of 64 ranks takes 0.5 ms, 0.25 s with smaps_rollup
  (measured on a 2-core machine).
* the machine's **available memory**: ``/proc/meminfo`` MemAvailable, and where a cgroup
  sets a limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``, on this cgroup or an
  ancestor), the limit minus the cgroup's working set (usage less its inactive file cache,
  which the kernel reclaims before it kills anything).
* the kernel's **OOM-kill counter**: the cgroup's (v2 ``memory.events``, v1
  ``memory.oom_control``), else the machine's (``/proc/vmstat``); None where none is
  readable. A rank that dies by SIGKILL while it rose was killed for memory.

The guard: when the available memory drops under the floor (default max(1 GiB, 5 % of
the total); ``DINO_HARNESS_MEMORY_FLOOR_MB`` or the pool's ``memory_floor_mb`` overrides
it, 0 turns it off), the pool is killed at once and the rank holding the most private
memory is reported as stopped for memory, with the figures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from harness.results import RankError

OUT_OF_MEMORY = "OutOfMemory"  # the RankError type of a rank stopped or killed for memory
FLOOR_ENV = "DINO_HARNESS_MEMORY_FLOOR_MB"
MB = 2**20
MIN_FLOOR = 1024 * MB
FLOOR_FRACTION = 0.05
_NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a huge page-rounded number


class Probe(Protocol):
    """Where the figures come from (``PROC``; the tests pass fakes). Bytes."""

    def anon(self, pid: int) -> int | None: ...

    def available(self) -> int: ...  # what the machine, or this process's cgroup, can hand out

    def total(self) -> int: ...  # MemTotal, or the tightest cgroup limit

    def oom_kills(self) -> int | None: ...


@dataclass
class MemoryFigures:
    """A run's memory, as sampled by the parent: ``RankPool.last_memory``."""

    rank_peak_mb: dict[int, float] = field(default_factory=dict)  # peak private MB per rank
    total_peak_mb: float = 0.0  # peak of the pool's total private MB (ranks summed per sample)
    available_min_mb: float | None = None  # the machine's available memory at its lowest
    floor_mb: float = 0.0  # the guard's floor
    samples: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"rank_peak_mb": {str(r): round(v, 1) for r, v in sorted(self.rank_peak_mb.items())},
                "total_peak_mb": round(self.total_peak_mb, 1),
                "available_min_mb": None if self.available_min_mb is None else round(self.available_min_mb, 1),
                "floor_mb": round(self.floor_mb, 1), "samples": self.samples}


def floor_bytes(total: int, override_mb: float | None = None) -> int:
    """The guard's floor: ``override_mb``, else $DINO_HARNESS_MEMORY_FLOOR_MB, else
    max(1 GiB, 5 % of the total)."""
    if override_mb is None and os.environ.get(FLOOR_ENV, "").strip():
        try:
            override_mb = float(os.environ[FLOOR_ENV])
        except ValueError:
            raise ValueError(f"{FLOOR_ENV}={os.environ[FLOOR_ENV]!r}: expected megabytes") from None
    if override_mb is not None:
        return max(0, int(override_mb * MB))
    return max(MIN_FLOOR, int(FLOOR_FRACTION * total))


def headroom_mb(probe: Probe | None = None, floor_mb: float | None = None) -> tuple[float, float]:
    """What the machine can still hand out above the guard's floor, and that floor (MB)."""
    probe = probe or PROC
    floor = floor_bytes(probe.total(), floor_mb) / MB
    return probe.available() / MB - floor, floor


class MemoryWatch:
    """One run's samples of the ranks' private memory and of the machine, and the guard."""

    def __init__(self, pids: dict[int, int], inherited: int, floor_mb: float | None = None,
                 probe: Probe | None = None) -> None:
        self.pids = pids
        self.inherited = inherited  # bytes of anonymous memory a rank starts with (the zygote's)
        self.probe = probe or PROC
        self.oom_kills_before = self.probe.oom_kills()
        self.figures = MemoryFigures(floor_mb=floor_bytes(self.probe.total(), floor_mb) / MB)
        self.last_rank_mb: dict[int, float] = {}
        self.last_total_mb = 0.0
        self.last_available_mb: float | None = None

    def sample(self, running: set[int] | frozenset[int]) -> RankError | None:
        """Read every rank and the machine once; the error that stops the pool when the
        available memory is under the floor (on the running rank with the most private
        memory), else None."""
        for rank, pid in self.pids.items():
            anon = self.probe.anon(pid)
            if anon is not None:
                self.last_rank_mb[rank] = max(0, anon - self.inherited) / MB
        available_mb = self.probe.available() / MB
        self.last_available_mb = available_mb
        self.last_total_mb = sum(self.last_rank_mb.values())
        f = self.figures
        f.samples += 1
        for rank, mb in self.last_rank_mb.items():
            f.rank_peak_mb[rank] = max(mb, f.rank_peak_mb.get(rank, 0.0))
        f.total_peak_mb = max(f.total_peak_mb, self.last_total_mb)
        f.available_min_mb = available_mb if f.available_min_mb is None else min(f.available_min_mb, available_mb)
        if f.floor_mb <= 0 or available_mb >= f.floor_mb or not running:
            return None
        rank = max(sorted(running), key=lambda r: self.last_rank_mb.get(r, 0.0))
        return RankError(rank=rank, type=OUT_OF_MEMORY, message=(
            f"rank {rank} stopped by the harness before the kernel's OOM killer: the machine "
            f"had {available_mb:.0f} MB available, under the {f.floor_mb:.0f} MB floor "
            f"({FLOOR_ENV} sets it); {self._held(rank)}"))

    def explain_kill(self, error: RankError) -> RankError:
        """A rank's death by SIGKILL, told with what the OOM-kill counter says: killed for
        memory by the kernel (it rose), not (it did not), or unknown (none readable)."""
        if error.signal != signal.Signals.SIGKILL.name:
            return error
        before, now = self.oom_kills_before, self.probe.oom_kills()
        if before is None or now is None:
            return replace(error, message=f"{error.message} (by the kernel's OOM killer or not: "
                                          "unknown, no OOM-kill counter is readable here)")
        if now <= before:
            return error
        return replace(error, type=OUT_OF_MEMORY, message=(
            f"rank {error.rank} was killed by SIGKILL from the kernel's OOM killer (OOM kills "
            f"{before} -> {now}); at the last sample {self._held(error.rank)}, and the machine "
            f"had {_mb(self.last_available_mb)} available"))

    def _held(self, rank: int) -> str:
        return (f"it held {_mb(self.last_rank_mb.get(rank))} private, the pool "
                f"{self.last_total_mb:.0f} MB in all")


def _mb(value: float | None) -> str:
    return "? MB" if value is None else f"{value:.0f} MB"


# --------------------------------------------------------------------------- /proc, cgroups


class _Proc:
    """The real figures, read from /proc and the cgroup file system."""

    page = os.sysconf("SC_PAGE_SIZE")

    def anon(self, pid: int) -> int | None:
        """Resident minus shared (file-backed and shmem) pages: anonymous resident bytes."""
        try:  # os.read, not open(): half the cost, and this runs W times a sample
            fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
            try:
                fields = os.read(fd, 256).split()
            finally:
                os.close(fd)
        except OSError:
            return None
        return (int(fields[1]) - int(fields[2])) * self.page

    def available(self) -> int:
        available = _keyed(_read("/proc/meminfo")).get("MemAvailable", 0) * 1024
        for group, limit in _limited_cgroups():
            usage = _number(_read(os.path.join(group.path, group.files.usage)))
            if usage is not None:
                stat = _keyed(_read(os.path.join(group.path, "memory.stat")))
                working_set = usage - stat.get(group.files.inactive_file, 0)
                available = min(available, limit - working_set)
        return available

    def total(self) -> int:
        return _total()

    def oom_kills(self) -> int | None:
        group = _own_cgroup()
        if group is not None:
            kills = _keyed(_read(os.path.join(group.path, group.files.events))).get("oom_kill")
            if kills is not None:
                return kills
        return _keyed(_read("/proc/vmstat")).get("oom_kill")


PROC: Probe = _Proc()


def release_heap() -> None:
    """Hand the heap's freed pages back to the kernel (glibc's ``malloc_trim``).

    A case's tensors are freed when it ends, but glibc keeps the pages of a fragmented heap;
    a pool of 64 ranks that each kept their largest case's ~100 MB held 6 GB between cases
    (measured: K = 65536 scale catalogue, W = 64). A no-op where libc has no malloc_trim.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


@dataclass(frozen=True)
class _Files:
    roots: tuple[str, ...]  # where this version's memory hierarchy may be mounted
    limit: str
    usage: str
    inactive_file: str  # the memory.stat key of reclaimable file cache
    events: str  # where the OOM-kill counter is

    def mounted(self, root: str) -> bool:
        if self.limit == "memory.max":  # v2: the memory controller must be enabled there
            return "memory" in _read(os.path.join(root, "cgroup.controllers")).split()
        return os.path.exists(os.path.join(root, self.usage))


_V2 = _Files(("/sys/fs/cgroup", "/sys/fs/cgroup/unified"), "memory.max", "memory.current",
             "inactive_file", "memory.events")
_V1 = _Files(("/sys/fs/cgroup/memory",), "memory.limit_in_bytes", "memory.usage_in_bytes",
             "total_inactive_file", "memory.oom_control")


@dataclass(frozen=True)
class _Cgroup:
    path: str
    files: _Files


@functools.lru_cache(maxsize=1)
def _cgroup_chain() -> tuple[_Cgroup, ...]:
    """This process's memory cgroup and its ancestors, innermost first (limits nest)."""
    for line in _read("/proc/self/cgroup").splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            files = _V2
        elif "memory" in controllers.split(","):
            files = _V1
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for root in files.roots:
            if files.mounted(root):
                # Under a cgroup namespace the own cgroup is the root: the missing are skipped.
                dirs = (os.path.join(root, *parts[:n]) for n in range(len(parts), -1, -1))
                return tuple(_Cgroup(d, files) for d in dirs if os.path.isdir(d))
    return ()


def _own_cgroup() -> _Cgroup | None:
    chain = _cgroup_chain()
    return chain[0] if chain else None


@functools.lru_cache(maxsize=1)
def _limited_cgroups() -> tuple[tuple[_Cgroup, int], ...]:
    """The cgroups of the chain that set a memory limit, with it (read once: limits stay)."""
    limited = []
    for group in _cgroup_chain():
        limit = _number(_read(os.path.join(group.path, group.files.limit)))
        if limit is not None and limit < _NO_LIMIT:
            limited.append((group, limit))
    return tuple(limited)


@functools.lru_cache(maxsize=1)
def _total() -> int:
    total = _keyed(_read("/proc/meminfo")).get("MemTotal", 0) * 1024
    return min([total, *(limit for _, limit in _limited_cgroups())])


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _number(text: str) -> int | None:
    """A cgroup file's single number; None for "max" (no limit) or an unreadable file."""
    text = text.strip()
    return int(text) if text.isdigit() else None


def _keyed(text: str) -> dict[str, int]:
    """'key value [kB]' lines (meminfo, vmstat, memory.stat, memory.events) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out
