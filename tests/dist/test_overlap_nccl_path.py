"""The NCCL branches of the overlap protocol, run on gloo ranks with a fake CUDA clock.

No GPU here: this runs program.RankProtocol with ``nccl = True`` (barrier with device
ids + device synchronisation, the blocking comm as async + wait, NCCL work durations,
estimated all-reduce spans) and the CUDA-event clock driven by a fake ``torch.cuda``
whose stream time is the host clock. It proves the Python of the NCCL path runs and
its arithmetic is right; what it cannot prove -- real events, real NCCL timing, a real
``wait()`` that returns at once -- is the nccl-marked test in test_overlap_bench.py.
"""

from __future__ import annotations

import time
from typing import Any

import pytest


class _Stream:
    pass


class _Event:
    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.t: float | None = None

    def record(self, stream: Any) -> None:
        self.t = time.perf_counter() * 1e3

    def elapsed_time(self, end: _Event) -> float:
        assert self.t is not None and end.t is not None
        return end.t - self.t


class _FakeCuda:
    def __init__(self) -> None:
        self.syncs = 0

    def Event(self, enable_timing: bool = False) -> _Event:  # noqa: N802
        return _Event(enable_timing)

    def current_stream(self, device: Any) -> _Stream:
        return _Stream()

    def synchronize(self, device: Any = None) -> None:
        self.syncs += 1


def fake_nccl_program(ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Rank program: the protocol with its NCCL branches, on this gloo rank."""
    import torch
    import torch.distributed as dist

    from harness.overlap.cases import OverlapCase
    from harness.overlap.clock_cuda import CudaEventClock
    from harness.overlap.program import RankProtocol

    fake = _FakeCuda()
    saved = (torch.cuda.synchronize, dist.barrier)
    real_barrier = dist.barrier
    barrier_ids: list[Any] = []

    def barrier(*args: Any, device_ids: Any = None, **kwargs: Any) -> Any:
        barrier_ids.append(device_ids)
        return real_barrier(*args, **kwargs)

    torch.cuda.synchronize = fake.synchronize  # type: ignore[assignment]
    dist.barrier = barrier  # type: ignore[assignment]
    try:
        case = OverlapCase.from_payload(payload["case"])
        protocol = RankProtocol(ctx, case, impl="harness.losses", api="seed", ddp=False)
        protocol.nccl = True
        protocol.device = torch.device("cpu")  # .index is None, as device_ids gets it
        protocol.clock = CudaEventClock("cuda:fake", cuda=fake)
        out = protocol.run()
    finally:
        torch.cuda.synchronize, dist.barrier = saved  # type: ignore[assignment]
    out["fake_syncs"] = fake.syncs
    out["barrier_device_ids"] = barrier_ids[:1]
    return out


@pytest.mark.world_size(2)
def test_nccl_branches_run_and_add_up(dist_run: Any) -> None:
    from harness.overlap.cases import OverlapCase
    from harness.overlap.runner import build_result

    case = OverlapCase("overlap-fake-nccl", K=4096, in_dim=8, hidden_dim=16, bottleneck_dim=4,
                       views_student=2, views_teacher=2, batch_per_rank=2, iterations=20,
                       warmup=1)
    ranks = dist_run("tests.dist.test_overlap_nccl_path:fake_nccl_program",
                     {"case": case.to_payload()})
    for res in ranks:
        assert res["clock"] == "cuda events on the compute stream"
        assert res["cross_rank_clock"] is False
        assert res["barrier_device_ids"] == [[None]]
        # every phase ends with a device synchronisation before elapsed times are read
        assert res["fake_syncs"] >= 4 * case.iterations
        assert res["nccl_timing"] is False
        assert any("TORCH_NCCL_ENABLE_TIMING" in n for n in res["notes"])
        for rec in res["records"]:
            assert rec["comm_work_ms"] is None  # gloo work: no NCCL timing, guarded
            assert rec["traced"] and rec["wait_ms"] >= 0 and rec["comm_ms"] > 0
            assert rec["overlapped_ms"] == pytest.approx(
                rec["issue_ms"] + rec["bwd_overlapped_ms"] + rec["apply_ms"], rel=1e-9)
            assert not any(s["name"] == "allreduce" for s in rec["spans"])  # no duration known
    result = build_result("overlap-fake-nccl", "nccl", 2, case, ranks, 1.0,
                          {"prototypes": case.K, "batch_per_rank": 2, "iterations": 20})
    d = result.to_json()
    assert d["status"] == "pass"
    assert d["timeline"]["aligned"].startswith("each rank")
    assert d["timeline"]["ranks"][1]["spans"][0]["start_ms"] == 0.0  # own phase start
    assert "comm_work_ms" not in d["metrics"]  # unavailable metrics are left out
