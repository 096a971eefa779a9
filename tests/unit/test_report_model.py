"""The typed report: to_json/from_json round-trip (unknown fields kept, "nan" read back),
the writer hands back what it wrote, and the three formats show the same sections."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console

from harness.report import Report, RunWriter, load_report, render_report, to_html, to_markdown
from harness.report.samples import SAMPLE_ENVIRONMENT, SAMPLE_TARGET, sample_report, sample_results
from harness.results import CaseResult, Check, RankError


def test_round_trip_keeps_unknown_fields_and_reads_nonfinite_back() -> None:
    data = sample_report()
    data["from_a_newer_tool"] = {"x": 1}
    data["results"][0]["new_result_field"] = [1, 2]
    data["results"][0]["checks"][0]["new_check_field"] = "y"
    data["results"][-1]["metrics"]["hidden_fraction"] = "nan"
    report = Report.from_json(json.loads(json.dumps(data)))
    assert isinstance(report.results[0], CaseResult) and isinstance(report.results[0].checks[0], Check)
    assert math.isnan(report.results[-1].metrics["hidden_fraction"])
    nan_check = next(r for r in report.results if r.case == "sinkhorn-large-logits").checks[0]
    assert math.isnan(nan_check.max_abs_err) and math.isnan(nan_check.actual)
    again = report.to_json()
    assert again == json.loads(json.dumps(again))  # strict JSON: no NaN constant
    assert again["from_a_newer_tool"] == {"x": 1}
    assert again["results"][0]["new_result_field"] == [1, 2]
    assert again["results"][0]["checks"][0]["new_check_field"] == "y"
    assert again["results"][-1]["metrics"]["hidden_fraction"] == "nan"
    assert Report.from_json(again).to_json() == again


def test_writer_hands_back_the_report_it_wrote(tmp_path: Path) -> None:
    w = RunWriter(tmp_path, environment=SAMPLE_ENVIRONMENT, target=SAMPLE_TARGET)
    for r in sample_results():
        w.add(r)
    report = w.finish_report()
    assert isinstance(report, Report) and report.results == w.results
    on_disk = json.loads((w.run_dir / "report.json").read_text())
    assert report.to_json() == on_disk
    assert load_report(w.run_dir).to_json() == on_disk


def _console(report: Report) -> str:
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    render_report(report, console)
    return console.export_text()


def test_a_raising_target_reads_as_such_in_every_format() -> None:
    raised = CaseResult("sink", "sinkhorn", "gloo", 2, "fail", 0.1,
                        error=RankError(1, "ValueError", "planted: boom"),
                        extra={"failure": "raised", "diagnosis": "a bug of its own",
                               "repro": "dino-harness run --filter sink"})
    report = Report(results=[raised])
    for text in (_console(report), to_markdown(report), to_html(report)):
        for expected in ("the target raised", "planted: boom", "a bug of its own",
                         "dino-harness run --filter sink"):
            assert expected in text, expected


def test_a_failed_checks_diagnosis_and_repro_show_in_every_format_and_in_json() -> None:
    check = Check("center", 0.3, 17.0, 3e-6, False, rank=0, comparison="dist_vs_single",
                  index=[105], actual=-0.77, expected=-0.44, ratio=1e5, category="distributed")
    failed = CaseResult("centering-uneven", "centering", "gloo", 2, "fail", 0.2, checks=[check],
                        extra={"diagnosis": "matches: center is the mean of per-rank means",
                               "mistakes": ["center_mean_of_means"],
                               "repro": "dino-harness run --filter 'centering-uneven[gloo-ws2]'"})
    report = Report(results=[failed])
    for text in (_console(report), to_markdown(report), to_html(report)):
        for expected in ("likely cause", "matches: center is the mean of per-rank means",
                         "centering-uneven[gloo-ws2]"):
            assert expected in text.replace("&#x27;", "'"), expected
    again = Report.from_json(json.loads(json.dumps(report.to_json()))).results[0]
    assert again.extra["diagnosis"] == failed.extra["diagnosis"]
    assert again.extra["repro"] == failed.extra["repro"]
    assert again.extra["mistakes"] == ["center_mean_of_means"]


def _selfcheck(named: int) -> Report:
    from harness.report.model import Catch, FaultOutcome, SelfcheckSection

    fault = FaultOutcome("center_mean_of_means", "mean of means", caught_by=[Catch("c[gloo-ws2]", "x")],
                         cases_run=2, mistake="center_mean_of_means", named=named,
                         diagnoses={"matches: center is the mean of per-rank means": 1})
    hang = FaultOutcome("sinkhorn_empty_rank_returns_early", "hang", caught_by=[Catch("s", "hang")],
                        cases_run=1, diagnoses={"rank 1 never issued collective #1": 1})
    return Report(selfcheck=SelfcheckSection(reference_cases=1, faults=[fault, hang],
                                             overlap_controls={"skipped": True}))


def test_selfcheck_shows_each_faults_diagnosis_in_every_format_and_round_trips() -> None:
    report = _selfcheck(named=1)
    assert report.selfcheck.ok and report.selfcheck.faults[1].diagnosed is None
    for text in (_console(report), to_markdown(report), to_html(report)):
        for expected in ("named in 1/1", "matches: center is the mean of per-rank means",
                         "rank 1 never issued collective #1", "1/1 numeric faults diagnosed"):
            assert expected in text.replace("\\_", "_"), expected
    again = Report.from_json(json.loads(json.dumps(report.to_json())))
    assert again.to_json() == report.to_json()
    assert again.selfcheck.faults[0].diagnosed is True


def test_a_numeric_fault_not_diagnosed_as_its_mistake_fails_selfcheck() -> None:
    report = _selfcheck(named=0)
    assert report.selfcheck.undiagnosed == ["center_mean_of_means"]
    assert not report.selfcheck.ok and report.exit_code == 1
    assert "NOT NAMED" in _console(report)
