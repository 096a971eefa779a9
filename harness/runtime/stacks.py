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

    faulthandler writes from inside the signal handler, so the dump usually lands within
    a millisecond; we wait until each file has grown and stopped growing.
    """
    offsets: dict[int, int] = {}
    for rank, pid in pids.items():
        offsets[rank] = _size(paths[rank])
        try:
            os.kill(pid, DUMP_SIGNAL)
        except (ProcessLookupError, PermissionError):
            offsets.pop(rank)
    pending = dict(offsets)
    last_size: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for rank in list(pending):
            size = _size(paths[rank])
            if size > pending[rank] and last_size.get(rank) == size:
                del pending[rank]  # grew, and did not grow since the last look: done
            last_size[rank] = size
        if pending:
            time.sleep(0.02)
    dumps: dict[int, str] = {}
    for rank in pids:
        start = offsets.get(rank)
        dumps[rank] = "" if start is None else _read_from(paths[rank], start)
    return dumps


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
        if any(_is_program_call(f, func) for f, _, func in block):
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
        if _is_program_call(f, func):
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


def _is_program_call(path: str, func: str) -> bool:
    return func == PROGRAM_CALL[1] and path.replace("\\", "/").endswith(PROGRAM_CALL[0])


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
