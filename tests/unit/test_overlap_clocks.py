"""The overlap clocks and the collective trace, with fakes: the CUDA-event clock and the
NCCL work timing are exercised here without a GPU (their real run is the nccl-marked
test in tests/dist/test_overlap_bench.py)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.distributed as dist

from harness.overlap.clock_cuda import (
    TIMING_ENV,
    CudaEventClock,
    nccl_timing_requested,
    work_duration_ms,
)
from harness.overlap.clock_host import HostClock
from harness.overlap.program import allreduce_spans, make_clock
from harness.overlap.trace import CollectiveTracer, TimedWork

# ------------------------------------------------------------------------- fakes


class FakeStream:
    def __init__(self) -> None:
        self.now_ms = 0.0

    def advance(self, ms: float) -> None:
        self.now_ms += ms


class FakeEvent:
    """Records the stream's time; elapsed_time needs both recorded and synchronised."""

    def __init__(self, cuda: FakeCuda, enable_timing: bool = False) -> None:
        assert enable_timing, "the clock must ask for timing events"
        self.cuda = cuda
        self.t: float | None = None

    def record(self, stream: FakeStream) -> None:
        self.t = stream.now_ms
        self.cuda.recorded += 1

    def elapsed_time(self, end: FakeEvent) -> float:
        if not self.cuda.synced:
            raise RuntimeError("device not ready (read before synchronize)")
        assert self.t is not None and end.t is not None
        return end.t - self.t


class FakeCuda:
    def __init__(self) -> None:
        self.stream = FakeStream()
        self.recorded = 0
        self.synced = False
        self.sync_calls: list[Any] = []

    def Event(self, enable_timing: bool = False) -> FakeEvent:  # noqa: N802 - torch.cuda's name
        self.synced = False
        return FakeEvent(self, enable_timing)

    def current_stream(self, device: Any) -> FakeStream:
        return self.stream

    def synchronize(self, device: Any) -> None:
        self.synced = True
        self.sync_calls.append(device)


class FakeWork:
    def __init__(self, duration: Any = 1.5) -> None:
        self.duration = duration
        self.waited = 0

    def _get_duration(self) -> float:
        if isinstance(self.duration, Exception):
            raise self.duration
        return self.duration

    def wait(self, timeout: Any = None) -> bool:
        self.waited += 1
        return True

    def is_completed(self) -> bool:
        return True


# ------------------------------------------------------------------------- host

def test_host_clock_arithmetic_and_shared_time_base() -> None:
    ticks = iter([1_000_000, 3_500_000])
    clock = HostClock(now_ns=lambda: next(ticks))
    a, b = clock.mark(), clock.mark()
    clock.finish()
    assert clock.elapsed_ms(a, b) == pytest.approx(2.5)
    assert clock.absolute_ms(a) == pytest.approx(1.0) and clock.cross_rank


def test_clock_per_backend() -> None:
    assert isinstance(make_clock("gloo", torch.device("cpu")), HostClock)


# ------------------------------------------------------------------------- CUDA events

def test_cuda_event_clock_reads_stream_time_after_synchronising() -> None:
    cuda = FakeCuda()
    clock = CudaEventClock("cuda:0", cuda=cuda)
    m0 = clock.mark()
    cuda.stream.advance(0.25)  # the issue
    m1 = clock.mark()
    cuda.stream.advance(40.0)  # backward
    m2 = clock.mark()
    cuda.stream.advance(0.75)  # the compute stream waiting for NCCL
    m3 = clock.mark()
    with pytest.raises(RuntimeError, match="before synchronize"):
        clock.elapsed_ms(m0, m1)
    clock.finish()
    assert cuda.sync_calls == ["cuda:0"]
    assert [clock.elapsed_ms(m0, m) for m in (m1, m2, m3)] == [0.25, 40.25, 41.0]
    assert clock.elapsed_ms(m2, m3) == 0.75
    assert clock.absolute_ms(m0) is None and not clock.cross_rank  # no cross-GPU time base


def test_cuda_clock_rejects_non_finite_elapsed() -> None:
    cuda = FakeCuda()
    clock = CudaEventClock("cuda:0", cuda=cuda)
    a, b = clock.mark(), clock.mark()
    b.t = float("nan")
    clock.finish()
    with pytest.raises(RuntimeError, match="nan"):
        clock.elapsed_ms(a, b)


@pytest.mark.parametrize(("work", "expected"), [
    (FakeWork(1.5), 1.5),
    (FakeWork(RuntimeError("Timing not enabled")), None),
    (FakeWork(float("nan")), None),
    (FakeWork(-1.0), None),
    (object(), None),  # a gloo work: no _get_duration
])
def test_work_duration_is_guarded(work: Any, expected: float | None) -> None:
    assert work_duration_ms(work) == expected


def test_nccl_timing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMING_ENV, raising=False)
    assert not nccl_timing_requested()
    monkeypatch.setenv(TIMING_ENV, "1")
    assert nccl_timing_requested()


# ------------------------------------------------------------------------- trace

@pytest.fixture
def fake_all_reduce(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """dist.all_reduce replaced by a fake: async calls return a FakeWork."""
    issued: list[Any] = []

    def fake(tensor: Any, op: Any = None, group: Any = None, async_op: bool = False) -> Any:
        work = FakeWork(2.0) if async_op else None
        issued.append(work)
        return work

    monkeypatch.setattr(dist, "all_reduce", fake)
    return issued


def test_tracer_times_calls_and_waits_and_restores(fake_all_reduce: list[Any]) -> None:
    original = dist.all_reduce
    ticks = itertools.count(0, 1_000_000)  # every mark 1 ms after the last
    clock = HostClock(now_ns=lambda: next(ticks))
    with CollectiveTracer(clock, "gloo") as tracer:
        work = dist.all_reduce(torch.zeros(3), async_op=True)  # marks 0, 1
        assert isinstance(work, TimedWork) and work.is_completed()
        work.wait()  # marks 2, 3
        assert dist.all_reduce(torch.zeros(3)) is None  # blocking: marks 4, 5
    assert dist.all_reduce is original
    assert fake_all_reduce[0].waited == 1
    assert tracer.seen and tracer.exposed_ms() == (2.0, 1.0)
    spans = allreduce_spans(tracer.calls, clock, 0, nccl=False)
    # the async call has no done stamp (fake future): no span; the blocking one ends on return
    assert spans == [{"name": "allreduce", "start_ms": 4.0, "end_ms": 5.0}]


def test_nccl_spans_use_the_work_duration_and_are_estimates() -> None:
    cuda = FakeCuda()
    clock = CudaEventClock("cuda:0", cuda=cuda)
    m0 = clock.mark()
    cuda.stream.advance(0.1)
    start = clock.mark()
    end = clock.mark()
    clock.finish()
    calls = [{"start": start, "end": end, "work": FakeWork(0.8), "done_ns": None},
             {"start": start, "end": end, "work": FakeWork(RuntimeError("no timing")),
              "done_ns": None}]
    spans = allreduce_spans(calls, clock, m0, nccl=True)
    assert spans == [{"name": "allreduce", "start_ms": pytest.approx(0.1),
                      "end_ms": pytest.approx(0.9), "estimated": True}]
