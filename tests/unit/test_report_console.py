"""The rich console summary carries everything needed to debug without rerunning."""

from __future__ import annotations

import pytest
from rich.console import Console

from harness.report import render_report, result_line
from harness.report.fmt import format_ratio
from harness.report.samples import sample_report, sample_results
from harness.results import CaseResult, Check


def _render(report: dict, width: int = 160) -> str:
    console = Console(record=True, width=width, file=open("/dev/null", "w"))  # noqa: SIM115
    render_report(report, console)
    return console.export_text()


def test_header_and_tables() -> None:
    out = _render(sample_report())
    for text in ("harness.losses", "v0.1.0", "3f9a1c07d2b4+dirty", "2.13.0+cpu", "3.11.7",
                 "gloo", "AMD EPYC 7B13", "ci-runner-7"):
        assert text in out
    for kind in ("centering", "sinkhorn", "cls", "overlap"):
        assert kind in out
    assert "centering-ema-uneven" in out and "1,2,4" in out
    assert "FAIL ws4 · PASS ws2" in out


def test_failure_details_are_expanded() -> None:
    out = _render(sample_report())
    # which comparison, rank, index, actual vs expected, error and tolerance, ratio, detail
    for text in ("FAIL sinkhorn-uneven[gloo-ws4]", "dist_vs_single", "[17, 402]", "0.0123",
                 "0.0098", "0.00247", "0.251", "1.00e-06", "2.5e+03×tol",
                 "B differs between ranks (5 vs 3)", "2 other checks passed"):
        assert text in out, text
    # non-finite counts
    assert "4096" in out and "nan×tol" in out


def test_errors_show_rank_type_signal_and_stack() -> None:
    out = _render(sample_report())
    assert "ERROR centering-skip-collective[gloo-ws2]" in out
    assert "rank 1  Hang" in out and "collective #3 of 4" in out
    assert "rank 0  Crash" in out and "signal SIGKILL" in out
    assert "apply_center_update" in out and "Timed out waiting 30000ms" in out


def test_skip_reason_overlap_table_and_verdict() -> None:
    out = _render(sample_report())
    assert "NCCL cannot put two ranks on one GPU" in out
    assert "median [95 % CI, else p10–p90]" in out
    assert "97%" in out and "[93%–99%]" in out and "4194304" in out
    assert "█" in out
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("✘ ERROR") and "9 passed, 2 failed, 1 error, 1 skipped" in last


def test_narrow_console_keeps_the_details() -> None:
    out = _render(sample_report(), width=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    for text in ("sinkhorn-uneven", "[17, 402]", "0.0123", "2.5e+03×tol", "exposed 0.126",
                 "signal SIGKILL"):
        assert text in out, text


def test_case_strings_are_not_rich_markup() -> None:
    r = CaseResult("[bold]x[/bold] [link=http://e]y", "cls", "gloo", 2, "fail", 0.1,
                   [Check("[red]loss", 1.0, 1.0, 0.1, False, 0, detail="[/] bad")])
    report = {"results": [r.to_json()], "environment": {"hostname": "[b]h"}, "target": {}}
    out = _render(report)
    assert "[bold]x[/bold] [link=http://e]y" in out
    assert "[red]loss" in out and "[/] bad" in out and "[b]h" in out


def test_all_passed_verdict() -> None:
    r = CaseResult("ok", "cls", "gloo", 2, "pass", 0.2, [Check("loss", 0, 0, 1e-5, True)])
    out = _render({"results": [r.to_json()], "summary": {"passed": 1, "failed": 0, "errors": 0,
                                                          "skipped": 0}})
    assert out.rstrip().splitlines()[-1].startswith("✔ PASSED — 1 passed")


def test_result_line_is_nccl_tests_style() -> None:
    r = CaseResult("sinkhorn-uneven", "sinkhorn", "gloo", 2, "pass", 0.31,
                   [Check("Q", 2e-8, 1e-6, 1e-6, True, ratio=0.02)])
    assert result_line(r) == "PASS sinkhorn-uneven[gloo-ws2] 0.31s worst 0.02×tol"
    lines = [result_line(x) for x in sample_results()]
    assert any(line.startswith("FAIL sinkhorn-uneven[gloo-ws4]") and "rank 3" in line
               and "0.0123 vs 0.0098" in line for line in lines)
    assert any(line.startswith("ERROR") and "rank 1 Hang" in line for line in lines)
    assert any(line.startswith("SKIP") and "NCCL cannot" in line for line in lines)
    assert any("hidden 97%" in line and "K=65536" in line for line in lines)


def test_format_ratio() -> None:
    assert format_ratio(0.0213) == "0.021×tol"
    assert format_ratio(2470.0) == "2.5e+03×tol"
    assert format_ratio(float("nan")) == "nan×tol"
    assert format_ratio(None) == "—"
    assert format_ratio(3.25) == "3.2×tol"


def test_ratio_fallback_without_ratio_field() -> None:
    from harness.report.fmt import check_ratio

    def ratio(**saved) -> float | None:  # a check as an older report saved it: no "ratio"
        return check_ratio(Check.from_json({"name": "x", "passed": False, **saved}))

    assert ratio(max_abs_err=2e-5, max_rel_err=4e-5, tolerance=1e-5) == 2.0
    assert ratio(max_abs_err=1.0, max_rel_err=1e-6, tolerance=1e-5) == pytest.approx(0.1)
    assert ratio(max_abs_err="nan", max_rel_err="nan", tolerance=1e-5) != 0
    assert ratio(max_abs_err=1.0, max_rel_err=1.0, tolerance=0.0) == float("inf")
    assert ratio(ratio="inf") == float("inf")


@pytest.mark.parametrize("width", [60, 80, 100, 120, 140, 150, 160, 200])
def test_nothing_is_cut_at_any_width(width: int) -> None:
    out = _render(sample_report(), width=width)
    assert max(len(line) for line in out.splitlines()) <= width
    flat = " ".join(out.split())
    for text in ("overlap-center-allreduce[gloo]", "4194304", "41%", "2.5e+03×tol",
                 "dist_vs_single", "0.0123", "signal SIGKILL", "centering-skip-collective"):
        assert text in flat or text in out.replace("\n", ""), (width, text)
