"""A parent interrupted mid-run (Ctrl-C, SIGTERM, even SIGKILL) leaves no worker, no
zygote and no pool directory behind.

Each test starts a child Python process that holds a pool, runs a program that never
returns, and prints what the test needs to check afterwards. The test waits until every
rank is inside the program (each writes a marker file), signals the parent, waits for
it to exit, and then checks the processes by pid and by process group.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.runtime.leaks import group_members, running, wait_gone

ROOT = Path(__file__).resolve().parents[2]

PARENT_SCRIPT = r"""
import json, sys
from harness.runtime import PoolSpec, RankPool
from harness.runtime.zygote import get_zygote

pool = RankPool(PoolSpec("gloo", 2, pg_timeout_s=60))
pool.start()
print(json.dumps({"pids": pool.pids, "pgid": pool.pgid, "dir": pool.tmp_dir,
                  "zygote": get_zygote().pid}), flush=True)
pool.run("harness.runtime.testing_programs:sleep_forever", {"marker_dir": sys.argv[1]}, deadline_s=300)
print("run returned", flush=True)
"""


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    if not ready:
        proc.kill()
        raise AssertionError(f"the parent printed nothing in {timeout_s} s; stderr: {proc.stderr.read() if proc.stderr else ''}")
    return proc.stdout.readline()


def _wait_for_markers(marker_dir: Path, n: int, proc: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(list(marker_dir.glob("rank*.running"))) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"ranks did not enter the program (parent rc={proc.poll()})")
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["sigint", "sigterm", "sigkill"])
def test_parent_signal_mid_run_leaves_nothing(tmp_path: Path, signum: int) -> None:
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT_SCRIPT, str(marker_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        info = json.loads(_read_line(proc, timeout_s=120))
        _wait_for_markers(marker_dir, 2, proc, timeout_s=60)
        assert running(info["pids"]) == info["pids"]

        proc.send_signal(signum)
        rc = proc.wait(timeout=30)
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    if signum == signal.SIGINT:
        # An uncaught KeyboardInterrupt ends Python by re-raising SIGINT (rc -2).
        assert rc in (-signal.SIGINT, 1) and "KeyboardInterrupt" in stderr, (rc, stderr[-2000:])
    else:  # SIGTERM is re-raised after the cleanup, SIGKILL cannot be caught
        assert rc == -signum, (rc, stderr[-2000:])

    if signum == signal.SIGKILL:
        # No handler ran: the workers see their lifeline pipe close and kill their group,
        # the zygote sees its socket close and exits. Both happen right after the parent dies.
        assert wait_gone(info["pids"] + [info["zygote"]], timeout_s=20) == []
        assert group_members(info["pgid"]) == []
        # The temp dir of a SIGKILLed parent is the one thing nobody can remove.
        import shutil

        shutil.rmtree(info["dir"], ignore_errors=True)
        return

    # SIGINT / SIGTERM: the parent killed and reaped its workers before exiting.
    assert running(info["pids"]) == [], "workers outlived the parent"
    assert group_members(info["pgid"]) == []
    assert not os.path.exists(info["dir"]), "the pool's temp dir was left behind"
    assert wait_gone([info["zygote"]], timeout_s=20) == [], "the zygote outlived the parent"
