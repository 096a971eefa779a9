"""selfcheck is the proof that the checks can fail: every planted fault must be caught
and the reference must pass everything."""

from __future__ import annotations

import json

from harness.faults import FAULTS

from .test_cli import harness


def test_selfcheck_catches_every_planted_fault(tmp_path):
    out = tmp_path / "selfcheck.json"
    # The overlap controls are timing: they have their own test
    # (tests/dist/test_overlap_controls.py) rather than run here beside the whole suite.
    proc = harness("selfcheck", "--world-sizes", "1,2,3", "--no-overlap", "--json", str(out),
                   timeout=600)
    summary = json.loads(out.read_text())
    assert summary["reference"]["false_alarms"] == [], summary["reference"]
    survived = [name for name, f in summary["faults"].items() if not f["caught_by"]]
    assert survived == []
    assert set(summary["faults"]) == set(FAULTS) and len(FAULTS) >= 12
    assert summary["overlap_controls"]["skipped"]
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_selfcheck_fails_when_a_fault_survives(tmp_path):
    # Equal shards only: a mean of per-rank means is then exact, so the fault must survive
    # and selfcheck must say so with exit 1.
    cases = tmp_path / "equal.toml"
    cases.write_text('[[case]]\nname = "centering-equal-only"\nkind = "centering"\nK = 8\n'
                     'batch_per_rank = 4\nbackends = ["gloo"]\nworld_sizes = [2]\n')
    proc = harness("selfcheck", "--cases", str(cases), "--world-sizes", "2",
                   "--faults", "center_mean_of_means", "--no-overlap")
    assert proc.returncode == 1
    assert "SURVIVED" in proc.stdout
