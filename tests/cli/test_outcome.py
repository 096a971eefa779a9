"""One rule for exit codes (harness.outcome): `run` and `report` on the saved run agree,
for a passing, a failing, a raising, a hanging and a crashing target."""

from __future__ import annotations

import json

import pytest

from harness.outcome import ExitCode, exit_code
from tests.cli.test_cli import FIXTURES, harness, write_cases

ONE_CASE = """
[[case]]
name = "sinkhorn-two-ranks"
kind = "sinkhorn"
K = 16
batch_per_rank = [3, 5]
world_sizes = [2]
backends = ["gloo"]
"""

TARGETS = {
    # target, exit code, what the failed result says
    "passing": ("harness.losses", ExitCode.OK, None),
    "failing": ("harness.faults.sinkhorn_rows_not_reduced", ExitCode.FAILED, None),
    "raising": (str(FIXTURES / "raise_target.py"), ExitCode.FAILED, "raised"),
    "hanging": (str(FIXTURES / "hang_target.py"), ExitCode.HANG_OR_CRASH, "hang"),
    "crashing": (str(FIXTURES / "crash_target.py"), ExitCode.HANG_OR_CRASH, "crash"),
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_report_on_the_saved_run_returns_the_run_code(tmp_path, name):
    impl, code, failure = TARGETS[name]
    cases = write_cases(tmp_path / "one.toml", ONE_CASE)
    saved = tmp_path / "run.json"
    run = harness("run", "--impl", impl, "--cases", str(cases), "--timeout", "6",
                  "--report-dir", str(tmp_path / "r"), "--json", str(saved))
    assert run.returncode == code, run.stdout + run.stderr
    (result,) = json.loads(saved.read_text())["results"]
    assert result.get("failure") == failure
    if name == "raising":
        assert result["status"] == "fail"
        assert "the target raised" in run.stdout
        assert "planted: this target raises on rank 1" in run.stdout
        assert any("raise_target.py" in e["traceback"] for e in result["rank_errors"])
    report = harness("report", str(saved))
    assert report.returncode == run.returncode, report.stdout + report.stderr


def test_nccl_without_nccl_is_bad_input_not_a_silent_green(tmp_path):
    from harness.runtime.spec import PoolSpec

    if PoolSpec("nccl", 1).unavailable_reason() is None:
        pytest.skip("NCCL can run here")
    proc = harness("run", "--backend", "nccl", "--world-sizes", "1,2",
                   "--report-dir", str(tmp_path))
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stdout + proc.stderr
    assert "nothing can run here" in proc.stderr and "NCCL" in proc.stderr


def test_the_most_severe_status_decides():
    assert exit_code([]) == ExitCode.OK
    assert exit_code(["pass", "skip"]) == ExitCode.OK
    assert exit_code(["pass", "fail", "skip"]) == ExitCode.FAILED
    assert exit_code(["fail", "error", "pass"]) == ExitCode.HANG_OR_CRASH
