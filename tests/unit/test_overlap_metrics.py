"""harness.overlap.metrics / stats: the arithmetic of the report's overlap numbers,
on synthetic per-rank records (no processes, no torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.overlap.metrics import (
    METRICS,
    aggregate,
    assess,
    build_timeline,
    classify,
    derive,
    representative_iteration,
    slowest_rank,
    summarize_iterations,
)
from harness.overlap.stats import statistic_fields, summarize


def rec(*, comm=2.0, bwd=100.0, ov=101.0, issue=0.5, apply=0.5, call=0.1, wait=0.0,
        bwd_ov=100.0, traced=True, origin=None, spans=None) -> dict:
    return {"comm_ms": comm, "bwd_ms": bwd, "serial_ms": comm + bwd, "overlapped_ms": ov,
            "issue_ms": issue, "apply_ms": apply, "collective_call_ms": call, "wait_ms": wait,
            "bwd_overlapped_ms": bwd_ov, "traced": traced, "origin_ms": origin,
            "spans": spans or []}


# ------------------------------------------------------------------------- derive

def test_traced_exposure_is_call_plus_wait() -> None:
    d = derive(rec(comm=2.0, call=0.1, wait=0.3, issue=0.6, apply=0.5))
    assert d["exposed_ms"] == pytest.approx(0.4)
    assert d["hidden_fraction"] == pytest.approx(1 - 0.4 / 2.0)
    assert d["centering_ms"] == pytest.approx(0.6 + 0.5 - 0.4)  # row sums, EMA: not comm


def test_untraced_exposure_falls_back_to_the_whole_calls() -> None:
    d = derive(rec(comm=2.0, issue=0.6, apply=0.5, traced=False))
    assert d["exposed_ms"] == pytest.approx(1.1)
    assert d["centering_ms"] == 0.0


def test_fake_async_exposes_everything_without_waiting() -> None:
    # A synchronous all-reduce inside update_center: the call holds the whole collective,
    # there is no wait after backward, and nothing is hidden.
    d = derive(rec(comm=2.0, call=2.1, wait=0.0, issue=2.4))
    assert d["wait_ms"] == 0.0
    assert d["hidden_fraction"] == pytest.approx(-0.05)
    assert classify({"hidden_fraction": d["hidden_fraction"]}) == "exposed"


def test_no_communication_means_undefined_hidden_fraction() -> None:
    d = derive(rec(comm=0.0, call=0.0, issue=0.2, apply=0.3), has_comm=False)
    assert d["exposed_ms"] == 0.0 and math.isnan(d["hidden_fraction"])
    assert d["efficiency"] == pytest.approx(100.0 / 101.0)


def test_interference_and_efficiency() -> None:
    d = derive(rec(bwd=100.0, bwd_ov=118.0, comm=5.0, ov=120.0))
    assert d["interference"] == pytest.approx(0.18)
    assert d["efficiency"] == pytest.approx(100.0 / 120.0)


@pytest.mark.parametrize(("comm", "bwd", "ov"), [(50.0, 10.0, 45.0), (10.0, 100.0, 90.0),
                                                  (30.0, 30.0, 1.0)])
def test_efficiency_never_exceeds_one(comm: float, bwd: float, ov: float) -> None:
    assert derive(rec(comm=comm, bwd=bwd, ov=ov))["efficiency"] <= 1.0
    m = summarize_iterations([derive(rec(comm=comm, bwd=bwd, ov=ov))] * 5)
    assert m["efficiency"] <= 1.0 and m["efficiency_ci_high"] <= 1.0
    assert m["efficiency_unclamped"] == pytest.approx(max(comm, bwd) / ov, rel=1e-3)


# ------------------------------------------------------------------------- stats

def test_summarize_median_percentiles_and_interval() -> None:
    values = list(range(1, 21))  # 1..20
    s = summarize(values)
    assert s["median"] == 10.5 and s["n"] == 20
    assert s["p10"] == pytest.approx(np.percentile(values, 10))
    assert s["p90"] == pytest.approx(np.percentile(values, 90))
    assert s["ci_low"] <= s["median"] <= s["ci_high"]
    assert summarize(values) == s  # deterministic (fixed bootstrap seed)


def test_summarize_drops_nan_and_handles_empty() -> None:
    s = summarize([1.0, float("nan"), 3.0, None])
    assert s["n"] == 2 and s["median"] == 2.0
    empty = summarize([float("nan")])
    assert empty["n"] == 0 and math.isnan(empty["median"]) and math.isnan(empty["ci_low"])


def test_interval_narrows_with_agreeing_iterations() -> None:
    rng = np.random.default_rng(1)
    tight = summarize(list(10 + 0.01 * rng.standard_normal(40)))
    loose = summarize(list(10 + 3.0 * rng.standard_normal(40)))
    assert tight["ci_high"] - tight["ci_low"] < 0.05 < loose["ci_high"] - loose["ci_low"]


def test_statistic_fields_resample_iterations_jointly() -> None:
    # exposed == comm / 2 in every iteration: the ratio of medians is exact in every
    # resample, so the interval collapses to the value although both columns vary a lot.
    comm = [1.0, 5.0, 2.0, 9.0, 3.0, 7.0]
    cols = {"comm_ms": comm, "exposed_ms": [c / 2 for c in comm]}
    out = statistic_fields("h", cols, lambda c: 1 - np.median(c["exposed_ms"], axis=-1)
                           / np.median(c["comm_ms"], axis=-1),
                           [0.5] * 6)
    assert out["h"] == out["h_ci_low"] == out["h_ci_high"] == 0.5


def test_reported_ratios_are_the_ratios_of_the_reported_medians() -> None:
    rows = [derive(rec(comm=c, call=e, bwd=b, bwd_ov=b * 1.1, ov=b + 1))
            for c, e, b in [(1, 0.1, 90), (4, 0.2, 110), (2, 0.1, 100), (8, 0.5, 95), (3, 0.3, 105)]]
    m = summarize_iterations(rows)
    for name in METRICS:
        for suffix in ("", "_p10", "_p90", "_ci_low", "_ci_high"):
            assert name + suffix in m
    assert m["hidden_fraction"] == pytest.approx(1 - m["exposed_ms"] / m["comm_ms"], abs=1e-3)
    assert m["interference"] == pytest.approx(0.1, abs=1e-3)
    assert m["efficiency"] == pytest.approx(max(m["comm_ms"], m["bwd_ms"]) / m["overlapped_ms"], abs=1e-3)


# ---------------------------------------------------------------------- aggregate

def _ranks(rows0: list[dict], rows1: list[dict]) -> list[dict]:
    return [{"rank": 0, "records": rows0, "n_collectives": 1, "clock": "host perf_counter_ns",
             "cross_rank_clock": True},
            {"rank": 1, "records": rows1, "n_collectives": 1, "clock": "host perf_counter_ns",
             "cross_rank_clock": True}]


def test_slowest_rank_is_chosen_per_iteration_with_all_its_fields() -> None:
    r0 = [rec(ov=100, comm=1.0), rec(ov=300, comm=9.0)]
    r1 = [rec(ov=200, comm=2.0), rec(ov=150, comm=3.0)]
    per_rank = _ranks(r0, r1)
    assert [slowest_rank(per_rank, i) for i in range(2)] == [1, 0]
    agg = aggregate(per_rank)
    assert agg["metrics"]["comm_ms"] == pytest.approx((2.0 + 9.0) / 2)  # median of rank1@0, rank0@1
    assert [r["slowest_in"] for r in agg["per_rank"]] == [1, 1]
    assert agg["per_rank"][0]["metrics"]["comm_ms"] == pytest.approx(5.0)
    assert agg["exposed_basis"] == "traced collective calls + waits"


def test_representative_iteration_is_nearest_the_median() -> None:
    assert representative_iteration([5.0, 1.0, 9.0, 4.0, 100.0]) == 0
    assert representative_iteration([float("nan")]) is None


def test_timeline_on_a_shared_host_clock_is_offset_by_rank_start() -> None:
    spans = [{"name": "issue", "start_ms": 0.0, "end_ms": 1.0},
             {"name": "backward", "start_ms": 1.0, "end_ms": 50.0},
             {"name": "allreduce", "start_ms": 0.5, "end_ms": 3.0}]
    per_rank = _ranks([rec(origin=1000.0, spans=spans)], [rec(origin=1000.25, spans=spans)])
    tl = build_timeline(per_rank, 0)
    assert tl["aligned"] == "one host clock for all ranks" and tl["allreduce_traced"]
    assert [r["rank"] for r in tl["ranks"]] == [0, 1]
    assert tl["ranks"][0]["spans"][0] == {"name": "issue", "start_ms": 0.0, "end_ms": 1.0}
    assert tl["ranks"][1]["spans"][1]["start_ms"] == pytest.approx(1.25)


def test_timeline_on_device_clocks_is_per_rank() -> None:
    spans = [{"name": "allreduce", "start_ms": 0.5, "end_ms": 0.6, "estimated": True}]
    per_rank = _ranks([rec(spans=spans)], [rec(spans=spans)])
    for res in per_rank:
        res["cross_rank_clock"] = False
    tl = build_timeline(per_rank, 0)
    assert tl["aligned"].startswith("each rank")
    assert tl["ranks"][1]["spans"][0] == {"name": "allreduce", "start_ms": 0.5, "end_ms": 0.6,
                                          "estimated": True}


# ------------------------------------------------------------------------- assess

def test_comm_longer_than_backward_is_flagged_with_text() -> None:
    m = summarize_iterations([derive(rec(comm=40.0, bwd=10.0, ov=42.0, call=0.1))] * 20)
    inconclusive, reasons, noisy, notes, flags = assess(m, world_size=2, has_comm=True)
    assert flags["comm_exceeds_backward"] and not inconclusive
    assert any("longer than backward" in n for n in notes)
    assert m["efficiency"] <= 1.0


def test_wide_hidden_interval_is_inconclusive() -> None:
    rng = np.random.default_rng(0)
    rows = [derive(rec(comm=float(c), call=float(e)))
            for c, e in zip(rng.uniform(0.5, 5, 20), rng.uniform(0.1, 3, 20), strict=True)]
    m = summarize_iterations(rows)
    inconclusive, reasons, noisy, notes, flags = assess(m, world_size=2, has_comm=True)
    assert inconclusive and reasons[0].startswith("hidden_fraction: 95% interval")
    assert any("comm_ms" in n for n in noisy)


def test_steady_run_is_conclusive_and_world_size_one_is_explained() -> None:
    m = summarize_iterations([derive(rec())] * 20)
    assert assess(m, world_size=2, has_comm=True)[0] is False
    m1 = summarize_iterations([derive(rec(comm=0.0), has_comm=False)] * 20, has_comm=False)
    inconclusive, reasons, noisy, notes, flags = assess(m1, world_size=1, has_comm=False)
    assert not inconclusive and flags["no_communication"]
    assert any("world size 1" in n for n in notes)
    assert math.isnan(m1["hidden_fraction"])
