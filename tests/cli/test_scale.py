"""The scale family at 64 ranks on this machine: the reference passes, a scale-only fault
is caught and named there (it passes at 1-4 ranks: tests/cli/test_selfcheck.py), and a
64-rank run stays inside the machine's memory."""

from __future__ import annotations

import json

from harness.golden.mistakes import BY_NAME

from .test_cli import harness

#: A 64-GPU DINOv2 step's CLS loss: 2 global + 8 local crops, 8 samples per rank, K = 4096.
CASE = "cls-scale-ten-views[gloo-ws64]"


def run64(tmp_path, impl: str) -> tuple[int, dict]:
    out = tmp_path / f"{impl.rsplit('.', 1)[-1]}.json"
    proc = harness("run", "--family", "scale", "--filter", CASE, "--world-sizes", "64",
                   "--impl", impl, "--report-dir", str(tmp_path / "reports"), "--json", str(out),
                   timeout=600)
    return proc.returncode, json.loads(out.read_text())


def test_the_reference_passes_at_64_ranks_and_a_scale_fault_is_caught_there(tmp_path):
    code, report = run64(tmp_path, "harness.losses")
    assert code == 0, report["results"]
    (result,) = report["results"]
    assert result["status"] == "pass" and result["world_size"] == 64
    loss = next(c for c in result["checks"] if c["name"] == "loss")
    assert "n = 10·512·4096 = 20,971,520 at ws64" in loss["tolerance_rule"]

    code, report = run64(tmp_path, "harness.faults.world_size_of_one_node")
    (result,) = report["results"]
    assert code == 1 and result["status"] == "fail"
    assert {c["category"] for c in result["checks"] if not c["passed"]} == {"distributed"}
    assert result["mistakes"] == ["world_size_of_one_node"]
    assert BY_NAME["world_size_of_one_node"].description in result["diagnosis"]


def test_a_case_too_big_for_this_machine_is_refused_before_anything_runs(tmp_path):
    """64 ranks x 512 samples x K = 131072: 34 GiB of data alone. Exit 2 with the
    estimate, no result written, no rank started."""
    cases = tmp_path / "huge.toml"
    cases.write_text('[[case]]\nname = "sinkhorn-huge"\nkind = "sinkhorn"\nK = 131072\n'
                     'batch_per_rank = 512\nworld_sizes = [64]\n')
    proc = harness("run", "--cases", str(cases), "--world-sizes", "64",
                   "--report-dir", str(tmp_path / "reports"), timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "not enough memory for 1 planned case(s)" in proc.stderr
    assert "sinkhorn-huge[gloo-ws64] needs an estimated" in proc.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").rglob("*.jsonl"))
