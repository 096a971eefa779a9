"""compare_reports (harness.report.baseline): new failures, fixed, missing/added, overlap regressions with intervals."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.report import compare_command, compare_reports, comparison_section, render_comparison
from harness.report.baseline import NO_INTERVAL_REL_TOL
from harness.report.samples import sample_report
from harness.results import CaseResult, summarise


def _find(report: dict, case: str, ws: int, backend: str = "gloo", prototypes: int | None = None) -> dict:
    return next(r for r in report["results"] if r["case"] == case and r["world_size"] == ws
                and r["backend"] == backend
                and (prototypes is None or r.get("prototypes") == prototypes))


def _text(cmp) -> str:
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    render_comparison(cmp, console)
    return console.export_text()


def _overlap_only(hidden: tuple[float, float, float], overlapped=(60.0, 58.0, 63.0)) -> dict:
    m = {"hidden_fraction": hidden[0], "hidden_fraction_p10": hidden[1],
         "hidden_fraction_p90": hidden[2], "overlapped_ms": overlapped[0],
         "overlapped_ms_p10": overlapped[1], "overlapped_ms_p90": overlapped[2]}
    return {"results": [{"case": "ov", "kind": "overlap", "backend": "gloo", "world_size": 2,
                         "status": "pass", "duration_s": 1.0, "checks": [], "error": None,
                         "metrics": m, "prototypes": 65536}]}


def test_identical_reports_exit_0() -> None:
    cmp = compare_reports(sample_report(), sample_report())
    assert cmp.exit_code == 0
    assert not (cmp.new_failures or cmp.fixed or cmp.missing or cmp.added or cmp.regressions)
    assert len(cmp.still_failing) == 3  # failing in both: listed, not new
    assert "NO REGRESSION" in _text(cmp)


def test_new_failure_exit_1_and_fixed_reported() -> None:
    base = sample_report()
    new = copy.deepcopy(base)
    _find(new, "cls-loss-uneven", 2)["status"] = "fail"                 # pass → fail
    _find(new, "sinkhorn-uneven", 4)["status"] = "pass"                 # fail → pass
    _find(new, "centering-ema-uneven", 4)["status"] = "error"           # pass → error
    _find(new, "centering-ema-uneven", 2)["status"] = "skip"            # pass → skip
    cmp = compare_reports(new, base)
    assert cmp.exit_code == 1
    assert {(c.key, c.old, c.new) for c in cmp.new_failures} == {
        (("cls-loss-uneven", "gloo", 2, ""), "pass", "fail"),
        (("centering-ema-uneven", "gloo", 4, ""), "pass", "error")}
    assert [c.key for c in cmp.fixed] == [("sinkhorn-uneven", "gloo", 4, "")]
    assert [c.key for c in cmp.newly_skipped] == [("centering-ema-uneven", "gloo", 2, "")]
    out = _text(cmp)
    assert "NEW FAILURE" in out and "FIXED" in out and "REGRESSED" in out
    assert "now skipped" in out
    assert cmp.to_json()["exit_code"] == 1


def test_missing_and_added_matched_by_case_backend_world_size() -> None:
    base = sample_report()
    new = copy.deepcopy(base)
    new["results"] = [r for r in new["results"] if not (r["case"] == "cls-loss-uneven"
                                                        and r["backend"] == "nccl")]
    extra = copy.deepcopy(_find(base, "cls-loss-uneven", 2))
    extra["world_size"] = 8
    new["results"].append(extra)
    cmp = compare_reports(new, base)
    assert cmp.missing == [("cls-loss-uneven", "nccl", 2, "")]
    assert cmp.added == [("cls-loss-uneven", "gloo", 8, "")]
    assert cmp.exit_code == 0
    failing_added = copy.deepcopy(extra)
    failing_added["world_size"], failing_added["status"] = 16, "fail"
    new["results"].append(failing_added)
    assert compare_reports(new, base).exit_code == 1  # a failing case the baseline never had


def test_overlap_regression_needs_disjoint_intervals() -> None:
    base = _overlap_only((0.97, 0.93, 0.99))
    # Lower median, but inside the baseline's interval: noise.
    assert compare_reports(_overlap_only((0.94, 0.90, 0.98)), base).exit_code == 0
    # Intervals touch/overlap: still not a regression.
    assert compare_reports(_overlap_only((0.90, 0.85, 0.93)), base).exit_code == 0
    # Whole new interval below the baseline's: regression.
    cmp = compare_reports(_overlap_only((0.60, 0.55, 0.70)), base)
    assert cmp.exit_code == 1
    [reg] = cmp.regressions
    assert reg.metric == "hidden_fraction" and reg.key == ("ov", "gloo", 2, "K=65536")
    assert "REGRESSION" in _text(cmp) and "60% [55%–70%]" in _text(cmp)
    # Better beyond both intervals: an improvement, exit 0.
    better = compare_reports(base, _overlap_only((0.60, 0.55, 0.70)))
    assert better.exit_code == 0 and [m.metric for m in better.improvements] == ["hidden_fraction"]


def test_overlapped_ms_regression_and_ci_preferred() -> None:
    base = _overlap_only((0.9, 0.88, 0.92), overlapped=(60.0, 58.0, 63.0))
    slower = _overlap_only((0.9, 0.88, 0.92), overlapped=(70.0, 66.0, 75.0))
    cmp = compare_reports(slower, base)
    assert [m.metric for m in cmp.regressions] == ["overlapped_ms"]
    # A CI wider than p10/p90 is used when present, and it makes the change noise.
    for rep, (lo, hi) in ((slower, (55.0, 80.0)), (base, (50.0, 70.0))):
        rep["results"][0]["metrics"].update(overlapped_ms_ci_low=lo, overlapped_ms_ci_high=hi)
    assert compare_reports(slower, base).exit_code == 0


def test_no_interval_uses_relative_threshold() -> None:
    def bare(h: float) -> dict:
        r = _overlap_only((h, h, h))
        m = r["results"][0]["metrics"]
        for k in [k for k in m if k.endswith(("_p10", "_p90"))]:
            del m[k]
        return r

    base = bare(0.90)
    assert compare_reports(bare(0.90 * (1 - NO_INTERVAL_REL_TOL / 2)), base).exit_code == 0
    assert compare_reports(bare(0.5), base).exit_code == 1


def test_compare_command_exit_codes(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps(sample_report()))
    new = sample_report()
    _find(new, "cls-loss-uneven", 2)["status"] = "fail"
    new["summary"] = summarise([CaseResult.from_json(r) for r in new["results"]])
    newp = tmp_path / "new.json"
    newp.write_text(json.dumps(new))
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    assert compare_command(base, base, console=quiet) == 0
    assert compare_command(newp, base, console=quiet) == 1
    assert compare_command(tmp_path / "missing.json", base, console=quiet) == 2


def test_overlap_sweep_is_matched_per_k() -> None:
    base = sample_report()
    new = copy.deepcopy(base)
    m = _find(new, "overlap-center-allreduce", 2, prototypes=4096)["metrics"]
    m.update(hidden_fraction=0.2, hidden_fraction_p10=0.15, hidden_fraction_p90=0.25)
    cmp = compare_reports(new, base)
    assert cmp.matched == len(base["results"])
    assert [r.key for r in cmp.regressions] == [("overlap-center-allreduce", "gloo", 2, "K=4096")]
    assert "overlap-center-allreduce[gloo-ws2] K=4096" in _text(cmp)


def _regressed() -> tuple[dict, dict]:
    base = sample_report()
    new = copy.deepcopy(base)
    _find(new, "cls-loss-uneven", 2)["status"] = "fail"
    m = _find(new, "overlap-center-allreduce", 2, prototypes=4096)["metrics"]
    m.update(hidden_fraction=0.2, hidden_fraction_p10=0.15, hidden_fraction_p90=0.25)
    new["summary"] = summarise([CaseResult.from_json(r) for r in new["results"]])
    return new, base


def test_the_comparison_renders_in_every_format() -> None:
    """One section (table + verdict line); console, Markdown and HTML show the same rows."""
    from harness.report.console import comparison_renderable
    from harness.report.html import comparison_html
    from harness.report.markdown import comparison_markdown, md_escape

    section = comparison_section(compare_reports(*_regressed()))
    assert section.table is not None and section.verdict.status == "fail"
    assert [row[0].text for row in section.table.rows] == [
        "NEW FAILURE", "REGRESSION", "still failing", "still failing", "still failing"]
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(comparison_renderable(section))
    md, page = comparison_markdown(section), comparison_html(section)
    out = console.export_text()
    for text in ("NEW FAILURE", "REGRESSION", "93% [89%–95%]", "20% [15%–25%]",
                 "hidden_fraction lower, beyond both intervals", "REGRESSED — 1 new failures"):
        assert text in out and text in page, text
        assert md_escape(text) in md, text
    assert "| NEW FAILURE | cls-loss-uneven\\[gloo-ws2\\] | ✅ PASS | ❌ FAIL | worst 0.09×tol |" in md
    assert md.startswith("## ❌ dino-harness compare: REGRESSED")
    assert '<table class="comparison">' in page and '<div class="verdict fail">' in page
    assert "<script" not in page.lower() and "Content-Security-Policy" in page


def test_an_unchanged_comparison_is_its_verdict_alone() -> None:
    report = sample_report()
    report["results"] = [r for r in report["results"] if r["status"] == "pass"]
    section = comparison_section(compare_reports(report, report))
    assert section.table is None and section.verdict.status == "pass"
    assert _text(compare_reports(report, report)).strip().startswith("✔ NO REGRESSION")


@pytest.mark.parametrize("fmt, marker", [("md", "## ❌ dino-harness compare: REGRESSED"),
                                         ("html", '<div class="verdict fail">')])
def test_compare_command_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str,
                                 marker: str) -> None:
    new, base = _regressed()
    newp, basep = tmp_path / "new.json", tmp_path / "base.json"
    newp.write_text(json.dumps(new))
    basep.write_text(json.dumps(base))
    assert compare_command(newp, basep, fmt) == 1
    out = capsys.readouterr().out
    assert marker in out and "cls-loss-uneven" in out
    assert compare_command(basep, basep, fmt) == 0
    assert compare_command(newp, basep, "pdf") == 2
