"""The device clock (NCCL): CUDA events on the compute stream, plus NCCL's own timing
of each collective.

Why not the host clock: an NCCL collective is enqueued on NCCL's stream and ``wait()``
only makes the current (compute) stream wait for it; both return at once on the host.
What the step costs is what the *compute stream* spends, so every mark here is a CUDA
event recorded on the current stream of the rank's device, and every phase ends with an
explicit ``torch.cuda.synchronize`` (:meth:`CudaEventClock.finish`) before any elapsed
time is read.

* ``elapsed_ms(a, b)``: ``a.elapsed_time(b)`` of two events on the compute stream: the
  GPU time between the two points of the stream (about 0.5 µs resolution).
* :func:`work_duration_ms`: a collective's own duration, ``Work._get_duration()``: NCCL's
  start/end events around its kernel on the NCCL stream. Only exists when the process
  group was created with ``TORCH_NCCL_ENABLE_TIMING=1`` (the bench command sets it before
  it starts NCCL pools; :func:`nccl_timing_requested` tells a rank whether it was set),
  and only after the work completed; otherwise None.

Events of different ranks live on different GPUs: there is no common time base, so
timelines put each rank's marks relative to its own phase start, which the barrier
before each phase aligns (``cross_rank = False``).

The ``cuda`` argument (default ``torch.cuda``) is there so that the arithmetic can be
tested with a fake on a machine without a GPU.
"""

from __future__ import annotations

import math
import os
from typing import Any

TIMING_ENV = "TORCH_NCCL_ENABLE_TIMING"


class CudaEventClock:
    """Marks are CUDA events recorded on the device's current stream."""

    name = "cuda events on the compute stream"
    cross_rank = False

    def __init__(self, device: Any, cuda: Any = None) -> None:
        if cuda is None:
            import torch

            cuda = torch.cuda
        self.cuda = cuda
        self.device = device
        self._pending: list[Any] = []

    def mark(self) -> Any:
        event = self.cuda.Event(enable_timing=True)
        event.record(self.cuda.current_stream(self.device))
        self._pending.append(event)
        return event

    def finish(self) -> None:
        """Wait until the device has passed every event recorded so far."""
        self.cuda.synchronize(self.device)
        self._pending.clear()

    def elapsed_ms(self, start: Any, end: Any) -> float:
        """GPU milliseconds between two marks; call :meth:`finish` first."""
        value = float(start.elapsed_time(end))
        if not math.isfinite(value):
            raise RuntimeError(f"CUDA event elapsed time is {value}")
        return value

    def absolute_ms(self, mark: Any) -> float | None:
        return None  # events only give differences


def nccl_timing_requested() -> bool:
    """Whether this process was started with TORCH_NCCL_ENABLE_TIMING set (it must be set
    before the process group is created to take effect)."""
    return os.environ.get(TIMING_ENV, "").strip().lower() in ("1", "true", "yes")


def work_duration_ms(work: Any) -> float | None:
    """NCCL's own duration of a completed collective, or None when unavailable (timing not
    enabled, a backend without it, the work not finished, an old torch)."""
    get = getattr(work, "_get_duration", None)
    if get is None:
        return None
    try:
        value = float(get())
    except Exception:  # noqa: BLE001 - "timing not enabled", "not completed", gloo
        return None
    return value if math.isfinite(value) and value >= 0 else None
