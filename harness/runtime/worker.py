"""A warm rank worker: joins the process group once, then runs programs until told to stop.

Runs in a process forked by the zygote (see zygote.py), its stdout/stderr already
redirected to the rank's log file and already in the pool's process group.

Messages (pickled, over a socket pair):
  parent -> worker: ("run", run_id, program, payload_bytes) | ("stop",)
  worker -> parent: ("ready", 0, info) | ("ok", run_id, result) | ("error", run_id, RankError)
The payload travels as bytes pickled once by the parent and unpickled here inside the
error handler, so that a payload this rank cannot unpickle is an error, not a crash.
"""

from __future__ import annotations

import inspect
import os
import pickle
import signal
import sys
import threading
import time
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.distributed as dist

from harness.runtime.program import call_program, error_from_exception
from harness.runtime.spec import RankContext
from harness.runtime.stacks import dump_flight_recorder, install_worker_handlers

LIFELINE_DUMP_FLIGHT_RECORDER = b"F"  # pool.py writes it on the lifeline to ask for a dump


def worker_main(conn_fd: int, lifeline_fd: int, config: dict[str, Any]) -> int:
    """Set the worker up as the parent is, join the group, serve programs. Returns the exit code."""
    rank = int(config["rank"])
    _adopt_parent_environment(config)

    stacks_file = open(config["stacks_path"], "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
    install_worker_handlers(stacks_file)
    watchdog = threading.Thread(
        target=_watch_lifeline, args=(lifeline_fd, config["flight_recorder_path"]),
        name="dino-harness-lifeline", daemon=True,
    )
    watchdog.start()

    conn = Connection(conn_fd)
    torch.set_num_threads(int(config["num_threads"]))
    t0 = time.perf_counter()
    try:
        ctx = _init_process_group(config)
    except BaseException as exc:
        conn.send_bytes(pickle.dumps(("error", 0, error_from_exception(rank, exc))))
        return 1
    info = {"pid": os.getpid(), "init_s": time.perf_counter() - t0, "threads": torch.get_num_threads()}
    conn.send_bytes(pickle.dumps(("ready", 0, info)))
    return _serve(conn, ctx)


def _adopt_parent_environment(config: dict[str, Any]) -> None:
    """The zygote was started earlier; take the parent's *current* path, cwd and env."""
    parent_path = [p for p in config["sys_path"]]
    sys.path[:] = parent_path + [p for p in sys.path if p not in parent_path]
    os.chdir(config["cwd"])
    os.environ.clear()
    os.environ.update(config["env"])


def _init_process_group(config: dict[str, Any]) -> RankContext:
    rank = int(config["rank"])
    world_size = int(config["world_size"])
    backend = str(config["backend"])
    store = dist.TCPStore(
        config["store_host"], int(config["store_port"]), is_master=False,
        timeout=timedelta(seconds=float(config["start_timeout_s"])),
    )
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    kwargs: dict[str, Any] = {
        "backend": backend, "store": store, "rank": rank, "world_size": world_size,
        "timeout": timedelta(seconds=float(config["pg_timeout_s"])),
    }
    if backend == "nccl" and "device_id" in inspect.signature(dist.init_process_group).parameters:
        kwargs["device_id"] = device  # eager communicator init, bound to this rank's GPU
    dist.init_process_group(**kwargs)

    # One all-reduce proves that every rank joined (gloo connects at init, NCCL lazily)
    # and moves the connection set-up out of the first program's time.
    probe = torch.ones(1, device=device)
    dist.all_reduce(probe)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if int(probe.item()) != world_size:
        raise RuntimeError(f"warm-up all_reduce gave {probe.item()}, expected {world_size}")
    return RankContext(rank=rank, world_size=world_size, backend=backend, device=device,
                       local_rank=rank, mode="pool")


def _serve(conn: Connection, ctx: RankContext) -> int:
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return 0  # the parent closed our connection: nothing left to do
        if message[0] == "stop":
            _shutdown(ctx)
            return 0
        if message[0] == "run":
            _, run_id, program, payload_bytes = message
            status, value = call_program(ctx, program, payload_bytes, pickled=True)
            conn.send_bytes(pickle.dumps((status, run_id, value), protocol=pickle.HIGHEST_PROTOCOL))


def _shutdown(ctx: RankContext) -> None:
    """Graceful stop: the group is healthy (the parent only stops live pools this way)."""
    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:
        pass  # the parent kills the process group next anyway


def _watch_lifeline(lifeline_fd: int, flight_recorder_path: str) -> None:
    """EOF on the lifeline means the parent died: take the whole pool down with it.

    This is what keeps workers from outliving a SIGKILLed parent. The parent also writes
    single bytes here to ask for an NCCL flight-recorder dump (the main thread may be
    blocked in CUDA, so the dump must come from another thread).
    """
    while True:
        try:
            data = os.read(lifeline_fd, 1)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        except OSError:
            data = b""
        if not data:
            try:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            finally:
                os._exit(1)
        if data == LIFELINE_DUMP_FLIGHT_RECORDER:
            try:
                dump_flight_recorder(flight_recorder_path)
            except Exception:
                pass
