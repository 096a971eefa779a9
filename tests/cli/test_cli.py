"""The command-line contract (README, "Command line"): flags, exit codes, report files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def harness(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_cases(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


SMALL = """
[defaults]
world_sizes = [1, 2]
backends = ["gloo"]

[[case]]
name = "sinkhorn-small-uneven"
kind = "sinkhorn"
K = 16
batch_per_rank = [3, 5]
logits = { sample_offset = 2.0 }

[[case]]
name = "centering-small-uneven"
kind = "centering"
K = 16
batch_per_rank = [2, 4]
logits = { prototype_offset = 1.0 }
"""


def test_run_passes_and_writes_the_schema(tmp_path):
    cases = write_cases(tmp_path / "small.toml", SMALL)
    out = tmp_path / "out.json"
    proc = harness("run", "--cases", str(cases), "--world-sizes", "1,2", "--report-dir",
                   str(tmp_path / "reports"), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["schema"] == 1 and report["tool"] == "dino-harness"
    assert {"torch", "python", "backend", "nccl", "devices", "hostname"} <= set(report["environment"])
    assert report["target"]["impl"] == "harness.losses" and report["target"]["api"] == "seed"
    assert report["summary"] == {"passed": 4, "failed": 0, "errors": 0, "skipped": 0}
    for result in report["results"]:
        assert {"case", "kind", "backend", "world_size", "status", "duration_s", "checks",
                "error"} <= set(result)
        for check in result["checks"]:
            assert {"name", "max_abs_err", "max_rel_err", "tolerance", "passed", "rank"} <= set(check)
    comparisons = {c["comparison"] for r in report["results"] for c in r["checks"]}
    assert {"dist_vs_single", "single_vs_oracle", "rank_agreement"} <= comparisons
    run_dirs = [p for p in (tmp_path / "reports").iterdir() if p.is_dir() and p.name != "latest"]
    assert len(run_dirs) == 1
    lines = (run_dirs[0] / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_planted_fault_fails_with_exit_1(tmp_path):
    cases = write_cases(tmp_path / "small.toml", SMALL)
    proc = harness("run", "--impl", "harness.faults.center_mean_of_means", "--cases", str(cases),
                   "--report-dir", str(tmp_path), "--world-sizes", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL centering-small-uneven[gloo-ws2]" in proc.stdout
    assert "PASS sinkhorn-small-uneven[gloo-ws2]" in proc.stdout


def test_bad_case_file_names_file_case_and_key(tmp_path):
    bad = write_cases(tmp_path / "bad.toml",
                      '[[case]]\nname = "sink-bad"\nkind = "sinkhorn"\nn_iterations = -1\n')
    proc = harness("run", "--cases", str(bad))
    assert proc.returncode == 2
    assert "bad.toml" in proc.stderr and "sink-bad" in proc.stderr and "n_iterations" in proc.stderr


def test_unknown_target_says_what_it_looked_for(tmp_path):
    proc = harness("run", "--impl", "no_such_pkg.losses")
    assert proc.returncode == 2
    assert "no_such_pkg.losses" in proc.stderr and "sys.path" in proc.stderr
    proc = harness("run", "--impl", str(tmp_path / "missing.py"))
    assert proc.returncode == 2 and "missing.py" in proc.stderr


def test_target_missing_seed_names_is_usage_error():
    proc = harness("run", "--impl", str(FIXTURES / "partial_target.py"))
    assert proc.returncode == 2
    assert "DINOv1Loss" in proc.stderr and "lacks" in proc.stderr


def test_a_step_function_that_cannot_be_loaded_is_a_usage_error():
    step = FIXTURES / "user_step.py"
    for spec, says in ((str(step), "expected FILE.py:function"),
                       (f"{step}:no_such_step", "has no function 'no_such_step'"),
                       ("no_such_pkg.steps:train", "--step 'no_such_pkg.steps:train': cannot import")):
        proc = harness("run", "--step", spec, "--filter", "step-")
        assert proc.returncode == 2 and says in proc.stderr, (spec, proc.stderr)


def test_bad_flags_are_usage_errors(tmp_path):
    assert harness("run", "--world-sizes", "0,2").returncode == 2
    assert harness("run", "--backend", "mpi").returncode == 2
    assert harness("run", "--timeout", "-3").returncode == 2
    proc = harness("run", "--filter", "no-case-has-this-name")
    assert proc.returncode == 2 and "no case matches" in proc.stderr


def test_hung_rank_is_reported_and_the_run_goes_on(tmp_path):
    cases = write_cases(tmp_path / "small.toml", SMALL)
    out = tmp_path / "out.json"
    proc = harness("run", "--impl", str(FIXTURES / "hang_target.py"), "--cases", str(cases),
                   "--world-sizes", "2", "--timeout", "6", "--report-dir", str(tmp_path / "r"),
                   "--json", str(out))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    results = {r["case"]: r for r in json.loads(out.read_text())["results"]}
    hung = results["sinkhorn-small-uneven"]
    # --timeout 6 sets the process-group timeout to 3 s: gloo reports the stuck all_reduce
    # first, and a timed-out collective is a hang (exit 3), not an ordinary error.
    assert hung["status"] == "error" and hung["failure"] == "hang"
    ranks = {e["rank"] for e in hung["rank_errors"]}
    assert 0 in ranks, hung["rank_errors"]
    assert any("all_reduce" in e["traceback"] or "sinkhorn" in e["traceback"]
               for e in hung["rank_errors"])
    assert results["centering-small-uneven"]["status"] == "pass"


def test_list_shows_the_catalogue():
    proc = harness("list")
    assert proc.returncode == 0
    assert "sinkhorn-uneven-shards" in proc.stdout and "centering" in proc.stdout


@pytest.mark.parametrize("api,fixture", [("dinov2", "dinov2_style.py"), ("dinov3", "dinov3_style.py")])
def test_style_adapters_run_and_expose_uneven_shard_bugs(tmp_path, api, fixture):
    cases = write_cases(tmp_path / "style.toml", """
