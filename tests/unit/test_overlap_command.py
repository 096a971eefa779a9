"""`dino-harness bench overlap` / `bench pool`: input errors exit 2 before any rank starts,
the DDP and pool tables render, and `dino-harness report` shows a saved bench report again
with the code the bench returned (the real overlap runs are in tests/dist/test_overlap_bench.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main
from harness.outcome import exit_code_of
from harness.report import BenchSection, Report
from harness.report.console import WIDE_TABLE, adaptive, table
from harness.report.sections import ddp_table, pool_table
from harness.results import CaseResult


def test_unknown_target_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "overlap", "--impl", "no_such_module_xyz", "--quick"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_bad_case_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "o.toml"
    bad.write_text('[[case]]\nname = "overlap-x"\nK = -1\n')
    assert main(["bench", "overlap", "--cases", str(bad)]) == 2
    assert "case 'overlap-x': key 'K'" in capsys.readouterr().err


def test_no_case_for_the_world_sizes_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "o.toml"
    f.write_text('[[case]]\nname = "overlap-x"\nworld_sizes = [4]\n')
    assert main(["bench", "overlap", "--cases", str(f), "--world-sizes", "1,2"]) == 2
    assert "no overlap case runs" in capsys.readouterr().err
    assert main(["bench", "overlap", "--world-sizes", "0"]) == 2


def test_exit_codes_of_results() -> None:
    ok = CaseResult("a", "overlap", "gloo", 2, "pass", 1.0)
    skip = CaseResult("a", "overlap", "nccl", 2, "skip", 0.0, skip_reason="no GPU")
    hang = CaseResult("a", "overlap", "gloo", 2, "error", 1.0, extra={"failure": "hang"})
    raised = CaseResult("a", "overlap", "gloo", 2, "fail", 1.0, extra={"failure": "raised"})
    assert exit_code_of([ok, skip]) == 0
    assert exit_code_of([ok, raised]) == 1
    assert exit_code_of([raised, hang]) == 3


def test_ddp_comparison_pairs_plain_and_ddp_results() -> None:
    def result(case: str, ddp: bool, hidden: float) -> CaseResult:
        return CaseResult.from_json(
            {"case": case, "backend": "gloo", "world_size": 2, "ddp": ddp, "status": "pass",
             "metrics": {"bwd_ms": 10.0, "comm_ms": 1.0, "exposed_ms": 0.1,
                         "hidden_fraction": hidden, "interference": 0.1, "efficiency": 0.9}})
    data = ddp_table([result("overlap-a", False, 0.9), result("overlap-a-ddp", True, 0.5)])
    assert data is not None
    view = adaptive(data, WIDE_TABLE)
    for width in (80, 160):  # a line per pair, or a table
        out = io.StringIO()
        Console(file=out, width=width).print(view)
        assert "90% → 50%" in out.getvalue() and "overlap-a" in out.getvalue()
    assert ddp_table([result("overlap-a", False, 0.9)]) is None


def test_pool_table_renders_rows_and_skips() -> None:
    result = {"backend": "gloo", "zygote_boot_measured_s": 1.2,
              "targets": {"warm_case_ms_median_max": 20.0, "spawn_over_warm_ratio_min": 50.0},
              "world_sizes": {"2": {"pool_start_s": 0.5, "pool_start_cold_s": 1.7,
                                    "warm_case_ms_median": 3.0, "warm_case_ms_p10": 2.5,
                                    "warm_case_ms_p90": 4.0, "spawn_case_ms_median": 1900.0,
                                    "spawn_case_ms_p10": 1800.0, "spawn_case_ms_p90": 2000.0,
                                    "spawn_over_warm_ratio": 633.3, "meets_targets": True},
                              "8": {"skipped": "no"}}}
    data = pool_table(Report(bench=BenchSection.from_json({"name": "pool", **result})))
    assert data is not None
    out = io.StringIO()
    Console(file=out, width=160).print(table(data))
    text = out.getvalue()
    assert "633×" in text and "met" in text and "skipped: no" in text
    assert "3 [2.5–4]" in text and "1900 [1800–2000]" in text


FAKE_POOL = {"schema": 1, "benchmark": "pool", "backend": "gloo", "program": "trivial",
             "environment": {"torch": "2.13.0", "python": "3.11", "cpus_usable": 2, "hostname": "h"},
             "zygote_boot_measured_s": 1.2,
             "targets": {"warm_case_ms_median_max": 20.0, "spawn_over_warm_ratio_min": 50.0},
             "world_sizes": {"2": {"pool_start_s": 0.5, "pool_start_cold_s": 1.7,
                                   "warm_case_ms_median": 3.0, "warm_case_ms_p10": 2.5,
                                   "warm_case_ms_p90": 4.0, "spawn_case_ms_median": 1900.0,
                                   "spawn_case_ms_p10": 1800.0, "spawn_case_ms_p90": 2000.0,
                                   "spawn_over_warm_ratio": 633.3, "meets_targets": True},
                             "8": {"skipped": "only 2 CPUs"}}}


def _rerendered(path: Path, tmp_path: Path, code: int) -> dict[str, str]:
    """`dino-harness report PATH` in each format: the saved run's code, and the text."""
    from harness.report import report_command

    out = {}
    for fmt in ("console", "md", "html"):
        target = tmp_path / f"again.{fmt}"
        assert report_command(path, fmt, target) == code, fmt
        out[fmt] = target.read_text(encoding="utf-8")
    return out


