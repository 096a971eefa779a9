"""The paired overlap measurement: exposure and the all-reduce's own duration from the
same iteration (harness.overlap.metrics, trace, program), on synthetic records and fakes
(no processes). Behaviour only: the measured figures are in ``make bench``."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.distributed as dist

from harness.overlap.clock_host import HostClock
from harness.overlap.metrics import (
    aggregate,
    assess,
    classify,
    derive,
    headline,
    summarize_iterations,
    verdict_text,
)
from harness.overlap.program import allreduce_spans
from harness.overlap.trace import CollectiveTracer
from harness.runtime.collective_log import unlogged


def rec(*, comm: float = 2.0, ar: float | None = 4.0, call: float = 0.1, wait: float = 0.0,
        traced: bool = True, bwd: float = 100.0) -> dict[str, Any]:
    return {"comm_ms": comm, "bwd_ms": bwd, "serial_ms": comm + bwd, "overlapped_ms": bwd + 1,
            "issue_ms": call + 0.2, "apply_ms": wait + 0.1, "collective_call_ms": call,
            "wait_ms": wait, "bwd_overlapped_ms": bwd, "traced": traced,
            "allreduce_overlapped_ms": ar, "spans": []}


def test_paired_fraction_divides_by_the_same_iterations_all_reduce() -> None:
    d = derive(rec(comm=1.0, ar=4.0, call=0.1, wait=0.1))
    assert d["hidden_fraction_paired"] == pytest.approx(1 - 0.2 / 4.0)
    assert d["hidden_fraction"] == pytest.approx(1 - 0.2 / 1.0)  # the cross-check keeps its meaning


def test_a_blocking_all_reduce_is_paired_zero() -> None:
    # fake async: the all-reduce's span is the issuing call itself: nothing hidden
    d = derive(rec(ar=2.5, call=2.5, wait=0.0))
    assert d["hidden_fraction_paired"] == 0.0 and classify(d) == "exposed"


def test_paired_is_undefined_without_an_end_or_a_trace_or_a_message() -> None:
    assert math.isnan(derive(rec(ar=None))["hidden_fraction_paired"])
    assert math.isnan(derive(rec(traced=False))["hidden_fraction_paired"])
    assert math.isnan(derive(rec(), has_comm=False)["hidden_fraction_paired"])


def test_jitter_of_the_all_reduce_cancels_in_the_paired_fraction() -> None:
    # The all-reduce takes 0.5..8 ms from one iteration to the next; each iteration hides
    # 95 % of its own. The phase protocol divides by another iteration's comm and scatters.
    durations = [0.5, 8.0, 1.0, 6.0, 2.0, 0.7, 5.0, 3.0, 1.5, 7.0] * 3
    comms = list(reversed(durations))
    rows = [derive(rec(comm=c, ar=d, call=0.05 * d, wait=0.0)) for c, d in zip(comms, durations, strict=True)]
    m = summarize_iterations(rows)
    assert m["hidden_fraction_paired"] == pytest.approx(0.95)
    assert m["hidden_fraction_paired_ci_high"] - m["hidden_fraction_paired_ci_low"] < 1e-9
    assert m["hidden_fraction_ci_high"] - m["hidden_fraction_ci_low"] > 0.1
    assert headline(m) == "hidden_fraction_paired"
    inconclusive, reasons, noisy, _, _ = assess(m, world_size=2, has_comm=True)
    assert not inconclusive and not reasons
    assert "paired" in verdict_text(m, has_comm=True)


def test_without_paired_figures_the_phase_protocol_is_the_headline() -> None:
    m = summarize_iterations([derive(rec(ar=None)) for _ in range(5)])
    assert "hidden_fraction_paired" not in m and headline(m) == "hidden_fraction"
    assert "paired" not in verdict_text(m, has_comm=True)


def test_a_large_gap_between_the_two_fractions_is_noted() -> None:
    ranks = [{"rank": r, "n_collectives": 1,
              "records": [rec(comm=1.0, ar=10.0, call=0.5, wait=0.0) for _ in range(6)]}
             for r in range(2)]
    m = aggregate(ranks)["metrics"]  # paired 0.95, phases 0.5
    _, _, _, notes, _ = assess(m, world_size=2, has_comm=True)
    assert any(n.startswith("cross-check:") for n in notes)


def test_nccl_blocking_call_ends_when_it_returns() -> None:
    clock = HostClock()
    calls = [{"start": 1_000_000, "end": 3_000_000, "work": None, "done_ns": None}]
    assert allreduce_spans(calls, clock, 0, nccl=True) == [
        {"name": "allreduce", "start_ms": 1.0, "end_ms": 3.0}]


def test_tracer_bypasses_the_collective_log_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def real(tensor: Any, *args: Any, **kwargs: Any) -> None:
        seen.append("real")

    def logged(tensor: Any, *args: Any, **kwargs: Any) -> None:
        seen.append("log")
        return real(tensor, *args, **kwargs)

    logged.__wrapped__ = real  # type: ignore[attr-defined] - as functools.wraps sets it
    logged.__dino_harness_logged__ = True  # type: ignore[attr-defined]
    monkeypatch.setattr(dist, "all_reduce", logged)
    assert unlogged("all_reduce") is real
    with CollectiveTracer(HostClock(), "gloo"):
        dist.all_reduce(torch.zeros(1))
    with CollectiveTracer(HostClock(), "gloo", logged=True):
        dist.all_reduce(torch.zeros(1))
    assert seen == ["real", "log", "real"]
    assert dist.all_reduce is logged


def test_run_figure_resists_both_failure_modes_of_a_loaded_machine() -> None:
    # 14 iterations hide 95 % of a 4-8 ms all-reduce; 5 complete inside their own 0.7 ms
    # issuing call (censored: ratio ~0); 1 is descheduled inside the call for 50 ms.
    rows = [derive(rec(ar=4.0 + (i % 5), call=0.05 * (4.0 + (i % 5)))) for i in range(14)]
    rows += [derive(rec(ar=0.72, call=0.7)) for _ in range(5)]
    rows += [derive(rec(ar=50.0, call=50.0))]
    m = summarize_iterations(rows)
    assert m["hidden_fraction_paired"] > 0.8
    assert m["hidden_fraction_paired_ci_high"] - m["hidden_fraction_paired_ci_low"] < 0.25
