"""Where a rank was when it hung or died: faulthandler dumps, log tails, NCCL flight recorder.

Worker side: faulthandler writes a segfault's stack into the rank's log file, and dumps
every thread's stack into the rank's stacks file on SIGUSR1. Both are C-level handlers:
they work while the main thread is blocked inside a collective (a Python-level signal
handler would only run once the collective returned, i.e. never).

Parent side: send SIGUSR1, read what was appended, and name the frame the rank waits in.
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import time
from typing import IO, Any

DUMP_SIGNAL = signal.SIGUSR1
LOG_TAIL_CHARS = 8000
DUMP_POLL_S = 0.005
RESETTLE_S = 0.5  # how long a rank caught announcing a collective is dumped again
#: collective_log's wrapper around every torch.distributed collective (file, function).
LOG_WRAPPER = ("harness/runtime/collective_log.py", "logged")

_FRAME_RE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')
_THREAD_RE = re.compile(r"^(Current thread|Thread) 0x[0-9a-fA-F]+")


# --------------------------------------------------------------------------- worker side


def install_worker_handlers(stacks_file: IO[Any]) -> None:
    """Segfault stacks go to stderr (the rank's log); SIGUSR1 dumps all threads to stacks_file."""
    faulthandler.enable(file=stderr_for_faulthandler(), all_threads=True)
    faulthandler.register(DUMP_SIGNAL, file=stacks_file, all_threads=True, chain=False)


def stderr_for_faulthandler() -> Any:
    import sys

    return sys.__stderr__ if sys.__stderr__ is not None else sys.stderr


def dump_flight_recorder(path: str) -> str:
    """Write this rank's NCCL flight recorder (the last collectives and their state) to path.

    Returns a short status line. Every step is guarded: the private API was renamed
    (_dump_nccl_trace -> _dump_fr_trace) and does not exist in CPU builds.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "flight recorder: torch unavailable"
    c10d = getattr(torch._C, "_distributed_c10d", None)
    if c10d is None:
        return "flight recorder: no c10d"
    for name in ("_dump_nccl_trace_json", "_dump_fr_trace_json"):
        fn = getattr(c10d, name, None)
        if fn is None:
            continue
        try:
            text = fn(True, False)  # includeCollectives, onlyActive (gloo never marks completion)
        except TypeError:
            try:
                text = fn()
            except Exception as exc:
                return f"flight recorder: {name} failed: {exc}"
        except Exception as exc:
            return f"flight recorder: {name} failed: {exc}"
        _atomic_write(path, text.encode() if isinstance(text, str) else bytes(text))
        return f"flight recorder: {name}"
    for name in ("_dump_nccl_trace", "_dump_fr_trace"):
        fn = getattr(c10d, name, None)
        if fn is None:
            continue
        try:
            data = fn()
        except Exception as exc:
            return f"flight recorder: {name} failed: {exc}"
        _atomic_write(path, bytes(data))
        return f"flight recorder: {name}"
    return "flight recorder: not available in this torch build"


def _atomic_write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- parent side


def request_stack_dumps(pids: dict[int, int], paths: dict[int, str], timeout_s: float = 2.0) -> dict[int, str]:
    """Make every rank in pids dump its stacks; return rank -> dump text ("" if none came).

    A dump is read once it is complete (see :func:`dump_complete`), never on a pause of
    the writer. A rank caught inside the collective log's own code is dumped again, for
    up to RESETTLE_S: a rank announces a collective to the parent just *before* it enters
    it, so the parent, woken by that announcement (a desync names the rank as waiting in
    it), can catch it there -- a moment, not where it waits.
    """
    deadline = time.monotonic() + timeout_s
    resettle_until = time.monotonic() + RESETTLE_S
    dumps = {rank: "" for rank in pids}
    todo = dict(pids)
    while todo:
        dumps.update(_dump_once(todo, paths, deadline))
        if time.monotonic() >= min(deadline, resettle_until):
            break
        todo = {r: pid for r, pid in todo.items() if in_collective_log(dumps[r])}
    return dumps


def _dump_once(pids: dict[int, int], paths: dict[int, str], deadline: float) -> dict[int, str]:
    """Signal every rank, then read each dump once it is complete (or at the deadline)."""
    offsets: dict[int, int] = {}
    for rank, pid in pids.items():
        offset = _size(paths[rank])
        try:
            os.kill(pid, DUMP_SIGNAL)
        except (ProcessLookupError, PermissionError):
            continue
        offsets[rank] = offset
    dumps = {rank: "" for rank in pids}
    pending = dict(offsets)
    while True:
        for rank, offset in list(pending.items()):
            dumps[rank] = _read_from(paths[rank], offset)
            if dump_complete(dumps[rank]):
                del pending[rank]
        if not pending or time.monotonic() >= deadline:
            return dumps
        time.sleep(DUMP_POLL_S)


def dump_complete(dump: str) -> bool:
    """Whether faulthandler has finished writing ``dump``. It writes from the signal
    handler piece by piece, newest thread first, so the dump ends with the oldest thread
    -- the main thread, which runs the program -- and its outermost frame (a ``<module>``
    one), or with ``...`` where it cut a stack deeper than 100 frames."""
    if not dump.endswith("\n"):
        return False
    last = dump.rstrip("\n").rpartition("\n")[2]
    return last.strip() == "..." or (bool(_FRAME_RE.match(last)) and last.endswith(" in <module>"))


def in_collective_log(dump: str) -> bool:
    """Whether the program thread is inside collective_log's wrapper and not in torch: it
    is announcing a collective it has not entered yet (or reporting one done)."""
    for path, _, func in main_thread_frames(dump):
        if "/torch/" in path:
            return False
        if _is_frame(path, func, LOG_WRAPPER):
            return True
    return False


def read_log_tail(path: str, limit: int = LOG_TAIL_CHARS) -> str:
    """The end of a rank's log (its stderr and stdout), where a segfault leaves its stack."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - limit))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if size > limit:
        text = "[... log truncated ...]\n" + text
    return text


#: The frame every rank program runs under, in a pool worker and under torchrun alike.
PROGRAM_CALL = ("harness/runtime/program.py", "call_program")


def main_thread_frames(dump: str) -> list[tuple[str, int, str]]:
    """The frames (file, line, function), most recent first, of the thread that runs the
    program: the thread block that goes through program.call_program (else the last
    block: faulthandler dumps the oldest thread, the main one, last)."""
    blocks: list[list[tuple[str, int, str]]] = []
    current: list[tuple[str, int, str]] | None = None
    for line in dump.splitlines():
        if _THREAD_RE.match(line):
            current = []
            blocks.append(current)
            continue
        m = _FRAME_RE.match(line)
        if m and current is not None:
            current.append((m["file"], int(m["line"]), m["func"]))
    for block in blocks:
        if any(_is_frame(f, func, PROGRAM_CALL) for f, _, func in block):
            return block
    return blocks[-1] if blocks else []


def where(dump: str) -> str:
    """'all_reduce (distributed_c10d.py:3070) <- my_program (programs.py:41)': the innermost
    frame and the program frame that led there."""
    frames = main_thread_frames(dump)
    if not frames:
        return "unknown (no stack dump)"
    top_file, top_line, top_func = frames[0]
    text = f"{top_func} ({_short(top_file)}:{top_line})"
    # The program's own frame: the last frame before the worker's call into it.
    program_frame = None
    for i, (f, _, func) in enumerate(frames):
        if _is_frame(f, func, PROGRAM_CALL):
            program_frame = frames[i - 1] if i > 0 else None
            break
    if program_frame and program_frame != frames[0]:
        text += f" <- {program_frame[2]} ({_short(program_frame[0])}:{program_frame[1]})"
    return text


def summarize_flight_recorder(path: str, last: int = 8) -> str:
    """A few lines from a flight-recorder dump: the last collectives and their state."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    entries: list[dict[str, Any]] = []
    try:
        import json

        entries = json.loads(raw.decode()).get("entries", [])
    except Exception:
        try:
            import pickle

            entries = pickle.loads(raw).get("entries", [])
        except Exception as exc:
            return f"flight recorder: unreadable ({exc})"
    lines = [f"flight recorder: {len(entries)} collectives recorded, the last {min(last, len(entries))}:"]
    for e in entries[-last:]:
        pg = e.get("process_group", "?")
        lines.append(
            "  seq={} {} sizes={} state={} retired={} pg={}".format(
                e.get("collective_seq_id", "?"), e.get("profiling_name", "?"), e.get("input_sizes", "?"),
                e.get("state", "?"), e.get("retired", "?"), pg[-1] if isinstance(pg, list) and pg else pg,
            )
        )
    return "\n".join(lines)


def _is_frame(path: str, func: str, frame: tuple[str, str]) -> bool:
    """Whether (path, func) is ``frame``: (the file's path inside the repository, function)."""
    return func == frame[1] and path.replace("\\", "/").endswith(frame[0])


def _short(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
