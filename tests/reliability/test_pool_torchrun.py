"""Launched by torchrun, the harness runs programs in-process (InlineExecutor).

(a) torchrun --standalone, 2 processes;
(b) two torchrun agents on 127.0.0.1 playing two nodes. Their rendezvous is torchrun's
    c10d backend over a FileStore (`--rdzv-conf store_type=file`, the endpoint is a file
    in the test's tmp dir): no port is chosen by the test at all. The workers' own store
    is the one torchrun's rank-0 agent serves on an OS-picked port (torch >= 2.4 shares
    the rendezvous TCPStore), so there is no port race anywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
SMOKE = ["-m", "harness.runtime.smoke", "--deadline", "60"]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_torchrun_standalone_two_ranks(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", *SMOKE],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _json_lines(proc.stdout)
    assert len(lines) == 1, proc.stdout  # rank 0 only
    report = lines[0]
    assert report["ok"] and report["mode"] == "inline"
    assert report["world_size"] == 2 and report["sum"] == 3.0
    assert [r["local_rank"] for r in report["ranks"]] == [0, 1]


def test_torchrun_two_agents_as_two_nodes(tmp_path: Path) -> None:
    endpoint = tmp_path / "rdzv.store"
    procs = []
    for node_rank in (0, 1):
        procs.append(subprocess.Popen(
            [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1",
             "--rdzv-backend", "c10d", "--rdzv-endpoint", str(endpoint),
             "--rdzv-conf", "store_type=file", "--rdzv-id", f"test-{tmp_path.name}",
             "--node-rank", str(node_rank), "--local-addr", "127.0.0.1", "--max-restarts", "0",
             *SMOKE],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=180)
            outputs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rc, _, err in outputs:
        assert rc == 0, err[-3000:]
    lines = [line for _, out, _ in outputs for line in _json_lines(out)]
    assert len(lines) == 1, outputs  # only global rank 0 (on whichever agent) prints
    report = lines[0]
    assert report["ok"] and report["mode"] == "inline"
    assert report["world_size"] == 2 and report["sum"] == 3.0
    # one process per "node": both are local rank 0
    assert [r["local_rank"] for r in report["ranks"]] == [0, 0]
