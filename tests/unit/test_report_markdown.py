"""Markdown for pull requests: tables, failures, overlap, and escaping."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report import to_markdown
from harness.report.markdown import md_code_block, md_escape
from harness.report.samples import sample_report
from harness.report.sections import CHECK_COLUMNS
from harness.results import CaseResult, Check, RankError


def test_sections_and_tables() -> None:
    md = to_markdown(sample_report())
    assert md.startswith("## 💥 dino-harness: ERROR")
    for heading in ("### centering", "### sinkhorn", "### overlap", "### Failures and errors",
                    "### Overlap (median [95 % CI, else p10–p90])"):
        assert heading in md
    assert "| sinkhorn-uneven | 2,4 | gloo | ❌ FAIL ws4 · ✅ PASS ws2 | 2.5e+03×tol |" in md
    assert "dist\\_vs\\_single" in md and "\\[17, 402\\]" in md and "0.0123" in md
    assert "```text\nTraceback" in md
    assert "NCCL cannot put two ranks on one GPU" in md
    assert "🟩" in md and "97% [93%–99%]" in md


def _cells(line: str) -> list[str]:
    """Split a table row on unescaped pipes, as GitHub does."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def test_case_and_target_strings_are_escaped() -> None:
    evil = "evil|case `rm -rf` *x* <b>y</b> $z$ @team"
    r = CaseResult(evil, "cls", "gloo", 2, "fail", 0.1,
                   [Check("loss|grad", 1.0, 1.0, 0.1, False, 0, comparison="dist_vs_single",
                          detail="a | b\nsecond line")],
                   error=RankError(0, "ValueError", "```` fence breaker", "x ``` y\n````"))
    report = {"results": [r.to_json()], "target": {"impl": "my|impl`", "api": "seed"},
              "environment": {"hostname": "h|ost"}}
    md = to_markdown(report)
    row = next(line for line in md.splitlines() if line.startswith("| evil"))
    assert len(_cells(row)) == 6  # the pipe in the name did not add a column
    assert "evil\\|case \\`rm -rf\\` \\*x\\* &lt;b&gt;y&lt;/b&gt; \\$z\\$ &#64;team" in row
    assert "<b>" not in md
    check_row = next(line for line in md.splitlines() if line.startswith("| loss"))
    assert len(_cells(check_row)) == len(CHECK_COLUMNS)  # one cell per column, no more
    assert "a \\| b<br>second line" in check_row
    assert "my\\|impl\\`" in md and "h\\|ost" in md
    # The traceback's own backtick runs cannot close its fence.
    assert "`````text\nx ``` y\n````\n`````" in md


def test_md_helpers() -> None:
    assert md_escape("a_b") == "a\\_b"
    assert md_escape("x\r\ny") == "x<br>y"
    assert md_code_block("plain").startswith("```\n")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_escaped_text_is_one_inert_cell(s: str) -> None:
    cell = md_escape(s)
    assert "\n" not in cell and "\r" not in cell
    assert re.search(r"(?<!\\)\|", cell) is None
    assert re.search(r"(?<!\\)`", cell) is None
    assert "<" not in cell.replace("<br>", "")
