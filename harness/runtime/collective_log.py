"""A per-rank log of every collective, cheap enough to stay on, and the desync it reveals.

Each rank wraps the ``torch.distributed`` collectives once (a Python wrapper per call, no
dispatcher mode: the compute ops of the program run untouched) and reports every
collective to the parent as it is issued and as it completes: its sequence number, op,
dtype, shape, reduce op, group size, and the frame of the code under test that issued it
(plus the step label a program may set). The parent compares the ranks' logs while they
run (:func:`find_desync`): a rank that finished while another waits in a collective it
never issued, or two ranks whose collective number n differs, end the run at once -- in
seconds, not at the process-group timeout -- naming the rank that broke the order.

Events travel as plain tuples, so both sides of the pipe agree on them without pickling
classes: ``("issued", seq, fingerprint, step, where)`` and ``("completed", seq)``. The
fingerprint and the step label must agree across ranks; ``where`` (file and line) is only
shown, since correct code may issue the same collective from different lines per rank.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from harness.runtime.protocol import ProtocolError

#: torch.distributed functions that are collectives (point-to-point ops are left alone).
COLLECTIVES = (
    "all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter",
    "reduce_scatter_tensor", "broadcast", "reduce", "all_to_all", "all_to_all_single",
    "barrier", "gather", "scatter", "all_gather_object", "broadcast_object_list",
    "gather_object", "scatter_object_list",
)
_SKIP_FRAMES = ("/torch/", "/contextlib.py", "/functools.py", "<string>",
                *(f"/harness/runtime/{m}.py" for m in (
                    "collective_log", "program", "worker", "zygote", "inline", "pool")))
#: Collectives whose tensor shapes may differ between ranks in correct code.
_SHAPE_FREE = frozenset({"all_to_all", "all_to_all_single", "all_gather_object",
                         "broadcast_object_list", "gather_object", "scatter_object_list"})

Send = Callable[[int, tuple[Any, ...]], None]  # (run id, event)


@dataclass
class _State:
    send: Send | None = None
    run: int = 0
    seq: int = 0
    step: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


_STATE = _State()


def install(send: Send) -> None:
    """Wrap the collectives of ``torch.distributed`` (once per process) and report to ``send``."""
    import torch.distributed as dist

    _STATE.send = send
    for name in COLLECTIVES:
        fn = getattr(dist, name, None)
        if fn is None or getattr(fn, "__dino_harness_logged__", False):
            continue
        wrapped = _wrap(name, fn)
        setattr(dist, name, wrapped)
        module = sys.modules.get("torch.distributed.distributed_c10d")
        if module is not None and getattr(module, name, None) is fn:
            setattr(module, name, wrapped)


def unlogged(name: str) -> Callable[..., Any]:
    """``torch.distributed``'s own ``name``, past the log's wrapper: for a program that
    times its collectives (the overlap bench). The wrapper's work -- fingerprint, caller
    frames and a message to the parent on issue, another from gloo's thread on
    completion (taking a lock the main thread may hold) -- would otherwise sit inside the
    timed call and delay the completion stamp; the parent, woken per message, would take
    CPU from the ranks. What bypasses the log is not desync-checked."""
    import torch.distributed as dist

    fn = getattr(dist, name)
    return fn.__wrapped__ if getattr(fn, "__dino_harness_logged__", False) else fn


def begin_run(run: int) -> None:
    """A new program run: sequence numbers start again from 1."""
    _STATE.run = run
    _STATE.seq = 0
    _STATE.step = ""


@contextmanager
def step(label: str) -> Iterator[None]:
    """Label the collectives issued inside (e.g. ``"step 3 update_center"``)."""
    previous, _STATE.step = _STATE.step, label
    try:
        yield
    finally:
        _STATE.step = previous


def _wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def logged(*args: Any, **kwargs: Any) -> Any:
        send = _STATE.send
        if send is None:
            return fn(*args, **kwargs)
        _STATE.seq += 1
        run, seq = _STATE.run, _STATE.seq  # a completion may be reported after the run
        send(run, ("issued", seq, _fingerprint(name, args, kwargs), _STATE.step, _caller()))
        work = fn(*args, **kwargs)
        if work is None or not kwargs.get("async_op", False):
            send(run, ("completed", seq))
        else:
            _on_completion(work, lambda: send(run, ("completed", seq)))
        return work

    logged.__dino_harness_logged__ = True  # type: ignore[attr-defined]
    return logged


def _on_completion(work: Any, callback: Callable[[], None]) -> None:
    def done(_: Any) -> None:
        try:
            callback()
        except Exception:  # noqa: BLE001 - the parent is gone: nothing to tell
            pass

    try:
        work.get_future().then(done)
    except Exception:  # noqa: BLE001 - a backend without futures: completion stays unknown
        pass


def _fingerprint(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What must be identical on every rank for collective number n: op, reduce op,
    dtype, shape of the first tensor argument, and the group's size."""
    import torch
    import torch.distributed as dist

    tensor = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
    if tensor is None:
        first = args[0] if args else None
        if isinstance(first, list) and first and isinstance(first[0], torch.Tensor):
            tensor = first[0]
    op = kwargs.get("op")
    if op is None and name in ("all_reduce", "reduce") and len(args) > 1 and not isinstance(
            args[1], torch.Tensor):
        op = args[1]
    group = kwargs.get("group")
    try:
        size = dist.get_world_size(group)
    except Exception:  # noqa: BLE001 - an unusual group object
        size = -1
    return (
        name,
        str(op).rpartition(".")[2] if op is not None else ("SUM" if name in ("all_reduce", "reduce") else ""),
        str(tensor.dtype).replace("torch.", "") if tensor is not None else "",
        tuple(tensor.shape) if tensor is not None and name not in _SHAPE_FREE else (),
        size,
    )


