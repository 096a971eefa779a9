"""`dino-harness bench overlap` end to end on real rank pools (gloo), on tiny workloads:
the report's schema, the timeline the HTML draws, --ddp, comm longer than backward, a
hung rank (exit 3), and the NCCL path (skipped without GPUs)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.overlap.cases import OverlapCase
from harness.overlap.metrics import METRICS
from harness.overlap.runner import PG_TIMEOUT_S, run_case
from harness.runtime.executor import PoolExecutor

TINY = """
    [defaults]
    K = 8192
    in_dim = 16
    hidden_dim = 32
    bottleneck_dim = 8
    views_student = 2
    views_teacher = 2
    batch_per_rank = 2
    iterations = 20
    warmup = 1
    deadline_s = {deadline}
    world_sizes = [1, 2]

    [[case]]
    name = "overlap-tiny"
    quick = true
"""


def _case_file(tmp_path: Path, deadline: float = 120) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(TINY.format(deadline=deadline)))
    return path


@pytest.mark.slow
def test_bench_overlap_writes_the_report_the_html_draws(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # reports/ lands here
    out = tmp_path / "overlap.json"
    code = main(["bench", "overlap", "--cases", str(_case_file(tmp_path)), "--world-sizes", "1,2",
                 "--ddp", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["schema"] == 1 and report["tool"] == "dino-harness"
    assert {"environment", "target", "results", "summary", "created"} <= set(report)
    assert report["target"]["impl"] == "harness.losses"
    results = report["results"]
    assert sorted((r["case"], r["world_size"]) for r in results) == [
        ("overlap-tiny", 1), ("overlap-tiny", 2), ("overlap-tiny-ddp", 1), ("overlap-tiny-ddp", 2)]
    for r in results:
        assert r["status"] == "pass" and r["kind"] == "overlap" and r["backend"] == "gloo"
        assert (r["prototypes"], r["batch_per_rank"], r["iterations"]) == (8192, 2, 20)
        m = r["metrics"]
        for name in METRICS:
            for suffix in ("", "_p10", "_p90", "_ci_low", "_ci_high"):
                assert name + suffix in m, name + suffix
        assert m["efficiency"] == "nan" or m["efficiency"] <= 1.0
        assert isinstance(r["inconclusive"], bool) and isinstance(r["inconclusive_reasons"], list)
        tl = r["timeline"]
        assert [rank["rank"] for rank in tl["ranks"]] == list(range(r["world_size"]))
        names = {s["name"] for rank in tl["ranks"] for s in rank["spans"]}
        assert {"issue", "backward", "wait"} <= names
        for rank in tl["ranks"]:
            for s in rank["spans"]:
                assert s["end_ms"] >= s["start_ms"]
    ws2 = next(r for r in results if r["case"] == "overlap-tiny" and r["world_size"] == 2)
    assert ws2["metrics"]["comm_ms"] > 0 and ws2["timeline"]["allreduce_traced"]
    assert ws2["collectives"] == ["update_center: allreduce_(8193 x float32)"]
    ws1 = next(r for r in results if r["case"] == "overlap-tiny" and r["world_size"] == 1)
    assert ws1["metrics"]["hidden_fraction"] == "nan" and ws1["no_communication"]
    assert all(r["ddp"] for r in results if r["case"].endswith("-ddp"))

    from harness.report import to_html

    html = to_html(report)
    assert "fig-timeline-" in html and "fig-hidden" in html


class _BigCenterTarget:
    SOURCE = '''
"""The reference, but update_center also sends a 64x larger padding buffer: the center's
all-reduce becomes much longer than the tiny head's backward."""
import torch
from harness.losses import *  # noqa: F401,F403 - the seed API
from harness.losses import DINOv1Loss as _Ref, _dist
from harness.faults._build import seed_api


class _Big(_Ref):
    def update_center(self, teacher_output):
        super().update_center(teacher_output)
        pad = torch.zeros(64 * teacher_output.shape[-1], device=teacher_output.device)
        self._pad_work = _dist.all_reduce(pad, async_op=True)

    def apply_center_update(self):
        work = getattr(self, "_pad_work", None)
        if work is not None:
            work.wait()
            self._pad_work = None
        super().apply_center_update()


globals().update(seed_api(dino=_Big))
'''


@pytest.mark.slow
def test_comm_longer_than_backward_is_reported(tmp_path: Path) -> None:
    target = tmp_path / "big_center.py"
    target.write_text(_BigCenterTarget.SOURCE)
    case = OverlapCase("overlap-comm-bound", K=65536, in_dim=4, hidden_dim=4, bottleneck_dim=1,
                       views_student=1, views_teacher=2, batch_per_rank=1, iterations=20,
                       warmup=1, deadline_s=120)
    with PoolExecutor(pg_timeout_s=PG_TIMEOUT_S) as executor:
        result = run_case(executor, case, "gloo", 2, impl=str(target))
    d = result.to_json()
    assert d["status"] == "pass", d.get("error")
    m = d["metrics"]
    assert len(d["collectives"]) == 2  # the center and the padding, both replayed
    assert m["comm_ms"] > m["bwd_ms"], m
    assert d["comm_exceeds_backward"] is True
    assert any("longer than backward" in n for n in d["notes"])
    assert m["efficiency"] <= 1.0 and m["efficiency_ci_high"] <= 1.0


HANG_TARGET = '''
"""Rank 1 never returns from update_center: the run must end as a hang (exit 3)."""
import time
import torch.distributed as dist
from harness.losses import *  # noqa: F401,F403
from harness.losses import DINOv1Loss as _Ref
from harness.faults._build import seed_api


class _Hang(_Ref):
    def update_center(self, teacher_output):
        if dist.is_initialized() and dist.get_rank() == 1:
            time.sleep(3600)
        super().update_center(teacher_output)


globals().update(seed_api(dino=_Hang))
'''


@pytest.mark.slow
def test_a_hung_rank_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "hang.py"
    target.write_text(HANG_TARGET)
    code = main(["bench", "overlap", "--impl", str(target), "--cases",
                 str(_case_file(tmp_path, deadline=6)), "--world-sizes", "2"])
    assert code == 3
    assert "hang" in capsys.readouterr().out.lower()


@pytest.mark.nccl
def test_nccl_quick_run_uses_device_clocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU only: the event clock, NCCL's own work timing, per-rank timelines."""
    from harness.runtime import visible_gpu_count

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "nccl.json"
    sizes = "1,2" if visible_gpu_count() >= 2 else "1"
    assert main(["bench", "overlap", "--backend", "nccl", "--cases", str(_case_file(tmp_path)),
                 "--world-sizes", sizes, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for r in report["results"]:
        assert r["status"] == "pass", r
        assert r["clock"] == "cuda events on the compute stream"
        assert r["timeline"]["aligned"].startswith("each rank")
        if r["world_size"] >= 2:
            m = r["metrics"]
            assert m["comm_ms"] > 0 and "comm_work_ms" in m, m  # TORCH_NCCL_ENABLE_TIMING
            assert 0 <= m["wait_ms"] <= m["overlapped_ms"]
            assert any(s.get("estimated") for rank in r["timeline"]["ranks"] for s in rank["spans"])
