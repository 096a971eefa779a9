"""Trace of the center collective inside the overlapped step: what is exposed, and when
the all-reduce ran (for the timeline).

While a :class:`CollectiveTracer` is active, ``torch.distributed.all_reduce`` is replaced
by a wrapper that marks, on the protocol's clock (host ns for gloo, CUDA events on the
compute stream for NCCL):

* the collective *call*: its start and its return. A blocking call (``async_op=False``,
  e.g. a "fake async" update) runs the whole all-reduce inside it; an async call only
  enqueues it;
* every ``wait()`` on the handle it returned (the handle is wrapped in :class:`TimedWork`,
  which forwards everything else to the real work): its start and its return. On NCCL a
  wait only makes the compute stream wait, and the events around it measure how long the
  compute stream stalled.

The exposed communication time of the step is the sum of those call and wait durations:
time the step's critical path spent inside the collective or blocked on it. Marks are
read after the phase's synchronisation (clock ``finish``).

For the timeline the all-reduce's own span is also kept, best effort:

* gloo: an async call gets a done-callback on its future that stamps ``perf_counter_ns``
  when gloo's thread completes it (the callback needs the GIL: it may land late while the
  main thread holds it, never early); a blocking call ends when it returns;
* NCCL: the work's own duration (``Work._get_duration``, needs TORCH_NCCL_ENABLE_TIMING)
  from the call's mark (the NCCL stream cannot start before it): an estimate, labelled.

The tracer calls the real ``all_reduce`` past the harness's collective log
(``collective_log.unlogged``) unless told to keep it (``logged=True``): the log's
per-call messages would sit inside the timed call and in front of the done-callback.

Targets that reach the collective another way (``from torch.distributed import
all_reduce``, ``ProcessGroup.allreduce``, ``all_reduce_coalesced``) are not seen; the
protocol then falls back to timing the whole ``update_center`` and
``apply_center_update`` calls (see program.py) and says so.
"""

from __future__ import annotations

import time
from typing import Any

import torch.distributed as dist

from ..runtime.collective_log import unlogged


class TimedWork:
    """A work handle whose ``wait()`` is timed; every other attribute is the real work's."""

    def __init__(self, work: Any, clock: Any, waits: list[dict[str, Any]]) -> None:
        self._work = work
        self._clock = clock
        self._waits = waits

    def wait(self, *args: Any, **kwargs: Any) -> Any:
        start = self._clock.mark()
        try:
            return self._work.wait(*args, **kwargs)
        finally:
            self._waits.append({"start": start, "end": self._clock.mark()})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)


class CollectiveTracer:
    def __init__(self, clock: Any, backend: str, *, logged: bool = False) -> None:
        self.clock = clock
        self.backend = backend
        self.logged = logged
        self.calls: list[dict[str, Any]] = []
        self.waits: list[dict[str, Any]] = []
        self._original: Any = None

    def __enter__(self) -> CollectiveTracer:
        self.calls, self.waits = [], []
        self._original = dist.all_reduce
        original = dist.all_reduce if self.logged else unlogged("all_reduce")
        calls, waits, clock = self.calls, self.waits, self.clock
        host = self.backend != "nccl"

        def traced_all_reduce(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            start = clock.mark()
            work = original(tensor, *args, **kwargs)
            returned = clock.mark()
            rec: dict[str, Any] = {"start": start, "end": returned, "work": work,
                                   "done_ns": None}
            calls.append(rec)
            if work is None:
                return None
            if host:
                try:
                    work.get_future().add_done_callback(
                        lambda _fut, rec=rec: rec.__setitem__("done_ns", time.perf_counter_ns()))
                except Exception:  # noqa: BLE001 - a work without a future: no end stamp
                    pass
            return TimedWork(work, clock, waits)

        dist.all_reduce = traced_all_reduce
        return self

    def __exit__(self, *exc: Any) -> None:
        dist.all_reduce = self._original

    @property
    def seen(self) -> bool:
        return bool(self.calls)

    def exposed_ms(self) -> tuple[float, float]:
        """(time inside collective calls, time inside waits), ms; after clock.finish()."""
        el = self.clock.elapsed_ms
        return (sum(el(c["start"], c["end"]) for c in self.calls),
                sum(el(w["start"], w["end"]) for w in self.waits))

    def release(self) -> None:
        """Drop the work handles (after the spans were read)."""
        for c in self.calls:
            c["work"] = None
