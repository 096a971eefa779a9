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