def _caller(depth: int = 2) -> str:
    """The innermost frames outside torch and the harness runtime: the code that issued
    it, and what called that (a loss's own all-reduce helper says little alone)."""
    frame = sys._getframe(2)
    found: list[str] = []
    while frame is not None and len(found) < depth:
        path = frame.f_code.co_filename
        if not any(part in path for part in _SKIP_FRAMES):
            found.append(f"{frame.f_code.co_name} ({_short_path(path)}:{frame.f_lineno})")
        frame = frame.f_back
    return " <- ".join(found) or "?"


def _short_path(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


# ---------------------------------------------------------------------------- the parent

@dataclass
class Entry:
    seq: int
    fingerprint: tuple[Any, ...]
    step: str
    where: str
    issued_s: float
    completed_s: float | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What every rank's collective number ``seq`` must agree on."""
        return (*self.fingerprint, self.step)

    def describe(self) -> str:
        op, reduce, dtype, shape, _ = self.fingerprint
        detail = ", ".join(x for x in (reduce, dtype, f"shape {list(shape)}" if shape else "") if x)
        step = f" in {self.step}" if self.step else ""
        return f"#{self.seq} {op}({detail}){step} from {self.where}"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "op": self.fingerprint[0], "reduce_op": self.fingerprint[1],
                "dtype": self.fingerprint[2], "shape": list(self.fingerprint[3]),
                "group_size": self.fingerprint[4], "step": self.step, "where": self.where,
                "completed": self.completed_s is not None}


@dataclass
class RankLog:
    """One rank's collectives in the current run, as the parent has heard of them."""

    entries: list[Entry] = field(default_factory=list)
    finished: bool = False

    def record(self, event: tuple[Any, ...]) -> None:
        now = time.monotonic()
        if event[0] == "issued":
            _, seq, fingerprint, step, where = event
            self.entries.append(Entry(seq, tuple(fingerprint), step, where, now))
        elif event[0] == "completed":
            seq = event[1]
            if 0 < seq <= len(self.entries):
                self.entries[seq - 1].completed_s = now
        else:
            raise ProtocolError(f"unknown collective event {event!r}: expected 'issued' or 'completed'")

    @property
    def waiting(self) -> Entry | None:
        """The oldest collective this rank issued that has not completed."""
        return next((e for e in self.entries if e.completed_s is None), None)


