"""A run killed with SIGKILL halfway loses no finished case, leaves no process behind, and
`dino-harness report` rebuilds its report from the JSONL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil

from harness.runtime.leaks import wait_gone

from .test_cli import FIXTURES, ROOT, harness

CASES = """
[defaults]
backends = ["gloo"]
world_sizes = [2]

[[case]]
name = "centering-first"
kind = "centering"
K = 8

[[case]]
name = "centering-second"
kind = "centering"
K = 8
batch_per_rank = [2, 5]

[[case]]
name = "sinkhorn-sleeps"
kind = "sinkhorn"
K = 17
"""


def test_sigkill_halfway_keeps_finished_cases(tmp_path):
    cases = tmp_path / "cases.toml"
    cases.write_text(CASES)
    reports = tmp_path / "reports"
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--impl", str(FIXTURES / "slow_target.py"),
         "--cases", str(cases), "--report-dir", str(reports)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        lines: list[str] = []
        while time.monotonic() < deadline and len(lines) < 2:
            found = list(reports.glob("*/results.jsonl"))
            lines = found[0].read_text().splitlines() if found else []
            time.sleep(0.2)
        assert len(lines) == 2, "the two fast cases never landed"
        descendants = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert descendants, "no worker processes were started"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    assert wait_gone(descendants, timeout_s=20) == [], "workers outlived a SIGKILLed run"
    run_dir = found[0].parent
    assert not (run_dir / "report.json").exists()

    out = tmp_path / "rebuilt.md"
    rebuilt = harness("report", str(run_dir), "--format", "md", "--output", str(out))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    text = out.read_text()
    assert "centering-first" in text and "centering-second" in text
    assert "sinkhorn-sleeps" not in text
    latest = harness("report", str(reports / "latest"), "--format", "console")
    assert latest.returncode == 0 and "centering-second" in latest.stdout
    assert [json.loads(line)["status"] for line in lines] == ["pass", "pass"]
