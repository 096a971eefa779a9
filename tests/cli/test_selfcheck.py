"""selfcheck is the proof that the checks can fail: every planted fault must be caught
and the reference must pass everything."""

from __future__ import annotations

import json

import pytest

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
    undiagnosed = [name for name, f in summary["faults"].items() if f.get("diagnosed") is False]
    assert not undiagnosed, f"numeric faults not diagnosed as their own mistake: {undiagnosed}"
    assert survived == []
    correctness = {name for name, fault in FAULTS.items() if fault.family == "correctness"}
    assert set(summary["faults"]) == correctness and len(correctness) >= 12
    assert summary["overlap_controls"]["skipped"]
    assert proc.returncode == 0, proc.stdout[-2000:]


SCALE_ONLY = sorted(name for name, fault in FAULTS.items() if fault.family == "scale")


def test_scale_faults_pass_the_correctness_catalogue_at_1_to_4_ranks(tmp_path):
    """What makes them scale-only: every case of the default catalogue passes against
    each of them at 1-4 ranks (the scale family catches them: tests/cli/test_scale.py)."""
    out = tmp_path / "selfcheck.json"
    proc = harness("selfcheck", "--faults", ",".join(SCALE_ONLY), "--world-sizes", "1,2,3,4",
                   "--no-overlap", "--json", str(out), timeout=900)
    summary = json.loads(out.read_text())
    assert len(SCALE_ONLY) >= 3
    for name in SCALE_ONLY:
        fault = summary["faults"][name]
        assert fault["cases_run"] > 0, name
        assert fault["caught_by"] == [] and fault["failed_otherwise"] == [], (name, fault)
    assert proc.returncode == 1 and "SURVIVED" in proc.stdout


EQUAL_ONLY = ('[[case]]\nname = "centering-equal-two"\nkind = "centering"\nK = 8\n'
              'batch_per_rank = 4\nbackends = ["gloo"]\nworld_sizes = [2]\n')


def test_selfcheck_fails_when_a_fault_survives(tmp_path):
    # Equal shards only: a mean of per-rank means is then exact, so the fault must survive
    # and selfcheck must say so with exit 1.
    cases = tmp_path / "equal.toml"
    cases.write_text(EQUAL_ONLY)
    proc = harness("selfcheck", "--cases", str(cases), "--world-sizes", "2",
                   "--faults", "center_mean_of_means", "--no-overlap")
    assert proc.returncode == 1
    assert "SURVIVED" in proc.stdout


UNEVEN_AND_EQUAL = """
[[case]]
name = "centering-uneven-two"
kind = "centering"
K = 8
batch_per_rank = [2, 5]
backends = ["gloo"]
world_sizes = [2]

[[case]]
name = "centering-equal-two"
kind = "centering"
K = 8
batch_per_rank = 4
backends = ["gloo"]
world_sizes = [2]
"""


@pytest.mark.parametrize("body, code", [(UNEVEN_AND_EQUAL, 0), (EQUAL_ONLY, 1)],
                         ids=["caught", "survived"])
def test_report_renders_a_saved_selfcheck_and_returns_its_code(tmp_path, monkeypatch, body, code):
    from harness.cli import main
    from harness.report import report_command

    cases = tmp_path / "cases.toml"
    cases.write_text(body)
    saved = tmp_path / "selfcheck.json"
    monkeypatch.chdir(tmp_path)  # reports/ lands here
    monkeypatch.setenv("CI", "true")
    assert main(["selfcheck", "--cases", str(cases), "--faults", "center_mean_of_means",
                 "--no-overlap", "--world-sizes", "2", "--json", str(saved)]) == code
    data = json.loads(saved.read_text())
    assert data["schema"] == 1 and data["selfcheck"]["faults"]["center_mean_of_means"]
    assert {r["selfcheck_target"] for r in data["results"]} == {"reference", "center_mean_of_means"}
    assert data["faults"] == data["selfcheck"]["faults"]  # the former keys stay at the top
    verdict = "caught by 1/2" if code == 0 else "SURVIVED"
    for fmt in ("console", "md", "html"):
        out = tmp_path / f"again.{fmt}"
        assert report_command(saved, fmt, out) == code, fmt
        text = out.read_text(encoding="utf-8").replace("\\_", "_")  # Markdown escapes
        assert "center_mean_of_means" in text and verdict in text, fmt
        assert "centering-equal-two" in text  # the reference's own table
        if code == 0:  # the fault's diagnosis names its own mistake
            assert "named in 1/1" in text and "mean of per-rank means" in text, fmt