[defaults]
backends = ["gloo"]
world_sizes = [2]

[[case]]
name = "cls-equal"
kind = "cls"
K = 32
teacher_norm = "softmax"
batch_per_rank = 4

[[case]]
name = "cls-uneven"
kind = "cls"
K = 32
teacher_norm = "softmax"
batch_per_rank = [2, 6]

[[case]]
name = "centering-equal"
kind = "centering"
K = 32
batch_per_rank = 4
logits = { prototype_offset = 1.0 }

[[case]]
name = "centering-uneven"
kind = "centering"
K = 32
batch_per_rank = [2, 6]
logits = { prototype_offset = 1.0 }

[[case]]
name = "ibot-equal"
kind = "ibot"
K = 32

[[case]]
name = "comms-ibot"
kind = "comms"
K = 32
comms = { ibot_forward = 1 }
""")
    out = tmp_path / "out.json"
    proc = harness("run", "--impl", str(FIXTURES / fixture), "--api", api, "--cases", str(cases),
                   "--world-sizes", "2", "--report-dir", str(tmp_path / "r"), "--json", str(out))
    status = {r["case"]: r["status"] for r in json.loads(out.read_text())["results"]}
    # Equal shards: the style's own single-process semantics hold on 2 ranks.
    assert status["cls-equal"] == "pass" and status["centering-equal"] == "pass", proc.stdout
    # Uneven shards: a local-mean loss and a center divided by len * world size are wrong.
    assert status["cls-uneven"] == "fail" and status["centering-uneven"] == "fail"
    assert status["ibot-equal"] == "skip" and status["comms-ibot"] == "skip"
    assert proc.returncode == 1


def test_run_under_torchrun_writes_rank0_report(tmp_path):
    cases = write_cases(tmp_path / "small.toml", SMALL)
    out = tmp_path / "out.json"
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "harness", "run", "--cases", str(cases), "--report-dir", str(tmp_path / "r"),
         "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {(r["case"], r["world_size"], r["status"]) for r in report["results"]} == {
        ("sinkhorn-small-uneven", 2, "pass"), ("centering-small-uneven", 2, "pass")}


def test_compare_gates_a_real_run_against_its_baseline(tmp_path):
    cases = write_cases(tmp_path / "small.toml", SMALL)
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    common = ["--cases", str(cases), "--world-sizes", "2", "--report-dir", str(tmp_path / "r")]
    assert harness("run", *common, "--json", str(base)).returncode == 0
    assert harness("run", "--impl", "harness.faults.center_mean_of_means", *common,
                   "--json", str(new)).returncode == 1
    gate = harness("compare", str(new), str(base))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "centering-small-uneven" in gate.stdout
    fixed = harness("compare", str(base), str(new))
    assert fixed.returncode == 0 and "centering-small-uneven" in fixed.stdout
    md = harness("compare", str(new), str(base), "--format", "md")
    assert md.returncode == 1 and md.stdout.startswith("## ❌ dino-harness compare: REGRESSED")
    assert "| NEW FAILURE | centering-small-uneven\\[gloo-ws2\\] |" in md.stdout
    assert harness("compare", str(base), str(tmp_path / "missing.json")).returncode == 2
