"""Skipped cases are grouped by reason, one row each with the count and the cases folded,
in the console, Markdown and HTML alike."""

from __future__ import annotations

import pytest
from rich.console import Console

from harness.report import render_report, to_html, to_markdown
from harness.report.samples import sample_report
from harness.results import CaseResult

NO_API = "the seed style has no ibot_masked API"
NO_GPU = "NCCL cannot put two ranks on one GPU"


def _report() -> dict:
    skips = [CaseResult(case, "ibot_masked", "gloo", ws, "skip", 0.0, skip_reason=NO_API)
             for case in ("ibot-equal", "ibot-uneven") for ws in (1, 2, 3)]
    skips.append(CaseResult("cls-uneven", "cls", "nccl", 2, "skip", 0.0, skip_reason=NO_GPU))
    return sample_report(skips)


def test_one_row_per_reason_with_count_and_folded_cases() -> None:
    from harness.report.model import as_report
    from harness.report.sections import skips

    table = skips(as_report(_report()))
    assert table is not None and table.note == "7 cases, by reason"
    assert [[c.text for c in row] for row in table.rows] == [
        [NO_API, "6", "ibot-equal[gloo-ws1,2,3], ibot-uneven[gloo-ws1,2,3]"],
        [NO_GPU, "1", "cls-uneven[nccl-ws2]"]]


@pytest.mark.parametrize("width", [80, 160])
def test_console(width: int) -> None:
    console = Console(record=True, width=width, file=open("/dev/null", "w"))  # noqa: SIM115
    render_report(_report(), console)
    out = console.export_text()
    assert out.count(NO_API) == 1 and out.count(NO_GPU) == 1
    assert "ibot-equal[gloo-ws1,2,3]" in out and "7 cases, by reason" in out
    assert max(len(line) for line in out.splitlines()) <= width


def test_markdown() -> None:
    md = to_markdown(_report())
    assert "<summary>Skipped (7 cases, by reason)</summary>" in md
    assert "| reason | count | cases |" in md
    assert (f"| {NO_API.replace('_', chr(92) + '_')} | 6 | ibot-equal\\[gloo-ws1,2,3\\], "
            "ibot-uneven\\[gloo-ws1,2,3\\] |") in md
    assert md.count("no ibot\\_masked API") == 1


def test_html() -> None:
    pytest.importorskip("matplotlib")
    page = to_html(_report())
    assert '<table class="skipped">' in page
    assert (f"<td>{NO_API}</td><td class=\"num\">6</td>"
            "<td>ibot-equal[gloo-ws1,2,3], ibot-uneven[gloo-ws1,2,3]</td>") in page
    assert page.count(NO_API) == 1
