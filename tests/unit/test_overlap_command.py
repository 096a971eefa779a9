"""`dino-harness bench overlap` / `bench pool`: input errors exit 2 before any rank starts,
and the pool table renders (the real runs are in tests/dist/test_overlap_bench.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main
from harness.commands.bench import ddp_comparison, pool_table
from harness.outcome import exit_code_of
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
    def result(case: str, ddp: bool, hidden: float) -> dict:
        return {"case": case, "backend": "gloo", "world_size": 2, "ddp": ddp,
                "metrics": {"bwd_ms": 10.0, "comm_ms": 1.0, "exposed_ms": 0.1,
                            "hidden_fraction": hidden, "interference": 0.1, "efficiency": 0.9}}
    view = ddp_comparison([result("overlap-a", False, 0.9), result("overlap-a-ddp", True, 0.5)])
    assert view is not None
    for width in (80, 160):  # a line per pair, or a table
        out = io.StringIO()
        Console(file=out, width=width).print(view)
        assert "90% → 50%" in out.getvalue() and "overlap-a" in out.getvalue()
    assert ddp_comparison([result("overlap-a", False, 0.9)]) is None


def test_pool_table_renders_rows_and_skips() -> None:
    result = {"backend": "gloo", "zygote_boot_measured_s": 1.2,
              "targets": {"warm_case_ms_median_max": 20.0, "spawn_over_warm_ratio_min": 50.0},
              "world_sizes": {"2": {"pool_start_s": 0.5, "pool_start_cold_s": 1.7,
                                    "warm_case_ms_median": 3.0, "warm_case_ms_p10": 2.5,
                                    "warm_case_ms_p90": 4.0, "spawn_case_ms_median": 1900.0,
                                    "spawn_case_ms_p10": 1800.0, "spawn_case_ms_p90": 2000.0,
                                    "spawn_over_warm_ratio": 633.3, "meets_targets": True},
                              "8": {"skipped": "no"}}}
    out = io.StringIO()
    Console(file=out, width=160).print(pool_table(result))
    text = out.getvalue()
    assert "633×" in text and "met" in text and "skipped: no" in text
    assert "3 [2.5–4]" in text and "1900 [1800–2000]" in text