@dataclass(frozen=True)
class Desync:
    """The ranks broke collective order: who, which collective, what each side did."""

    culprit: int
    seq: int
    message: str


def find_desync(logs: dict[int, RankLog], now: float | None = None,
                settle_s: float = 1.0, start: int = 1) -> Desync | None:
    """The first divergence between the ranks' logs, or None while they agree.

    * mismatch: collective n has another op, reduce op, dtype, shape, group size or step
      label on some rank. The culprit is the rank that differs from the majority; with no
      majority (two ranks), the rank whose n-th collective another rank issued later (it
      skipped one). Without that evidence the verdict waits ``settle_s`` for it, then names
      both sides.
    * missing: a rank finished after n - 1 collectives while another waits in its n-th.

    ``start``: the first collective number still to compare (the ones before it are known
    to agree on every rank, see :class:`DesyncWatch`).
    """
    now = time.monotonic() if now is None else now
    ranks = sorted(logs)
    depth = max((len(logs[r].entries) for r in ranks), default=0)
    for n in range(start, depth + 1):
        present = {r: logs[r].entries[n - 1] for r in ranks if len(logs[r].entries) >= n}
        keys = {r: e.key for r, e in present.items()}
        if len(set(keys.values())) > 1:
            culprit = _odd_one_out(keys, logs, n)
            if culprit is None:
                if now - max(e.issued_s for e in present.values()) < settle_s:
                    return None
                culprit = max(present)
                other = min(present)
                return Desync(culprit, n, (
                    f"ranks {other} and {culprit} disagree at collective #{n}: rank {other} "
                    f"issued {present[other].describe()}, rank {culprit} issued "
                    f"{present[culprit].describe()}"))
            other = next(r for r in present if keys[r] != keys[culprit])
            return Desync(culprit, n, (
                f"rank {culprit} broke the collective order at collective #{n}: it issued "
                f"{present[culprit].describe()}, where rank {other} issued "
                f"{present[other].describe()}"))
        missing = [r for r in ranks if logs[r].finished and len(logs[r].entries) < n]
        waiting = [r for r, e in present.items() if e.completed_s is None]
        if missing and waiting:
            culprit, waiter = missing[0], waiting[0]
            return Desync(culprit, n, (
                f"rank {culprit} finished after {len(logs[culprit].entries)} collective(s) and "
                f"never issued collective #{n}, which rank {waiter} waits in: "
                f"{present[waiter].describe()}"))
    return None


class DesyncWatch:
    """:func:`find_desync` over logs that only grow, as the parent checks them after every
    event: the collectives every rank has issued with the same key are not compared again,
    so a long run costs one comparison per collective, not one per event and collective."""

    def __init__(self, logs: dict[int, RankLog]) -> None:
        self.logs = logs
        self.agreed = 0  # collectives 1..agreed are issued alike on every rank

    def check(self, now: float | None = None) -> Desync | None:
        entries = [log.entries for log in self.logs.values()]
        common = min((len(e) for e in entries), default=0)
        while self.agreed < common and len({e[self.agreed].key for e in entries}) == 1:
            self.agreed += 1
        return find_desync(self.logs, now, start=self.agreed + 1)


def _odd_one_out(keys: dict[int, Any], logs: dict[int, RankLog], n: int) -> int | None:
    counts: dict[Any, int] = {}
    for key in keys.values():
        counts[key] = counts.get(key, 0) + 1
    top = max(counts.values())
    if top > 1 and list(counts.values()).count(top) == 1:
        majority = max(counts, key=counts.__getitem__)
        return next(r for r, k in keys.items() if k != majority)
    for r in sorted(keys):  # r's n-th collective is one another rank issued later
        if any(e.key == keys[r] for other in keys if other != r
               for e in logs[other].entries[n:]):
            return r
    return None
