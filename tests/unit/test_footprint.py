"""A case's memory is estimated before it runs, and a case the machine cannot hold is
refused with exit 2 and the estimate (never left to the kernel's OOM killer)."""

from __future__ import annotations

import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import case_from_table
from harness.cases.footprint import BASE_MB, RANK_MB, data_bytes, footprint
from harness.commands.common import require_memory
from harness.errors import NotEnoughMemory

GiB = 2**30


class FakeMachine:
    def __init__(self, available_gib: float, total_gib: float = 24.0) -> None:
        self._available, self._total = int(available_gib * GiB), int(total_gib * GiB)

    def available(self) -> int:
        return self._available

    def total(self) -> int:
        return self._total


def sinkhorn(k: int, batch: int, world: int):
    return case_from_table({"name": f"sinkhorn-{k}-{batch}", "kind": "sinkhorn", "K": k,
                            "batch_per_rank": batch, "world_sizes": [world]})


def test_the_estimate_grows_with_the_data_and_the_ranks():
    small, big = sinkhorn(4096, 8, 64), sinkhorn(65536, 16, 64)
    assert data_bytes(big, 64) == 8 * 64 * 16 * 65536
    assert footprint(big, 64).total_mb > footprint(small, 64).total_mb > footprint(small, 2).total_mb
    assert footprint(small, 64).total_mb >= BASE_MB + 64 * RANK_MB
    grouped = case_from_table({"name": "sinkhorn-g", "kind": "sinkhorn", "K": 4096,
                               "batch_per_rank": 8, "world_sizes": [64], "group_size": 16})
    # four groups run their one-process runs one after another: a quarter of the batch each
    assert footprint(grouped, 64).single_mb == pytest.approx(footprint(small, 64).single_mb / 4)


def test_a_case_the_machine_cannot_hold_is_refused_with_its_estimate():
    huge, fine = sinkhorn(131072, 512, 64), sinkhorn(4096, 8, 64)
    plan = [(fine, "gloo", 64), (huge, "gloo", 64)]
    require_memory([(fine, "gloo", 64)], FakeMachine(20.0))
    with pytest.raises(NotEnoughMemory) as refused:
        require_memory(plan, FakeMachine(20.0))
    text = str(refused.value)
    assert "1 planned case(s)" in text and huge.test_id("gloo", 64) in text
    assert fine.test_id("gloo", 64) not in text
    assert f"{footprint(huge, 64).total_mb / 1024:.1f} GiB" in text
    # the guard's floor is not free memory: 1.2 GiB of it on a 24 GiB machine
    need = footprint(fine, 64).total_mb / 1024
    with pytest.raises(NotEnoughMemory):
        require_memory([(fine, "gloo", 64)], FakeMachine(need + 0.5))


class NeverRuns:
    """An executor that fails the test if the case is started."""

    def unavailable_reason(self, backend: str, world_size: int) -> None:
        return None

    def run(self, *args: object, **kwargs: object) -> list[object]:
        raise AssertionError("a case the machine cannot hold now was started")


def test_a_case_the_machine_can_no_longer_hold_is_skipped_with_the_figures(monkeypatch):
    from harness.checks.runner import run_case
    from harness.runtime import memory
    from harness.targets import load_target

    big = sinkhorn(65536, 16, 64)
    monkeypatch.setattr(memory, "PROC", FakeMachine(2.0))  # 0.8 GiB above the 1.2 GiB floor
    result = run_case(big, "gloo", 64, NeverRuns(), load_target("harness.losses"))
    assert result.status == "skip"
    assert "not enough memory now" in result.skip_reason
    need = footprint(big, 64).total_mb - BASE_MB
    assert f"needs an estimated {need:.0f} MB" in result.skip_reason
