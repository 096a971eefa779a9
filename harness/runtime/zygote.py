"""The zygote: one helper process that has imported torch once and forks rank workers.

Why: `import torch` costs ~3 s of CPU here. A pool started by spawning W fresh
interpreters pays it W times, and a pool replaced after a hang or crash pays it again.
The zygote pays it once per parent process; a fork then costs milliseconds.

Why not multiprocessing's forkserver with set_forkserver_preload, the same idea:
- its workers would stay in the caller's process group: setpgid works only on oneself or
  one's own child, and the forkserver, not the pool, is their parent. The pool could not
  be killed as one group (grandchildren included), and a terminal Ctrl-C would reach every
  rank mid-collective. The zygote puts each worker in the pool's group before replying.
- its preload swallows ImportError: a broken torch would surface in every rank, not once
  as a ZygoteError with its message;
- a child runs multiprocessing's bootstrap on the forkserver's stdio; here a rank's
  stdout/stderr go to its log before any code runs, so a crash at start-up is in the log;
- it is one server per process, whose preload list is global state shared with the
  user's own multiprocessing (the pytest plugin runs inside users' test sessions), and
  it starts multiprocessing's resource_tracker process along with it.

Safety of forking: the zygote never runs a torch op, never initialises CUDA and starts
no thread of its own, nor does importing the _WARM modules (numpy's OpenBLAS pool, which
`import torch` starts, handles fork with its own atfork hooks).

Protocol (a Unix socket pair, one request at a time, guarded by a lock in the parent):
  parent -> zygote: 8-byte length + pickled SpawnRequest (protocol.py), with fds attached
                    (SCM_RIGHTS)
  zygote -> parent: 8-byte length + pickled reply, with the child's status-pipe fd attached
Each worker gets a status pipe: the zygote reaps the worker and writes its exit status
(4 bytes, subprocess convention: negative = signal) into it. The parent waits on the read
end as the worker's sentinel, exactly like multiprocessing's forkserver.

The zygote lives in its own process group (a Ctrl-C at the terminal goes to the parent,
which then cleans up) and exits when the parent's end of the socket closes, which
includes the parent being SIGKILLed.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from harness.runtime.protocol import SpawnRequest

_HEADER = struct.Struct("!Q")
_STATUS = struct.Struct("!i")
_PRELOAD = ("torch", "torch.distributed", "harness.runtime.worker")
#: Imported too, at best effort, so that W ranks do not each import them on their first
#: case: what a catalogue case's rank program imports (named, not imported: the kinds and
#: checks sit above the runtime, as checks/runner.py names its program). One that fails
#: to import here is imported by the ranks, which report the error against the case.
_WARM = ("harness.kinds", "harness.checks.job", "harness.losses", "numpy.random")


class ZygoteError(RuntimeError):
    """The zygote could not be started or stopped answering."""


class Zygote:
    """Parent-side handle of the zygote process. Not fork-safe: a forked parent starts its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._owner_pid = os.getpid()
        self._ready = False
        self._launched_at = 0.0
        self.boot_s: float | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return (
            self._proc is not None
            and self._proc.poll() is None
            and self._owner_pid == os.getpid()
        )

    def launch(self) -> None:
        """Start booting the zygote without waiting for it (it imports torch meanwhile)."""
        with self._lock:
            if self._proc is not None and self.alive:
                return
            self._stop_locked(timeout_s=1.0)
            self._popen_locked()

    def ensure_running(self, timeout_s: float = 120.0) -> None:
        """Launch the zygote if needed and wait until it has preloaded torch."""
        with self._lock:
            if self._ready and self.alive:
                return
            if self._proc is None or not self.alive:
                self._stop_locked(timeout_s=1.0)
                self._popen_locked()
            self._await_ready_locked(timeout_s)

    def _popen_locked(self) -> None:
        self._launched_at = time.monotonic()
        self._owner_pid = os.getpid()
        self._ready = False
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            f"from harness.runtime.zygote import zygote_main; zygote_main({child_sock.fileno()})"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code],
                pass_fds=[child_sock.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                process_group=0,  # own group: terminal Ctrl-C reaches only the parent
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self._sock = parent_sock

    def _await_ready_locked(self, timeout_s: float) -> None:
        assert self._sock is not None
        try:
            reply, _ = _recv_message(self._sock, timeout_s=timeout_s, max_fds=0)
        except Exception as exc:
            self._stop_locked(timeout_s=1.0)
            raise ZygoteError(f"the zygote did not start within {timeout_s:.0f} s: {exc}") from exc
        if "error" in reply:
            self._stop_locked(timeout_s=1.0)
            raise ZygoteError(f"the zygote failed to preload: {reply['error']}")
        self._ready = True
        self.boot_s = time.monotonic() - self._launched_at

    def spawn(self, request: SpawnRequest, fds: list[int], timeout_s: float = 60.0) -> tuple[int, int]:
        """Fork one worker; returns (pid, status_fd). The caller owns status_fd."""
        with self._lock:
            if not self._ready or not self.alive or self._sock is None:
                raise ZygoteError("the zygote is not running")
            try:
                _send_message(self._sock, request, fds)
                reply, rfds = _recv_message(self._sock, timeout_s=timeout_s, max_fds=1)
            except (OSError, EOFError, TimeoutError) as exc:
                self._stop_locked(timeout_s=1.0)
                raise ZygoteError(f"the zygote stopped answering: {exc}") from exc
        if "error" in reply:
            for fd in rfds:
                os.close(fd)
            raise ZygoteError(f"the zygote could not fork a worker: {reply['error']}")
        if len(rfds) != 1:
            raise ZygoteError("the zygote sent no status pipe")
        return int(reply["pid"]), rfds[0]

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._stop_locked(timeout_s)

    def _stop_locked(self, timeout_s: float) -> None:
        sock, proc, ready = self._sock, self._proc, self._ready
        self._sock, self._proc, self._ready = None, None, False
        if sock is not None:
            try:
                sock.close()  # EOF: the zygote exits on its own
            except OSError:
                pass
        if proc is not None and self._owner_pid == os.getpid():
            if not ready and proc.poll() is None:
                # Still importing torch (booted early, never used): it has forked nothing,
                # and would only notice the EOF once the import is done.
                proc.kill()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_ZYGOTE: Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def get_zygote() -> Zygote:
    """The process-wide zygote (created lazily; replaced after a fork of the parent)."""
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or _ZYGOTE._owner_pid != os.getpid():
            _ZYGOTE = Zygote()
        return _ZYGOTE


def stop_zygote(timeout_s: float = 5.0) -> None:
    with _ZYGOTE_LOCK:
        zygote = _ZYGOTE
    if zygote is not None and zygote._owner_pid == os.getpid():
        zygote.stop(timeout_s)


def read_status(status_fd: int) -> int | None:
    """Read a worker's exit status from its status pipe (blocks until the zygote wrote it).

    None: the pipe closed without a status (the zygote itself died)."""
    data = b""
    while len(data) < _STATUS.size:
        try:
            chunk = os.read(status_fd, _STATUS.size - len(data))
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if not chunk:
            return None
        data += chunk
    return _STATUS.unpack(data)[0]


# --------------------------------------------------------------------------- messages


def _send_message(sock: socket.socket, obj: Any, fds: list[int]) -> None:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    header = _HEADER.pack(len(body))
    if fds:
        socket.send_fds(sock, [header], fds)
    else:
        sock.sendall(header)
    sock.sendall(body)


def _recv_message(sock: socket.socket, *, timeout_s: float | None, max_fds: int) -> tuple[Any, list[int]]:
    sock.settimeout(timeout_s)
    try:
        if max_fds:
            header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, max_fds)
        else:
            header, fds = sock.recv(_HEADER.size), []
        if not header:
            raise EOFError("the peer closed the socket")
        header += _recv_exact(sock, _HEADER.size - len(header))
        (length,) = _HEADER.unpack(header)
        return pickle.loads(_recv_exact(sock, length)), list(fds)
    finally:
        sock.settimeout(None)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            raise EOFError("the peer closed the socket")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- zygote process


