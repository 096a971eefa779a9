"""RankPool: W warm workers that run SPMD programs, and never hang or leak.

Life of a pool:
  start()  the parent opens a TCPStore on 127.0.0.1:<port the OS picks> (its own
           listening socket, handed to the store: no "find a free port" race, nothing
           reachable from outside), has the zygote fork W workers into one new process
           group, and waits until every rank has joined the process group.
  run()    sends (program, payload) to every rank and waits, on the result pipes and
           the workers' exit sentinels at once, for every rank's answer or death, or
           for the deadline. Any failure raises RankFailure and kills the pool: after
           a timeout or a lost peer the process group cannot be trusted.
  close()  asks the workers to leave the group, then kills the process group anyway
           (grandchildren included) and removes the pool's temporary directory.

What counts as a failure, and what the caller learns (see RankFailure):
  a rank raises        its traceback; kind "error"
  a rank dies          seen at once through its exit sentinel; exit code or signal name,
                       plus the tail of its log (a segfault's faulthandler stack); "crash"
  the deadline passes  every rank still running dumps its Python stacks (SIGUSR1 ->
                       faulthandler) and is killed; "hang", with where each one waited
  memory runs low      the machine's available memory under the guard's floor: the pool
                       is killed at once, the rank with the most private memory reported
                       "OutOfMemory"; a rank the kernel's OOM killer took is named so too
                       (memory.py); "crash". `last_memory`: every run's sampled figures
After the first failure the other ranks get `failure_grace_s` to report (a peer's crash
usually makes them raise at once); ranks still running then are "killed".
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_ready
from typing import Any, NoReturn

from harness.results import RankError
from harness.runtime import lifecycle
from harness.runtime.collective_log import Desync, DesyncWatch
from harness.runtime.failure import RankFailure, RunEnd, classify, crash_error
from harness.runtime.memory import PROC, MemoryFigures, MemoryWatch
from harness.runtime.program import Program, program_ref
from harness.runtime.protocol import (
    LIFELINE_DUMP_FLIGHT_RECORDER,
    START_RUN_ID,
    Message,
    Run,
    SpawnRequest,
    Stop,
    WorkerConfig,
    decode,
    encode,
)
from harness.runtime.run_state import RunState
from harness.runtime.spec import PoolSpec, threads_per_rank
from harness.runtime.stacks import read_log_tail, request_stack_dumps, summarize_flight_recorder
from harness.runtime.zygote import get_zygote, read_status

STORE_HOST = "127.0.0.1"
FLIGHT_RECORDER_ENTRIES = 2000
POLL_S = 0.25  # the gather loop wakes at least this often, events or not
LOG_TAIL = 16  # the last collectives of each rank kept with a failure


def boot_zygote(backend: str) -> None:
    """Start booting the zygote without waiting for it, so that its `import torch`
    overlaps what this process does meanwhile: a command calls it first thing, before
    its own `import torch` (loading the target, the checks), and a pool's start calls it
    again (a no-op then). gloo only: NCCL may turn out unavailable, so it waits for the
    availability check rather than import torch for nothing. The exit handlers are
    installed here, so a run that stops before any pool (bad input) stops the zygote."""
    if backend == "gloo":
        lifecycle.install_handlers()
        get_zygote().launch()


class PoolUnavailable(RuntimeError):
    """The spec cannot run here (see PoolSpec.unavailable_reason): skip, do not fail."""


class PoolKilled(RuntimeError):
    """The pool was killed from outside the run (a signal) while the run was waiting."""


@dataclass
class _Worker:
    rank: int
    pid: int
    conn: Connection
    status_fd: int
    lifeline_w: int
    log_path: str
    stacks_path: str
    flight_recorder_path: str
    returncode: int | None = None
    exited: bool = False


class RankPool:
    """W warm ranks of one PoolSpec. Not thread-safe: one run at a time."""

    def __init__(
        self,
        spec: PoolSpec,
        *,
        start_timeout_s: float = 120.0,
        failure_grace_s: float = 1.0,
        stop_timeout_s: float = 5.0,
        memory_floor_mb: float | None = None,
    ) -> None:
        self.spec = spec
        self.start_timeout_s = start_timeout_s
        self.failure_grace_s = failure_grace_s
        self.stop_timeout_s = stop_timeout_s
        self.memory_floor_mb = memory_floor_mb  # None: memory.floor_bytes' default
        self.start_s: float | None = None
        self.runs = 0  # programs completed on this pool
        self.last_failure: RankFailure | None = None
        self.last_memory: MemoryFigures | None = None  # of the last run (or the start)
        self._inherited = 0  # anonymous bytes every worker starts with: the zygote's
        self._state = "new"  # new -> starting -> ready -> dead | closed
        self._workers: list[_Worker] = []
        self._dir: str | None = None
        self._store: Any = None
        self._pgid: int | None = None
        self._run_id = 0
        self._released = False
        self._owner_pid = os.getpid()

    def __repr__(self) -> str:
        return f"RankPool({self.spec.label}, state={self._state}, pgid={self._pgid})"

    def __enter__(self) -> RankPool:
        if self._state == "new":
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ introspection

    @property
    def alive(self) -> bool:
        return self._state == "ready" and self._owner_pid == os.getpid()

    @property
    def state(self) -> str:
        return self._state

    @property
    def pgid(self) -> int | None:
        """The process group of the workers (the pid of rank 0's worker)."""
        return self._pgid

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers]

    @property
    def tmp_dir(self) -> str | None:
        """Logs, stack dumps; removed when the pool stops."""
        return self._dir

    def check_health(self) -> bool:
        """False (and the pool is killed) if a worker died while the pool was idle, so
        that a cache starts a fresh pool instead of failing the next run with a crash."""
        if not self.alive:
            return False
        for w in self._workers:
            if _poll_fd(w.status_fd) or _poll(w.conn):  # idle workers send nothing
                self._terminate("dead")
                return False
        return True

    # ------------------------------------------------------------------ start

    def start(self) -> float:
        """Start W workers and wait until every rank joined the process group.

        Returns the seconds it took. The first pool of a process also boots the zygote
        (one `import torch`); later pools only fork."""
        if self._state != "new":
            raise RuntimeError(f"{self!r}: a RankPool starts once; make a new one")
        boot_zygote(self.spec.backend)  # a no-op when the command booted it already
        reason = self.spec.unavailable_reason()
        if reason is not None:
            raise PoolUnavailable(reason)
        self._state = "starting"
        t0 = time.monotonic()
        try:
            self._dir = tempfile.mkdtemp(prefix=f"dino-pool-{self.spec.label}-")
            lifecycle.register(self)
            port = self._open_store()
            zygote = get_zygote()
            zygote.ensure_running(timeout_s=self.start_timeout_s)
            env = self._worker_env()
            for rank in range(self.spec.world_size):
                self._spawn_worker(zygote, rank, port, env)
            self._inherited = PROC.anon(zygote.pid or 0) or 0
            self._gather(START_RUN_ID, t0 + self.start_timeout_s, "<start>", self.start_timeout_s)
        except BaseException:
            self._terminate("dead")
            raise
        self._state = "ready"
        self.start_s = time.monotonic() - t0
        return self.start_s

    def _open_store(self) -> int:
        """A TCPStore served by the parent on a socket we bound to 127.0.0.1:0 ourselves.

        The OS picks the port and the socket stays bound: two pools (or two xdist
        workers) can never race for it, and it is not reachable from other hosts
        (TCPStore binds all interfaces when it opens the port itself)."""
        import torch.distributed as dist

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((STORE_HOST, 0))
            sock.listen(max(128, 4 * self.spec.world_size))
            port = sock.getsockname()[1]
            timeout = timedelta(seconds=self.start_timeout_s)
            try:
                self._store = dist.TCPStore(
                    STORE_HOST, port, None, True, timeout, wait_for_workers=False,
                    master_listen_fd=sock.fileno(), use_libuv=True,
                )
            except TypeError:  # torch without use_libuv
                self._store = dist.TCPStore(
                    STORE_HOST, port, None, True, timeout, wait_for_workers=False,
                    master_listen_fd=sock.fileno(),
                )
        except BaseException:
            sock.close()
            raise
        sock.detach()  # the store owns (and closes) the listening fd now
        return port

    def _worker_env(self) -> dict[str, str]:
        assert self._dir is not None
        env = dict(os.environ)
        # The flight recorder (the last collectives of each rank and their state) is read
        # back when a run hangs. It is read at process-group creation; recent torch calls
        # it TORCH_FR_BUFFER_SIZE and records gloo too, older torch NCCL only.
        if not any(k in env for k in ("TORCH_FR_BUFFER_SIZE", "TORCH_NCCL_TRACE_BUFFER_SIZE")):
            env[_flight_recorder_env()] = str(FLIGHT_RECORDER_ENTRIES)
        if self.spec.backend == "gloo":
            # All ranks of a pool are on this host: keep gloo's pair sockets on loopback
            # rather than on whatever the hostname resolves to.
            if "GLOO_SOCKET_IFNAME" not in env and os.path.exists("/sys/class/net/lo"):
                env["GLOO_SOCKET_IFNAME"] = "lo"
        else:
            # If the NCCL watchdog times out, it dumps the flight recorder into our dir.
            env.setdefault("TORCH_NCCL_DUMP_ON_TIMEOUT", "1")
            env.setdefault("TORCH_NCCL_DEBUG_INFO_TEMP_FILE", os.path.join(self._dir, "nccl_trace_rank_"))
            env.setdefault("TORCH_FR_DUMP_TEMP_FILE", os.path.join(self._dir, "nccl_trace_rank_"))
        return env

    def _spawn_worker(self, zygote: Any, rank: int, port: int, env: dict[str, str]) -> None:
        assert self._dir is not None
        log_path = os.path.join(self._dir, f"rank{rank}.log")
        stacks_path = os.path.join(self._dir, f"rank{rank}.stacks")
        fr_path = os.path.join(self._dir, f"rank{rank}.flight_recorder")
        config = WorkerConfig(
            rank=rank, world_size=self.spec.world_size, backend=self.spec.backend,
            pg_timeout_s=self.spec.pg_timeout_s, start_timeout_s=self.start_timeout_s,
            store_host=STORE_HOST, store_port=port, sys_path=tuple(sys.path), cwd=os.getcwd(),
            env=env, num_threads=threads_per_rank(self.spec.world_size),
            stacks_path=stacks_path, flight_recorder_path=fr_path,
        )
        request = SpawnRequest(pgid=self._pgid or 0, log_path=log_path, config=config)
        parent_conn, child_conn = Pipe(duplex=True)
        lifeline_r, lifeline_w = os.pipe()
        try:
            pid, status_fd = zygote.spawn(request, [child_conn.fileno(), lifeline_r])
        except BaseException:
            parent_conn.close()
            os.close(lifeline_w)
            raise
        finally:
            child_conn.close()
            os.close(lifeline_r)
        if self._pgid is None:
            self._pgid = pid  # rank 0 leads the group; the zygote made it so before replying
        self._workers.append(
            _Worker(rank=rank, pid=pid, conn=parent_conn, status_fd=status_fd, lifeline_w=lifeline_w,
                    log_path=log_path, stacks_path=stacks_path, flight_recorder_path=fr_path)
        )

    # ------------------------------------------------------------------ run

    def run(self, program: Program, payload: Any = None, *, deadline_s: float) -> list[Any]:
        """Run program(ctx, payload) on every rank; the per-rank results in rank order.

        Raises RankFailure (and the pool is dead) if any rank raised, died, or was still
        running when deadline_s passed. An unpicklable payload raises before anything
        is sent, and the pool stays alive."""
        if not self.alive:
            raise RuntimeError(f"{self!r} is not alive: start it, or make a new one after a failure")
        if not deadline_s > 0:
            raise ValueError(f"deadline_s must be positive, got {deadline_s!r}")
        program = program_ref(program)
        payload_bytes = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        self._run_id += 1
        message = encode(Run(self._run_id, program, payload_bytes))
        t0 = time.monotonic()
        try:
            for w in self._workers:
                try:
                    w.conn.send_bytes(message)
                except OSError:
                    pass  # a dead worker: its exit sentinel reports it in _gather
            results = self._gather(self._run_id, t0 + deadline_s, program, deadline_s)
        except RankFailure:
            raise
        except BaseException:
            self._terminate("dead")  # interrupted (Ctrl-C) mid-run: the group is mid-collective
            raise
        self.runs += 1
        return results

    def _gather(self, run_id: int, deadline: float, program: str, deadline_s: float) -> list[Any]:
        """Every rank's answer, in rank order; RankFailure (and the pool killed) otherwise.

        One loop: wait on the pending ranks' pipes and exit sentinels, hand each event to
        its handler (RunState: answer, error, collective; here: a rank's death), and check
        the collective logs for a desync. What the failure means is failure.classify's."""
        t0 = time.monotonic()
        state = RunState(run_id, len(self._workers))
        watch = DesyncWatch(state.logs) if len(self._workers) > 1 else None
        memory = MemoryWatch({w.rank: w.pid for w in self._workers}, self._inherited,
                             self.memory_floor_mb)
        self.last_memory = memory.figures
        desync: Desync | None = None
        out_of_memory: RankError | None = None
        next_sample = t0 + POLL_S  # a short run is sampled once, at its end
        while state.pending:
            if self._state not in ("starting", "ready"):
                raise PoolKilled(f"{self!r} was killed while waiting for {program}")
            now = time.monotonic()
            if now >= next_sample:  # at most every POLL_S, however many events arrive
                next_sample = now + POLL_S
                out_of_memory = memory.sample(state.pending)
                if out_of_memory is not None:
                    break
            limit = state.limit(deadline, self.failure_grace_s)
            if now >= limit:
                break
            if watch is not None and state.first_failure is None:
                desync = watch.check(now)
                if desync is not None:
                    break
            # Woken at least every POLL_S: a mismatch without evidence settles, memory is read.
            for rank, message in self._events(state, min(limit - now, POLL_S), program):
                if message is None:
                    self._on_exit(state, self._workers[rank], memory)
                else:
                    state.on_message(rank, message, time.monotonic())
        if out_of_memory is None:
            memory.sample(frozenset())  # what the ranks hold at the end (no guard: none runs)
        if state.succeeded and (watch is None or (desync := watch.check(float("inf"))) is None):
            return state.results_in_order()
        self._fail(state, program, deadline_s, t0, desync=desync, out_of_memory=out_of_memory,
                   memory=memory.figures)

    def _events(self, state: RunState, timeout_s: float, program: str
                ) -> Iterator[tuple[int, Message | None]]:
        """What one wait brings, answers first (a rank that answered and then exited has
        answered): (rank, a message), or (rank, None) when the rank's process is gone."""
        by_conn = {w.conn: w for w in self._workers if w.rank in state.pending}
        by_fd = {w.status_fd: w for w in self._workers if w.rank in state.pending and not w.exited}
        try:
            ready = wait_ready([*by_conn, *by_fd], timeout=timeout_s)
        except (OSError, ValueError):
            if self._state not in ("starting", "ready"):  # a signal handler closed our fds
                raise PoolKilled(f"{self!r} was killed while waiting for {program}") from None
            raise
        for obj in ready:
            if obj in by_conn:
                yield self._receive(by_conn[obj])
        for obj in ready:
            if obj in by_fd:
                w = by_fd[obj]
                while w.rank in state.pending and _poll(w.conn):
                    yield self._receive(w)
                yield w.rank, None

    def _receive(self, w: _Worker) -> tuple[int, Message | None]:
        try:
            return w.rank, decode(w.conn.recv_bytes())
        except (EOFError, OSError):
            return w.rank, None  # the connection closed: the worker is dying

    def _on_exit(self, state: RunState, w: _Worker, memory: MemoryWatch) -> None:
        """The handler of a rank's death: its exit status, the end of its log, and whether
        the kernel's OOM killer sent its SIGKILL."""
        if w.rank not in state.pending:
            return
        self._collect_status(w, timeout_s=5.0)
        error = memory.explain_kill(crash_error(w.rank, w.returncode, self._crash_report(w)))
        state.died(w.rank, error, time.monotonic())

    def _fail(self, state: RunState, program: str, deadline_s: float, t0: float, *,
              desync: Desync | None, out_of_memory: RankError | None,
              memory: MemoryFigures) -> NoReturn:
        """Find out where the ranks still running are, classify, kill the pool, raise.
        Stopped for memory, the pool is killed first: no time for stack dumps then."""
        running = sorted(state.pending)
        stacks: dict[int, str] = {}
        if out_of_memory is not None:
            self._terminate("dead")
        elif running:
            stacks = request_stack_dumps({r: self._workers[r].pid for r in running},
                                         {r: self._workers[r].stacks_path for r in running})
            self._add_flight_recorder(running, stacks)
        failure = classify(RunEnd(
            program=program, label=self.spec.label, deadline_s=deadline_s,
            outcomes=state.outcomes, errors=state.errors, running=running, stacks=stacks,
            waiting=state.waiting(), desync=desync, failed_first=state.first_failure is not None,
            out_of_memory=out_of_memory, elapsed_s=time.monotonic() - t0,
            collectives=state.collectives(LOG_TAIL), memory=memory))
        self.last_failure = failure
        self._terminate("dead")
        raise failure

    def _crash_report(self, w: _Worker) -> str:
        """The end of the rank's log (a segfault's stack, an NCCL watchdog's message), and
        the flight recorder the NCCL watchdog dumps before it aborts the process."""
        text = read_log_tail(w.log_path)
        if self._dir is not None and self.spec.backend == "nccl":
            trace = os.path.join(self._dir, f"nccl_trace_rank_{w.rank}")
            if os.path.exists(trace):
                text += "\n" + summarize_flight_recorder(trace)
        return text

    def _add_flight_recorder(self, ranks: list[int], stacks: dict[int, str]) -> None:
        """Ask the lifeline threads of the ranks still running for a flight-recorder dump
        (best effort: a thread of the rank must get the GIL, and the build must have it)."""
        if not _has_flight_recorder(self.spec.backend):
            return

        for rank in ranks:
            try:
                os.write(self._workers[rank].lifeline_w, LIFELINE_DUMP_FLIGHT_RECORDER)
            except OSError:
                pass
        deadline = time.monotonic() + 3.0
        waiting = set(ranks)
        while waiting and time.monotonic() < deadline:
            waiting = {r for r in waiting if not os.path.exists(self._workers[r].flight_recorder_path)}
            if waiting:
                time.sleep(0.05)
        for rank in ranks:
            summary = summarize_flight_recorder(self._workers[rank].flight_recorder_path)
            if summary:
                stacks[rank] = stacks.get(rank, "") + "\n" + summary

    # ------------------------------------------------------------------ stop

    def close(self) -> None:
        """Idempotent. Graceful stop of a healthy pool, then kill its process group."""
        if self._state == "closed" and self._released:
            return
        if self._state == "ready" and self._owner_pid == os.getpid():
            stop = encode(Stop())
            for w in self._workers:
                try:
                    w.conn.send_bytes(stop)
                except OSError:
                    pass
            self._wait_exits(self.stop_timeout_s)
        self._terminate("closed")

    def kill(self) -> None:
        """Kill the pool now, without a graceful stop (signal handlers use this)."""
        if not self._released:
            self._terminate("dead")

    def _terminate(self, final_state: str) -> None:
        """Kill the process group, reap every worker, release every fd and the temp dir.

        Safe to call twice and from a signal handler that interrupted any other method."""
        if final_state == "closed" or self._state != "closed":
            self._state = final_state
        if self._released:
            return
        self._released = True
        if self._owner_pid != os.getpid():
            return  # a forked copy of the parent: the pool is not ours to kill
        if self._pgid is not None:
            try:
                os.killpg(self._pgid, signal.SIGKILL)  # the workers and anything they started
            except (ProcessLookupError, PermissionError):
                pass
        for w in self._workers:
            if not w.exited and not _poll_fd(w.status_fd):
                try:
                    os.kill(w.pid, signal.SIGKILL)  # in case a program left the group
                except (ProcessLookupError, PermissionError):
                    pass
        self._wait_exits(5.0)
        if self._pgid is not None:
            _wait_group_gone(self._pgid, 5.0)
        self._release()

    def _wait_exits(self, timeout_s: float) -> None:
        """Wait (on the exit sentinels, no polling) until every worker was reaped."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = {w.status_fd: w for w in self._workers if not w.exited}
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:
                return
            try:
                ready = wait_ready(list(waiting), timeout=remaining)
            except (OSError, ValueError):
                return
            for fd in ready:
                self._collect_status(waiting[fd], timeout_s=0)

    def _collect_status(self, w: _Worker, timeout_s: float) -> None:
        if w.exited:
            return
        try:
            if timeout_s > 0 and not wait_ready([w.status_fd], timeout=timeout_s):
                return  # not reaped yet; _terminate kills and reaps it
            w.returncode = read_status(w.status_fd)
        except (OSError, ValueError):
            w.returncode = None
        w.exited = True

    def _release(self) -> None:
        for w in self._workers:
            for close in (w.conn.close, lambda fd=w.status_fd: os.close(fd), lambda fd=w.lifeline_w: os.close(fd)):
                try:
                    close()
                except OSError:
                    pass
        self._store = None  # the TCPStore server shuts down with its last reference
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        lifecycle.unregister(self)


def _poll(conn: Connection) -> bool:
    try:
        return conn.poll()
    except (OSError, EOFError, ValueError):
        return False


def _poll_fd(fd: int) -> bool:
    try:
        return bool(wait_ready([fd], timeout=0))
    except (OSError, ValueError):
        return False


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """After killpg: wait until no process of the group still runs (its workers' own
    children included: they are not ours to reap, so there is no sentinel for them)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return  # the usual case: the group is empty already
    from harness.runtime.leaks import group_members

    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def _flight_recorder_env() -> str:
    try:
        import torch

        if hasattr(torch._C._distributed_c10d, "_dump_fr_trace_json"):
            return "TORCH_FR_BUFFER_SIZE"
    except Exception:
        pass
    return "TORCH_NCCL_TRACE_BUFFER_SIZE"


def _has_flight_recorder(backend: str) -> bool:
    """Recent torch records gloo too (_dump_fr_trace*); older torch only NCCL builds."""
    try:
        import torch

        c10d = torch._C._distributed_c10d
    except Exception:
        return False
    if hasattr(c10d, "_dump_fr_trace_json") or hasattr(c10d, "_dump_fr_trace"):
        return True
    return backend == "nccl" and (hasattr(c10d, "_dump_nccl_trace_json") or hasattr(c10d, "_dump_nccl_trace"))
