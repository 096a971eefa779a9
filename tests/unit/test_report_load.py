"""load_report: path forms, a truncated JSONL line, and clear ReportErrors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import ReportError, RunWriter, load_report
from harness.report.load import ReportWarning
from harness.report.samples import SAMPLE_ENVIRONMENT, SAMPLE_TARGET, sample_report, sample_results
from harness.results import summarise


def test_loads_report_json_and_any_json_output(tmp_path: Path) -> None:
    report = sample_report()
    p = tmp_path / "out.json"
    p.write_text(json.dumps(report))
    loaded = load_report(p)
    assert loaded.summary == report["summary"]
    assert [r.to_json() for r in loaded.results] == report["results"]


def test_truncated_last_line_is_ignored_with_a_warning(tmp_path: Path) -> None:
    w = RunWriter(tmp_path, environment=SAMPLE_ENVIRONMENT, target=SAMPLE_TARGET)
    results = sample_results()[:4]
    for r in results:
        w.add(r)
    w.close()
    with open(w.results_path, "ab") as f:  # a result cut in the middle of its line
        f.write(json.dumps(results[0].to_json()).encode()[:37])
    with pytest.warns(ReportWarning) as caught:
        report = load_report(w.run_dir)
    assert any("truncated last line" in str(x.message) for x in caught)
    assert len(report.results) == 4
    assert report.summary == summarise(results)
    assert any("truncated" in m for m in report.warnings)


def test_garbage_middle_line_is_skipped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    good = json.dumps(sample_results()[0].to_json())
    (run / "results.jsonl").write_text(f"{good}\n{{not json\n{good}\n[1, 2]\n")
    with pytest.warns(ReportWarning):
        report = load_report(run)
    assert len(report.results) == 2
    assert report.environment == {}  # no run.json: unknown, not an error


@pytest.mark.parametrize("content, match", [
    (None, "no such report"),
    ("{nope", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"schema": 1}', "results"),
    ('{"schema": 99, "results": []}', "newer"),
])
def test_bad_paths_raise_report_error(tmp_path: Path, content: str | None, match: str) -> None:
    p = tmp_path / "r.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(ReportError, match=match):
        load_report(p)


def test_empty_folder_and_dangling_latest(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not a run folder"):
        load_report(tmp_path)
    (tmp_path / "latest").symlink_to("gone")
    with pytest.raises(ReportError, match="does not exist"):
        load_report(tmp_path / "latest")


def test_missing_summary_is_recomputed(tmp_path: Path) -> None:
    report = sample_report()
    del report["summary"]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(report))
    assert load_report(p).summary == summarise(sample_results())


def test_wrong_summary_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    report = sample_report()
    report["summary"] = {"passed": 99, "failed": 0, "errors": 0, "skipped": 0}
    p = tmp_path / "r.json"
    p.write_text(json.dumps(report))
    with pytest.warns(ReportWarning, match="does not match"):
        assert load_report(p).summary == summarise(sample_results())