def zygote_main(sock_fd: int) -> None:
    """Entry point of the zygote process (never returns)."""
    sock = socket.socket(fileno=sock_fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The ranks share the zygote's pages until they write to them. No collection here
    # (it would leave freed holes in those pages), and every object frozen before a fork
    # (_fork_worker), so that a rank's collector never touches -- copies -- inherited ones.
    gc.disable()
    import importlib

    try:
        for name in _PRELOAD:
            importlib.import_module(name)
    except BaseException as exc:  # report, then exit: the parent raises ZygoteError
        try:
            _send_message(sock, {"error": f"{type(exc).__name__}: {exc}"}, [])
        finally:
            os._exit(1)
    for name in _WARM:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a warm-up only: the ranks import it themselves
            pass

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the wakeup fd does the work

    children: dict[int, int] = {}  # pid -> write end of its status pipe
    try:
        _send_message(sock, {"pid": os.getpid()}, [])
    except OSError:  # the parent left while we imported (booted early, never used)
        os._exit(0)
    try:
        while True:
            readable, _, _ = select.select([sock, wake_r], [], [])
            if wake_r in readable:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                _reap(children)
            if sock in readable:
                try:
                    request, fds = _recv_message(sock, timeout_s=None, max_fds=4)
                except (EOFError, OSError):
                    break  # the parent is gone (or closed us): exit
                if not isinstance(request, SpawnRequest):
                    for fd in fds:
                        os.close(fd)
                    break
                try:
                    pid, status_r = _fork_worker(request, fds, sock, wake_r, wake_w, children)
                except OSError as exc:
                    for fd in fds:
                        os.close(fd)
                    _send_message(sock, {"error": f"{type(exc).__name__}: {exc}"}, [])
                    continue
                try:
                    _send_message(sock, {"pid": pid}, [status_r])
                finally:
                    os.close(status_r)
    finally:
        # Exiting closes every status pipe; workers that outlive us are the parent's
        # to kill (they also watch the parent through their own lifeline pipes).
        os._exit(0)


def _fork_worker(
    request: SpawnRequest,
    fds: list[int],
    sock: socket.socket,
    wake_r: int,
    wake_w: int,
    children: dict[int, int],
) -> tuple[int, int]:
    pgid = request.pgid
    status_r, status_w = os.pipe()
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # ---- the worker
        code = 1
        try:
            gc.enable()
            os.setpgid(0, pgid)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sock.close()
            for fd in (wake_r, wake_w, status_r, status_w, *children.values()):
                os.close(fd)
            log_fd = os.open(request.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            from harness.runtime.worker import worker_main

            code = worker_main(fds[0], fds[1], request.config)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    # ---- the zygote
    try:
        os.setpgid(pid, pgid or pid)  # also set here, so the group exists when we reply
    except OSError:
        pass  # the child already did it, or already exited
    for fd in fds:
        os.close(fd)
    children[pid] = status_w  # kept: _reap writes the exit status into it
    return pid, status_r


def _reap(children: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_w = children.pop(pid, None)
        if status_w is None:
            continue
        try:
            os.write(status_w, _STATUS.pack(os.waitstatus_to_exitcode(status)))
        except OSError:
            pass  # the parent already closed its end
        finally:
            os.close(status_w)
