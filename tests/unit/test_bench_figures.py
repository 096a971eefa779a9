"""Bench figures as schema-1 results (harness/report/figures.py) and their gate in
``compare`` (report/baseline.py): a figure, its floor and the ratio; synthetic values,
no timing."""

from __future__ import annotations

from harness.report import compare_reports
from harness.report.figures import Figure, figure_result
from harness.report.model import Report


def _report(ratios: list[float], fake_hidden: list[float]) -> Report:
    fv = figure_result("bench-first-verdict", [
        Figure("first_verdict_ratio", ratios, target=("<=", 1.3)),
        Figure("import_torch_s", [2.0] * len(ratios), gated=False)],
        backend="gloo", world_size=2, duration_s=1.0)
    fake = figure_result("bench-overlap-paired-fake-async", [
        Figure("hidden_fraction_paired", fake_hidden, better="lower")],
        backend="gloo", world_size=2, duration_s=1.0, extra={"prototypes": 65536})
    return Report(results=[fv, fake])


def test_figures_carry_median_interval_runs_and_the_gate() -> None:
    r = figure_result("b", [Figure("x_ratio", [1.1, 1.2, 1.0, 1.15, 1.05], target=("<=", 1.3)),
                            Figure("x_s", [3.0, 3.1, 2.9, 3.0, 3.2], gated=False)],
                      backend="gloo", world_size=2, duration_s=1.0)
    assert r.status == "pass" and r.metrics is not None
    assert r.metrics["x_ratio"] == 1.1
    assert r.metrics["x_ratio_ci_low"] <= 1.1 <= r.metrics["x_ratio_ci_high"]
    assert r.extra["gated"] == {"x_ratio": "lower"}
    assert r.extra["runs"]["x_s"] == [3.0, 3.1, 2.9, 3.0, 3.2]
    assert [c.name for c in r.checks] == ["target:x_ratio"] and r.checks[0].passed


def test_a_missed_target_fails_the_result() -> None:
    r = figure_result("b", [Figure("hidden", [0.5, 0.6, 0.55], better="higher",
                                   target=(">=", 0.8))], backend="gloo", world_size=2,
                      duration_s=1.0)
    assert r.status == "fail" and not r.checks[0].passed


def test_compare_gates_each_figure_in_its_own_direction() -> None:
    base = _report([1.1, 1.12, 1.08, 1.1, 1.11], [0.0, 0.01, -0.01, 0.0, 0.0])
    assert compare_reports(base, base).exit_code == 0
    slower = _report([1.6, 1.62, 1.58, 1.6, 1.61], [0.0, 0.01, -0.01, 0.0, 0.0])
    cmp = compare_reports(slower, base)
    assert cmp.exit_code == 1
    assert [(m.key[0], m.metric) for m in cmp.regressions] == [
        ("bench-first-verdict", "first_verdict_ratio")]
    # the fake control must stay near 0: a fake that "hides" more is a regression
    fooled = _report([1.1, 1.12, 1.08, 1.1, 1.11], [0.5, 0.52, 0.48, 0.5, 0.5])
    assert [m.metric for m in compare_reports(fooled, base).regressions] == ["hidden_fraction_paired"]
    # and the reverse moves are improvements
    assert compare_reports(base, slower).exit_code == 0
    assert compare_reports(base, slower).improvements
