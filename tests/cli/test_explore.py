"""`dino-harness explore` end to end: a planted fault is found, shrunk and reproduced by
`run` on the written case file; correct code explores clean; the same seed gives the
same findings and the same files; bad input is exit 2 before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import harness

FAULT = "harness.faults.sinkhorn_local_count"


def explore(tmp: Path, *args: str, timeout: float = 300):
    out = tmp / "explore.json"
    proc = harness("explore", "--report-dir", str(tmp / "reports"), "--json", str(out), *args,
                   timeout=timeout)
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def case_lines(path: str) -> list[str]:
    """The case a file holds, its comments (which name the file) left out."""
    return [line for line in Path(path).read_text().splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("fault, kind, cause, most_ranks", [
    ("sinkhorn_local_count", "sinkhorn", "Sinkhorn divides by a rank-local sample count", 3),
    # the step kind: a training run, searched as any kind (a mean of micro-batch losses
    # shows on one rank whose two micro-batches are unequal)
    ("step_micro_mean", "step", "plain mean of its micro-batch losses", 2),
])
def test_a_planted_fault_is_found_shrunk_and_reproduced_by_run_on_its_file(
        tmp_path, fault, kind, cause, most_ranks):
    impl = f"harness.faults.{fault}"
    proc, report = explore(tmp_path, "--impl", impl, "--kinds", kind, "--seed", "1",
                           "--budget", "90", "--max-findings", "1")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    [finding] = report["explore"]["findings"]
    assert finding["key"] == f"{kind}:{fault}" and finding["reproduced"]
    assert finding["world_size"] <= most_ranks and finding["examples"] >= 1
    assert cause in finding["likely_cause"]
    [shown] = report["results"]
    assert shown["finding"] == finding["key"] and shown["status"] == "fail"
    assert shown["repro"].startswith("dino-harness run") and finding["file"] in shown["repro"]
    assert f"new failure {kind}:{fault}" in proc.stdout
    # the file reruns with the same verdict, as the catalogue's cases do
    again = tmp_path / "again.json"
    rerun = harness("run", "--impl", impl, "--cases", finding["file"], "--world-sizes",
                    str(finding["world_size"]), "--report-dir", str(tmp_path / "reports"),
                    "--json", str(again))
    assert rerun.returncode == 1, rerun.stdout[-2000:]
    [result] = json.loads(again.read_text())["results"]
    assert result["status"] == "fail" and result["mistakes"] == [fault]


def test_a_step_fault_shrinks_to_the_smallest_step_that_shows_it(tmp_path):
    """Shrunk: one step, the fewest samples and views, every key the mistake does not
    need left out of the file."""
    _, report = explore(tmp_path, "--impl", "harness.faults.step_center_per_micro_batch",
                        "--kinds", "step", "--seed", "1", "--budget", "90",
                        "--max-findings", "1")
    [finding] = report["explore"]["findings"]
    table = finding["table"]
    assert finding["key"] == "step:step_center_per_micro_batch" and finding["reproduced"]
    assert table["steps"] == 1 and table["micro_batches"] == 2
    assert table["views_student"] == 2 and table["views_teacher"] == 1
    assert table["seed"] == 0 and not {"lr", "ema_momentum", "koleo_weight", "logits"} & set(table)


def test_correct_code_explores_clean(tmp_path):
    proc, report = explore(tmp_path, "--kinds", "sinkhorn", "centering", "--seed", "2",
                           "--max-examples", "60", "--budget", "200")
    assert proc.returncode == 0, proc.stdout[-3000:]
    ex = report["explore"]
    assert ex["findings"] == [] and report["results"] == []
    assert ex["stopped"] == "max-examples" and ex["configurations"] >= 50
    assert "NOTHING FOUND" in proc.stdout


def test_the_reference_training_step_explores_clean(tmp_path):
    proc, report = explore(tmp_path, "--kinds", "step", "--seed", "2", "--max-examples", "60",
                           "--budget", "200")
    assert proc.returncode == 0, proc.stdout[-3000:]
    ex = report["explore"]
    assert ex["findings"] == [] and ex["kinds"] == ["step"] and ex["stopped"] == "max-examples"
    assert ex["configurations"] >= 40 and "step" not in ex["unsearched"]


def test_the_same_seed_gives_the_same_findings_and_case_files(tmp_path):
    runs = [explore(tmp_path / str(i), "--impl", "harness.faults.center_mean_of_means",
                    "--kinds", "centering", "--seed", "3", "--budget", "90",
                    "--max-findings", "1")[1] for i in range(2)]
    findings = [r["explore"]["findings"] for r in runs]
    assert [f["key"] for f in findings[0]] == [f["key"] for f in findings[1]] != []
    assert [f["table"] for f in findings[0]] == [f["table"] for f in findings[1]]
    assert [case_lines(f["file"]) for f in findings[0]] == \
        [case_lines(f["file"]) for f in findings[1]]


@pytest.mark.parametrize("args, says", [
    (["--assume", "equal-batch"], "did you mean 'equal-batches'"),
    (["--kinds", "comms"], "cannot be searched"),
    (["--kinds", "nope"], "unknown kind 'nope'"),
    (["--assume", "world-size=5"], "above --max-world-size 4"),
    (["--max-world-size", "0"], "--max-world-size: expected an int >= 1"),
])
def test_bad_input_is_exit_2_before_anything_runs(tmp_path, args, says):
    proc, report = explore(tmp_path, *args, timeout=60)
    assert proc.returncode == 2 and says in proc.stderr and report is None
