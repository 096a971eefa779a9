"""The host clock (gloo): ``time.perf_counter_ns`` around host calls.

On gloo every step of the protocol is a host call that returns when its work is done
(a blocking all-reduce, ``loss.backward()`` on the CPU, ``work.wait()``), so the host
clock measures what the step costs. ``perf_counter_ns`` is CLOCK_MONOTONIC on Linux:
the same clock in every process of the machine, so marks of different ranks can be put
on one timeline (:meth:`HostClock.absolute_ms`).

Never use this clock for NCCL: there ``wait()`` only makes the current CUDA stream wait
and returns at once, so host time around it measures nothing (clock_cuda.py).
"""

from __future__ import annotations

import time


class HostClock:
    """Marks are ints (ns); ``finish`` has nothing to synchronise."""

    name = "host perf_counter_ns"
    cross_rank = True  # absolute marks of different ranks share one time base

    def __init__(self, now_ns=time.perf_counter_ns) -> None:
        self._now = now_ns

    def mark(self) -> int:
        return self._now()

    def finish(self) -> None:
        """Nothing is pending on the host once a host call returned."""

    def elapsed_ms(self, start: int, end: int) -> float:
        return (end - start) / 1e6

    def absolute_ms(self, mark: int) -> float | None:
        return mark / 1e6
