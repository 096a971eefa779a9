"""Small rank programs for the smoke test, the pool benchmark and the reliability tests.

They live in the package (not under tests/) so that any worker, a torchrun launch from
any directory, or a test's child process can import them.
Every program has the rank-program signature: fn(ctx: RankContext, payload) -> picklable.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from harness.runtime.spec import RankContext


def noop(ctx: RankContext, payload: Any) -> None:
    """No collective at all: the pure round-trip cost of the pool."""
    return None


def all_reduce_one(ctx: RankContext, payload: Any) -> None:
    """The benchmark's trivial case: one all-reduce of one element."""
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return None


def smoke_allreduce(ctx: RankContext, payload: Any) -> dict[str, Any]:
    """All-reduce rank+1 over the group: every rank must see W(W+1)/2."""
    x = torch.tensor([float(ctx.rank + 1)], device=ctx.device)
    dist.all_reduce(x)
    return {
        "rank": ctx.rank,
        "local_rank": ctx.local_rank,
        "sum": float(x.item()),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(ctx.device),
        "threads": torch.get_num_threads(),
    }


def rank_info(ctx: RankContext, payload: Any) -> dict[str, Any]:
    """Who am I: for the tests of reuse and of the worker's set-up."""
    return {
        "rank": ctx.rank,
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "device": str(ctx.device),
        "pid": os.getpid(),
        "pgid": os.getpgrp(),
        "threads": torch.get_num_threads(),
        "cwd": os.getcwd(),
        "is_initialized": dist.is_initialized(),
        "payload": payload,
        "gc_enabled": gc.isenabled(),
        "gc_frozen": gc.get_freeze_count(),  # objects inherited from the zygote, frozen
        "warm_modules": sorted(m for m in ("harness.kinds", "harness.losses") if m in sys.modules),
    }


def sum_ranks(ctx: RankContext, payload: Any) -> torch.Tensor:
    """all_reduce of (rank + payload) as a tensor result."""
    x = torch.full((2,), float(ctx.rank + (payload or 0)), device=ctx.device)
    dist.all_reduce(x)
    return x


# ----------------------------------------------------------------------------- faults
# payload: {"rank": the faulty rank, ...}; every other rank joins an all_reduce, so it
# waits for the faulty one (as a real loss would when one rank goes wrong).


def _faulty(ctx: RankContext, payload: dict[str, Any]) -> bool:
    return ctx.rank == int(payload.get("rank", ctx.world_size - 1))


def skip_collective(ctx: RankContext, payload: dict[str, Any]) -> str:
    """The faulty rank skips the all_reduce; the others wait in it."""
    if _faulty(ctx, payload):
        return "skipped"
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)  # waits for a rank that never comes
    return "reduced"


def stall_collective(ctx: RankContext, payload: dict[str, Any]) -> str:
    """The faulty rank is late (sleeps) before the all_reduce: a hang in which no rank's
    collective log diverges, which only the deadline or the process-group timeout ends."""
    if _faulty(ctx, payload):
        time.sleep(float(payload.get("stall_s", 3600)))
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return "reduced"


def raise_error(ctx: RankContext, payload: dict[str, Any]) -> str:
    if _faulty(ctx, payload):
        raise ValueError(f"planted error on rank {ctx.rank}")
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return "reduced"


def exit_code(ctx: RankContext, payload: dict[str, Any]) -> str:
    if _faulty(ctx, payload):
        os._exit(int(payload.get("code", 3)))
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return "reduced"


def kill_self(ctx: RankContext, payload: dict[str, Any]) -> str:
    if _faulty(ctx, payload):
        os.kill(os.getpid(), signal.SIGKILL)
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return "reduced"


def segfault(ctx: RankContext, payload: dict[str, Any]) -> str:
    if _faulty(ctx, payload):
        ctypes.string_at(0)  # reads address 0: SIGSEGV, faulthandler prints the stack
    x = torch.ones(1, device=ctx.device)
    dist.all_reduce(x)
    return "reduced"


def sleep_forever(ctx: RankContext, payload: dict[str, Any]) -> str:
    """Every rank writes a marker file (payload["marker_dir"]) and then sleeps: for the
    tests that interrupt a parent mid-run."""
    marker_dir = payload.get("marker_dir")
    if marker_dir:
        Path(marker_dir, f"rank{ctx.rank}.running").write_text(str(os.getpid()))
    while True:
        time.sleep(3600)


def spawn_grandchild_and_sleep(ctx: RankContext, payload: dict[str, Any]) -> int:
    """Start a grandchild process (same process group) and return its pid: close() must
    take it down too."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    return proc.pid


def set_default_dtype_double(ctx: RankContext, payload: Any) -> str:
    """Changes global state; the worker must restore it for the next program."""
    torch.set_default_dtype(torch.float64)
    return str(torch.get_default_dtype())


def default_dtype(ctx: RankContext, payload: Any) -> str:
    return str(torch.get_default_dtype())


_HELD: list[torch.Tensor] = []


def hold_memory(ctx: RankContext, payload: dict[str, Any]) -> int:
    """Rank payload["rank"] allocates payload["mb"] MB (written, so resident) and keeps it
    until the worker exits; payload["sleep_s"] keeps every rank running that long."""
    if _faulty(ctx, payload):
        _HELD.append(torch.ones(int(payload["mb"]) * 2**18))  # float32: 2**18 per MB
    time.sleep(float(payload.get("sleep_s", 0)))
    return sum(t.numel() * 4 for t in _HELD)