def test_bench_pool_writes_a_report_that_report_renders_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    import harness.runtime.bench as runtime_bench

    monkeypatch.setattr(runtime_bench, "bench_pool", lambda **kw: copy.deepcopy(FAKE_POOL))
    monkeypatch.chdir(tmp_path)  # reports/ lands here
    saved = tmp_path / "pool.json"
    code = main(["bench", "pool", "--world-sizes", "2", "--repeats", "2", "--json", str(saved)])
    assert code == 0
    data = json.loads(saved.read_text())
    assert data["schema"] == 1 and data["tool"] == "dino-harness" and data["bench"]["name"] == "pool"
    for key in ("benchmark", "backend", "program", "targets", "world_sizes", "zygote_boot_measured_s"):
        assert data[key] == FAKE_POOL[key], key  # the benchmark's own keys stay
    assert data["environment"]["cpus_usable"] == 2
    for fmt, text in _rerendered(saved, tmp_path, code).items():
        for expected in ("warm pool vs spawn-per-case", "633×", "1900 [1800–2000]",
                         "skipped: only 2 CPUs"):
            assert expected in text.replace("\\[", "[").replace("\\]", "]"), (fmt, expected)
    assert _rerendered(tmp_path / "reports" / "latest", tmp_path, code)


def test_bench_overlap_writes_a_report_that_report_renders_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.overlap.runner as runner
    from harness.report.samples import sample_results

    sample = next(r for r in sample_results() if r.kind == "overlap" and r.world_size == 2)

    def fake_run_case(pools, case, backend, ws, *, ddp=False, **kw) -> CaseResult:
        r = CaseResult.from_json(sample.to_json())
        r.case = case.name + ("-ddp" if ddp else "")
        r.extra.update(ddp=ddp, verdict="mostly hidden", inconclusive=False,
                       notes=["a planted note"])
        return r

    monkeypatch.setattr(runner, "run_case", fake_run_case)
    monkeypatch.chdir(tmp_path)
    saved = tmp_path / "overlap.json"
    code = main(["bench", "overlap", "--quick", "--world-sizes", "2", "--ddp", "--json", str(saved)])
    assert code == 0
    data = json.loads(saved.read_text())
    assert data["bench"]["name"] == "overlap" and data["bench"]["quick"] is True
    assert {"environment", "target", "results", "summary", "created"} <= set(data)
    for fmt, text in _rerendered(saved, tmp_path, code).items():
        for expected in ("Overlap", "93%", "89%–95%", "mostly hidden", "a planted note",
                         "DDP vs plain", "93% → 93%"):
            assert expected in text, (fmt, expected)


class _HangingExecutor:
    """An executor whose every run hangs (no rank starts here)."""

    def unavailable_reason(self, backend: str, world_size: int) -> None:
        return None

    def run(self, *args: object, **kwargs: object) -> list:
        from harness.results import RankError
        from harness.runtime import RankFailure

        raise RankFailure("hang", [RankError(1, "Hang", "rank 1 never finished")], {0: "ok", 1: "hung"})


def test_a_failed_overlap_result_carries_the_command_that_reruns_just_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from harness.overlap.cases import OverlapCase
    from harness.overlap.runner import run_case

    case = OverlapCase("overlap-x", file=str(tmp_path / "my cases.toml"))
    result = run_case(_HangingExecutor(), case, "gloo", 2, impl="pkg.mod", ddp=True)  # type: ignore[arg-type]
    assert result.status == "error"
    assert shlex.split(result.extra["repro"]) == [
        "dino-harness", "bench", "overlap", "--impl", "pkg.mod", "--api", "seed", "--cases",
        str(tmp_path / "my cases.toml"), "--filter", "overlap-x[gloo-ws2]", "--world-sizes", "2",
        "--backend", "gloo", "--ddp"]


def test_bench_overlap_filter_selects_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = tmp_path / "o.toml"
    cases.write_text('[[case]]\nname = "overlap-a"\nK = 64\n\n[[case]]\nname = "overlap-b"\nK = 64\n')
    assert main(["bench", "overlap", "--cases", str(cases), "--filter", "nothing-like-it",
                 "--world-sizes", "1"]) == 2
    assert "--filter 'nothing-like-it'" in capsys.readouterr().err
