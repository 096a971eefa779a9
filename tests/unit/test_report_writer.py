"""RunWriter: per-result durable JSONL, atomic report.json, the latest pointer, and a
run that is SIGKILLed mid-way being rebuilt by load_report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.report import RunWriter, load_report, new_run_id, write_json
from harness.report.load import ReportWarning
from harness.report.samples import SAMPLE_ENVIRONMENT, SAMPLE_TARGET, sample_results
from harness.results import summarise

REPO = Path(__file__).resolve().parents[2]


def _writer(tmp_path: Path, **kw) -> RunWriter:
    return RunWriter(tmp_path / "reports", environment=SAMPLE_ENVIRONMENT, target=SAMPLE_TARGET,
                     **kw)


def test_run_id_sorts_by_time() -> None:
    import datetime as dt

    t0 = dt.datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=dt.timezone.utc)
    ids = [new_run_id(t0 + dt.timedelta(milliseconds=ms)) for ms in (0, 1, 999, 1000, 86_400_000)]
    assert ids == sorted(ids)
    assert ids[0].startswith("20250102T030405.006Z-")
    assert len({new_run_id(t0) for _ in range(20)}) == 20  # the random tag


def test_jsonl_is_durable_per_result_while_open(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    results = sample_results()
    for i, r in enumerate(results[:4], start=1):
        w.add(r)
        # Read back through a separate handle while the writer is still open.
        lines = w.results_path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == i
        assert json.loads(lines[-1])["case"] == r.case
    # NaN in a check is written as the string "nan": every line is strict JSON.
    nan_result = next(r for r in results if r.case == "sinkhorn-large-logits")
    w.add(nan_result)
    last = w.results_path.read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    w.finish()


def test_finish_writes_schema_atomically_and_points_latest(tmp_path: Path) -> None:
    results = sample_results()
    w = _writer(tmp_path, run_id="20250101T000000.000Z-abcdef")
    for r in results:
        w.add(r)
    path = w.finish()
    assert path == tmp_path / "reports" / "20250101T000000.000Z-abcdef" / "report.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    # Report schema 1, exactly these top-level names (more may be added).
    for key in ("schema", "tool", "created", "environment", "target", "results", "summary"):
        assert key in report
    assert report["schema"] == 1 and report["tool"] == "dino-harness"
    assert report["summary"] == summarise(results)
    assert [r["case"] for r in report["results"]] == [r.case for r in results]
    r0 = report["results"][0]
    for key in ("case", "kind", "backend", "world_size", "status", "duration_s", "checks", "error"):
        assert key in r0
    for key in ("name", "max_abs_err", "max_rel_err", "tolerance", "passed", "rank"):
        assert key in r0["checks"][0]
    # No temp file left behind.
    leftovers = [p.name for p in w.run_dir.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert leftovers == []
    assert sorted(p.name for p in w.run_dir.iterdir()) == ["report.json", "results.jsonl", "run.json"]
    latest = tmp_path / "reports" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == w.run_id
    assert load_report(latest).summary == report["summary"]
    assert load_report(tmp_path / "reports").run_id == w.run_id  # a reports folder
    with pytest.raises(RuntimeError):
        w.add(results[0])


def test_latest_moves_to_the_newest_run(tmp_path: Path) -> None:
    a = _writer(tmp_path)
    a.finish()
    b = _writer(tmp_path)
    b.add(sample_results()[0])
    b.finish()
    assert os.readlink(tmp_path / "reports" / "latest") == b.run_id
    assert len(load_report(tmp_path / "reports" / "latest").results) == 1


def test_latest_text_file_when_symlinks_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_symlink(*a, **k):
        raise OSError("symlinks not supported here")

    monkeypatch.setattr(os, "symlink", no_symlink)
    w = _writer(tmp_path)
    w.add(sample_results()[0])
    w.finish()
    reports = tmp_path / "reports"
    assert not (reports / "latest").exists()
    assert (reports / "LATEST").read_text().strip() == w.run_id
    # `dino-harness report reports/latest` still works.
    assert load_report(reports / "latest").run_id == w.run_id
    assert load_report(reports / "LATEST").run_id == w.run_id


def test_write_json_atomic_replace(tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.json"
    write_json(target, {"a": 1, "x": float("inf")})
    write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_write_json_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_context_manager_on_exception_writes_incomplete_report(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with _writer(tmp_path) as w:
            w.add(sample_results()[0])
            raise KeyboardInterrupt
    report = json.loads((w.run_dir / "report.json").read_text())
    assert report["complete"] is False and len(report["results"]) == 1


CRASHING_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from harness.report import RunWriter
    from harness.report.samples import SAMPLE_ENVIRONMENT, SAMPLE_TARGET, sample_results

    w = RunWriter(Path(sys.argv[1]), environment=SAMPLE_ENVIRONMENT, target=SAMPLE_TARGET,
                  run_id="crashed-run")
    for r in sample_results()[3:6]:
        w.add(r)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkilled_run_is_rebuilt_from_jsonl(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(reports)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = reports / "crashed-run"
    assert not (run_dir / "report.json").exists()
    with pytest.warns(ReportWarning, match="did not finish"):
        report = load_report(run_dir)
    expected = sample_results()[3:6]
    assert [r.case for r in report.results] == [r.case for r in expected]
    assert report.summary == summarise(expected)
    assert report.complete is False and report.recovered is True
    assert report.environment["hostname"] == SAMPLE_ENVIRONMENT["hostname"]
    assert report.target["impl"] == "harness.losses"
    # The latest pointer was set when the run started, so `report reports/latest` works.
    with pytest.warns(ReportWarning):
        assert len(load_report(reports / "latest").results) == 3
