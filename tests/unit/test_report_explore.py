"""The explore report (harness.report.explore_model, explore_view): its section survives
JSON, every format shows the findings, their minimal cases and the assumptions, the
verdict and exit code follow the findings, and compare gates on new findings."""

from __future__ import annotations

import copy

from rich.console import Console

from harness.report import Report, compare_reports, render_report, to_html, to_markdown
from harness.report.explore_model import FINDING, ExploreSection, FindingRecord
from harness.results import CaseResult, Check

KEY = "center:center_mean_of_means"
TABLE = {"name": "centering-explore-center-mean-of-means", "kind": "centering",
         "batch_per_rank": [1, 0], "steps": 1, "world_sizes": [2], "seed": 0}


def explore_report(*keys: str, status: str = "fail") -> Report:
    findings = [FindingRecord(key=k, quantity=k.split(":")[0], cause=[k.split(":")[1]],
                              likely_cause="matches: center is the mean of per-rank means",
                              examples=17, first_seen_s=2.5, case=TABLE["name"],
                              kind="centering", world_size=2, file=f"/tmp/{i}.toml",
                              reproduced=True, table=TABLE)
                for i, k in enumerate(keys)]
    results = [CaseResult(f.case, "centering", "gloo", 2, status, 0.2,
                          [Check("center", 0.3, 0.5, 2e-6, False, comparison="dist_vs_single",
                                 category="distributed")],
                          extra={FINDING: f.key, "diagnosis": f.likely_cause,
                                 "repro": f"dino-harness run --cases {f.file}"})
               for f in findings]
    section = ExploreSection(seconds=41.0, budget_s=40.0, seed=1, configurations=492,
                             skipped=3, rounds=2, stopped="budget", time_to_first_failure_s=2.5,
                             max_world_size=4, kinds=["centering", "sinkhorn"],
                             unsearched={"comms": "budgets are the user's"},
                             assumptions=[["no-empty-rank", "every rank holds a sample"]],
                             findings=findings)
    return Report(results=results, target={"impl": "x", "api": "seed"}, explore=section)


def text(report: Report) -> str:
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    render_report(report, console)
    return console.export_text()


def test_the_section_survives_json():
    report = explore_report(KEY)
    again = Report.from_json(report.to_json())
    assert again.explore == report.explore
    assert again.results[0].extra[FINDING] == KEY


def test_every_format_shows_the_findings_minimal_cases_and_assumptions():
    report = explore_report(KEY)
    for out in (text(report), to_markdown(report).replace("\\", ""), to_html(report)):
        assert KEY in out and "matches: center is the mean of per-rank means" in out
        assert "batch_per_rank=[1, 0]" in out and "492 configurations judged" in out
        assert "assume no-empty-rank" in out and "not searched: comms" in out
        assert "dino-harness run --cases /tmp/0.toml" in out  # the shrunk case's rerun line
    assert "FOUND — explore: 1 finding in 492 configurations" in text(report)


def test_the_verdict_and_exit_code_follow_the_findings():
    assert explore_report(KEY).exit_code == 1
    assert explore_report(KEY, status="error").exit_code == 3
    clean = explore_report()
    assert clean.exit_code == 0 and "NOTHING FOUND" in text(clean)


def test_compare_gates_on_a_new_finding_and_lists_the_fixed_ones():
    other = "sinkhorn:sinkhorn_no_shift"
    assert compare_reports(explore_report(KEY), explore_report(KEY)).exit_code == 0
    new = compare_reports(explore_report(KEY, other), explore_report(KEY))
    assert new.exit_code == 1 and new.new_findings == [other]
    fixed = compare_reports(explore_report(), explore_report(KEY))
    assert fixed.exit_code == 0 and fixed.findings.gone == [KEY]


def test_a_finding_shrunk_to_another_world_size_is_still_the_same_finding():
    moved = explore_report(KEY)
    moved.results = [copy.deepcopy(moved.results[0])]
    moved.results[0].world_size = 3
    cmp = compare_reports(moved, explore_report(KEY))
    assert cmp.exit_code == 0 and cmp.new_failures == [] and cmp.findings.still == [KEY]
