"""The pool <-> worker wire, typed once for both sides: every message, the worker's
configuration, and the constants the two processes share.

Torch-free, so that the parent, the zygote and the worker all import it cheaply.

Messages travel over the worker's socket pair as pickled ``(tag, *fields)`` tuples, never
as pickled classes: the tag table below is the whole protocol, and :func:`decode` raises
:class:`ProtocolError` on anything it does not name (a message that was silently dropped
would look like a rank that never answered). An answer to an earlier run (its ``run_id``
is not the current one) is well formed: the parent ignores it on purpose.

    parent -> worker:  Run | Stop
    worker -> parent:  Ready (the start's answer) | Ok | Error (a run's answer)
                       | Collective (a collective_log event of the current run)
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from harness.results import RankError

#: Written by the parent on a worker's lifeline pipe: "dump your flight recorder". EOF on
#: the lifeline (the parent died) takes the whole pool down (worker.py).
LIFELINE_DUMP_FLIGHT_RECORDER = b"F"
#: The run id of the pool's start: an Error with it is a rank that failed to join.
START_RUN_ID = 0


class ProtocolError(RuntimeError):
    """A message that is not part of the protocol: a bug on one side of the pipe."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a forked worker needs to become rank ``rank`` of the pool."""

    rank: int
    world_size: int
    backend: str
    pg_timeout_s: float
    start_timeout_s: float
    store_host: str
    store_port: int
    sys_path: tuple[str, ...]  # the parent's, at pool start (the zygote booted earlier)
    cwd: str
    env: dict[str, str]
    num_threads: int
    stacks_path: str  # where SIGUSR1 makes faulthandler dump every thread
    flight_recorder_path: str


@dataclass(frozen=True)
class SpawnRequest:
    """What the parent asks the zygote to fork: one worker, in process group ``pgid``
    (0: a new group led by this worker), its output appended to ``log_path``."""

    pgid: int
    log_path: str
    config: WorkerConfig


# ------------------------------------------------------------------ parent -> worker


@dataclass(frozen=True)
class Run:
    """Run ``program(ctx, payload)``. The payload was pickled once by the parent; the rank
    unpickles it inside its error handler (a payload it cannot load is this run's error)."""

    TAG: ClassVar[str] = "run"
    run_id: int
    program: str
    payload: bytes


@dataclass(frozen=True)
class Stop:
    """Leave the process group and exit (a graceful close of a healthy pool)."""

    TAG: ClassVar[str] = "stop"


# ------------------------------------------------------------------ worker -> parent


@dataclass(frozen=True)
class Ready:
    """The rank joined the process group: the answer to the pool's start."""

    TAG: ClassVar[str] = "ready"
    pid: int
    init_s: float
    threads: int

    @property
    def run_id(self) -> int:
        return START_RUN_ID


@dataclass(frozen=True)
class Ok:
    TAG: ClassVar[str] = "ok"
    run_id: int
    result: Any


@dataclass(frozen=True)
class Error:
    TAG: ClassVar[str] = "error"
    run_id: int
    error: RankError


@dataclass(frozen=True)
class Collective:
    """One collective_log event of run ``run_id``: ("issued", ...) or ("completed", seq)."""

    TAG: ClassVar[str] = "collective"
    run_id: int
    event: tuple[Any, ...]


ToWorker = Run | Stop
ToParent = Ready | Ok | Error | Collective
Message = ToWorker | ToParent
_BY_TAG: dict[str, type[Any]] = {cls.TAG: cls for cls in (Run, Stop, Ready, Ok, Error, Collective)}


def encode(message: Message) -> bytes:
    """The bytes of one message (send them with ``Connection.send_bytes``)."""
    values = tuple(getattr(message, f.name) for f in fields(message))
    return pickle.dumps((message.TAG, *values), protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> Message:
    """The message in ``data``; ProtocolError naming what arrived if it is none."""
    raw = pickle.loads(data)
    cls = _BY_TAG.get(raw[0]) if isinstance(raw, tuple) and raw else None
    if cls is None:
        raise ProtocolError(f"unknown message {_shown(raw)}: expected a tuple tagged one of "
                            f"{sorted(_BY_TAG)}")
    try:
        return cls(*raw[1:])
    except TypeError as exc:
        raise ProtocolError(f"malformed {raw[0]!r} message {_shown(raw)}: {exc}") from None


def _shown(raw: Any, limit: int = 200) -> str:
    text = repr(raw)
    return text if len(text) <= limit else text[:limit] + "..."
