"""A warm rank worker: joins the process group once, then runs programs until told to stop.

Runs in a process forked by the zygote (see zygote.py), its stdout/stderr already
redirected to the rank's log file and already in the pool's process group.

The messages both ways, the configuration and the lifeline byte are protocol.py's.
"""

from __future__ import annotations

import inspect
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.distributed as dist

from harness.runtime import collective_log, memory
from harness.runtime.program import call_program, error_from_exception
from harness.runtime.protocol import (
    LIFELINE_DUMP_FLIGHT_RECORDER,
    START_RUN_ID,
    Collective,
    Error,
    Message,
    Ok,
    ProtocolError,
    Ready,
    Run,
    Stop,
    WorkerConfig,
    decode,
    encode,
)
from harness.runtime.spec import RankContext
from harness.runtime.stacks import dump_flight_recorder, install_worker_handlers


def worker_main(conn_fd: int, lifeline_fd: int, config: WorkerConfig) -> int:
    """Set the worker up as the parent is, join the group, serve programs. Returns the exit code."""
    _adopt_parent_environment(config)

    stacks_file = open(config.stacks_path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
    install_worker_handlers(stacks_file)
    watchdog = threading.Thread(
        target=_watch_lifeline, args=(lifeline_fd, config.flight_recorder_path),
        name="dino-harness-lifeline", daemon=True,
    )
    watchdog.start()

    channel = _Channel(Connection(conn_fd))
    torch.set_num_threads(config.num_threads)
    t0 = time.perf_counter()
    try:
        ctx = _init_process_group(config)
    except BaseException as exc:
        channel.send(Error(START_RUN_ID, error_from_exception(config.rank, exc)))
        return 1
    channel.send(Ready(pid=os.getpid(), init_s=time.perf_counter() - t0,
                       threads=torch.get_num_threads()))
    return _serve(channel, ctx)


class _Channel:
    """The connection to the parent, shared by the main thread (replies) and the threads
    that complete async collectives (log events): one message at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        data = encode(message)
        with self._lock:
            self.conn.send_bytes(data)

    def log(self, run_id: int, event: tuple[Any, ...]) -> None:
        self.send(Collective(run_id, event))


def _adopt_parent_environment(config: WorkerConfig) -> None:
    """The zygote was started earlier; take the parent's *current* path, cwd and env."""
    parent_path = list(config.sys_path)
    sys.path[:] = parent_path + [p for p in sys.path if p not in parent_path]
    os.chdir(config.cwd)
    os.environ.clear()
    os.environ.update(config.env)


def _init_process_group(config: WorkerConfig) -> RankContext:
    rank, world_size, backend = config.rank, config.world_size, config.backend
    store = dist.TCPStore(
        config.store_host, config.store_port, is_master=False,
        timeout=timedelta(seconds=config.start_timeout_s),
    )
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    kwargs: dict[str, Any] = {
        "backend": backend, "store": store, "rank": rank, "world_size": world_size,
        "timeout": timedelta(seconds=config.pg_timeout_s),
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


def _serve(channel: _Channel, ctx: RankContext) -> int:
    if ctx.world_size > 1:
        collective_log.install(channel.log)
    while True:
        try:
            message = decode(channel.conn.recv_bytes())
        except (EOFError, OSError):
            return 0  # the parent closed our connection: nothing left to do
        if isinstance(message, Stop):
            _shutdown(ctx)
            return 0
        if not isinstance(message, Run):
            raise ProtocolError(f"rank {ctx.rank} got {message!r}, which only a parent receives")
        collective_log.begin_run(message.run_id)
        status, value = call_program(ctx, message.program, message.payload, pickled=True)
        channel.send(Ok(message.run_id, value) if status == "ok" else Error(message.run_id, value))
        del value
        memory.release_heap()  # the next case, not this one, decides what a rank holds


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
