"""The HTML page: self-contained, pictures inlined, every case/target string escaped."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report import to_html
from harness.report.html import esc
from harness.report.samples import sample_report, sample_results
from harness.results import CaseResult, Check, RankError

EVIL = "<script>alert(1)</script>"

pytest.importorskip("matplotlib")


def _evil_report() -> dict:
    evil = CaseResult(EVIL, f"kind{EVIL}", "gloo", 2, "fail", 0.1,
                      [Check(f"c{EVIL}", 1.0, 1.0, 0.1, False, 0, comparison=EVIL,
                             detail=f'" onmouseover="x{EVIL}')],
                      error=RankError(0, EVIL, EVIL, EVIL), skip_reason=EVIL,
                      metrics={"hidden_fraction": 0.5, "comm_ms": 1.0}, extra={"prototypes": 64})
    skip = CaseResult(f"s{EVIL}", "cls", "gloo", 2, "skip", 0.0, skip_reason=EVIL)
    report = sample_report(sample_results() + [evil, skip])
    report["target"] = {"impl": EVIL, "api": EVIL, "version": EVIL}
    report["environment"]["hostname"] = EVIL
    report["warnings"] = [EVIL]
    return report


def test_self_contained_with_pictures() -> None:
    page = to_html(sample_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page and "Content-Security-Policy" in page
    # No external reference of any kind: src/href only point inside the page.
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert refs and all(ref.startswith("#") for ref in refs), set(refs)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(http" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, flags=re.I)
    # Three pictures: ratio per case, hidden fraction vs K, one timeline.
    assert page.count("<svg") == 3
    for fig in ('id="fig-ratio"', 'id="fig-hidden"', 'id="fig-timeline-'):
        assert fig in page
    assert "<!DOCTYPE svg" not in page and "<metadata>" not in page
    # Tables and failure details.
    for text in ('<table class="results">', '<table class="checks">', '<table class="overlap">',
                 "dist_vs_single", "[17, 402]", "signal SIGKILL", "Timed out waiting 30000ms",
                 "NCCL cannot put two ranks on one GPU"):
        assert text in page, text


def test_svg_ids_are_unique_across_pictures() -> None:
    page = to_html(sample_report())
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for ref in re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', page):
        assert (ref[0] or ref[1]) in ids


def test_every_case_and_target_string_is_escaped() -> None:
    page = to_html(_evil_report())
    assert EVIL not in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '" onmouseover="' not in page
    assert "&quot; onmouseover=&quot;" in page


def test_empty_report_renders() -> None:
    page = to_html({"results": [], "summary": {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}})
    assert "NOTHING RAN" in page and "<svg" not in page


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_esc_leaves_no_markup(s: str) -> None:
    out = esc(s)
    assert "<" not in out and ">" not in out and '"' not in out and "'" not in out
