"""Fake but realistic results, for the report tests and for looking at a report without
running anything (``python -m harness.report.samples [console|md|html]``).

They cover every shape a renderer must handle: passes over several world sizes, a
failing check with its location and values, a NaN overflow, a hung rank with a stack, a
crashed rank (signal), a skip with its reason, and overlap results with metrics,
prototypes and a per-rank timeline.
"""

from __future__ import annotations

import sys
from typing import Any

from harness.results import CaseResult, Check, RankError, summarise

SAMPLE_ENVIRONMENT: dict[str, Any] = {
    "torch": "2.13.0+cpu", "python": "3.11.7", "backend": "gloo", "nccl": None,
    "devices": ["AMD EPYC 7B13"], "hostname": "ci-runner-7", "platform": "Linux-6.1-x86_64",
    "cpu": "AMD EPYC 7B13", "cpu_count": 2, "cuda": None,
}
SAMPLE_TARGET: dict[str, Any] = {"impl": "harness.losses", "api": "seed", "version": "0.1.0",
                                 "git_commit": "3f9a1c07d2b4e8a1c0ffee5b9d7e6a4c2b1d0e9f",
                                 "git_dirty": True}

HANG_STACK = """\
Traceback (most recent call last):
  File "/work/main/harness/runtime/worker.py", line 88, in _serve
    result = program(rank, world_size, case)
  File "/work/main/harness/checks/centering.py", line 61, in run
    loss.center_update_step(teacher)
  File "/work/main/harness/losses/dino.py", line 142, in apply_center_update
    self._pending.wait()
  File "/usr/lib/python3.11/site-packages/torch/distributed/distributed_c10d.py", line 4213, in wait
    return self._work.wait(timeout)
RuntimeError: [/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:534] Timed out waiting 30000ms for recv operation to complete
"""


def _passing_checks(ratio: float, rank: int | None = None) -> list[Check]:
    tol = 1e-5
    return [
        Check("center", ratio * tol, ratio * tol * 40, tol, True, rank, comparison="dist_vs_single",
              ratio=ratio),
        Check("center", ratio * tol / 3, ratio * tol * 10, 1e-4, True, rank,
              comparison="single_vs_oracle", ratio=ratio / 30),
        Check("center", 0.0, 0.0, 0.0, True, None, comparison="rank_agreement", ratio=0.0),
    ]


def sample_results() -> list[CaseResult]:
    out: list[CaseResult] = []
    for ws, t, ratio in ((1, 0.21, 0.0), (2, 0.34, 0.021), (4, 0.58, 0.034)):
        out.append(CaseResult("centering-ema-uneven", "centering", "gloo", ws, "pass", t,
                              _passing_checks(ratio)))
    out.append(CaseResult("sinkhorn-uneven", "sinkhorn", "gloo", 2, "pass", 0.31,
                          [Check("Q", 2.1e-8, 3.0e-6, 1e-6, True, 1, comparison="dist_vs_single",
                                 ratio=0.021)]))
    out.append(CaseResult(
        "sinkhorn-uneven", "sinkhorn", "gloo", 4, "fail", 0.42,
        [Check("Q", 2.47e-3, 0.251, 1e-6, False, 3, comparison="dist_vs_single",
               index=[17, 402], actual=0.0123, expected=0.0098, ratio=2470.0,
               detail="rows of rank 3 do not match the single-process Sinkhorn on the "
                      "concatenated batch; B differs between ranks (5 vs 3)"),
         Check("Q", 3.1e-9, 2.0e-7, 1e-6, True, None, comparison="single_vs_oracle",
               ratio=0.0031),
         Check("Q row sums", 0.0, 0.0, 1e-6, True, None, comparison="invariant", ratio=0.0)]))
    out.append(CaseResult(
        "sinkhorn-large-logits", "sinkhorn", "gloo", 2, "fail", 0.27,
        [Check("Q", float("nan"), float("nan"), 1e-6, False, 0, comparison="dist_vs_single",
               index=[0, 0], actual=float("nan"), expected=0.0312, nonfinite=4096,
               detail="exp(logits / temp) overflowed: 4096 of 4096 values are NaN on rank 0; "
                      "rank 1's Q is NaN too (poisoned through the all-reduce)")]))
    out.append(CaseResult(
        "centering-skip-collective", "centering", "gloo", 2, "error", 30.4,
        error=RankError(1, "Hang", "no progress for 30.0 s in apply_center_update "
                                   "(collective #3 of 4)", HANG_STACK),
        rank_errors=[RankError(0, "Crash", "killed by the watchdog after the hang of rank 1",
                               "", exit_code=None, signal="SIGKILL")]))
    out.append(CaseResult("cls-loss-uneven", "cls", "nccl", 2, "skip", 0.0,
                          skip_reason="NCCL cannot put two ranks on one GPU: 1 GPU < 2 ranks"))
    out.append(CaseResult(
        "cls-loss-uneven", "cls", "gloo", 2, "pass", 0.44,
        [Check("loss", 4.8e-7, 1.1e-7, 1e-5, True, None, comparison="dist_vs_single",
               ratio=0.048),
         Check("grad", 9.0e-7, 2.0e-6, 1e-5, True, 1, comparison="dist_vs_single", ratio=0.09)]))
    for ws, k, hidden, comm, bwd in ((2, 4096, 0.93, 0.9, 58.0), (2, 65536, 0.97, 4.2, 60.1),
                                     (4, 65536, 0.88, 6.8, 61.5), (2, 4194304, 0.41, 48.0, 70.9)):
        exposed = comm * (1 - hidden)
        metrics = {
            "comm_ms": comm, "comm_ms_p10": comm * 0.9, "comm_ms_p90": comm * 1.15,
            "bwd_ms": bwd, "bwd_ms_p10": bwd * 0.97, "bwd_ms_p90": bwd * 1.04,
            "serial_ms": comm + bwd, "serial_ms_p10": (comm + bwd) * 0.97,
            "serial_ms_p90": (comm + bwd) * 1.04,
            "overlapped_ms": bwd + exposed, "overlapped_ms_p10": (bwd + exposed) * 0.97,
            "overlapped_ms_p90": (bwd + exposed) * 1.05,
            "exposed_ms": exposed, "exposed_ms_p10": exposed * 0.6, "exposed_ms_p90": exposed * 1.5,
            "hidden_fraction": hidden, "hidden_fraction_p10": max(hidden - 0.04, 0),
            "hidden_fraction_p90": min(hidden + 0.02, 1),
            "interference": (1 - hidden) * 0.3, "interference_p10": 0.0,
            "interference_p90": (1 - hidden) * 0.5,
            "efficiency": hidden * 0.98, "efficiency_p10": hidden * 0.9,
            "efficiency_p90": min(hidden * 1.02, 1),
        }
        extra: dict[str, Any] = {"prototypes": k, "batch_per_rank": 64, "iterations": 50}
        if k == 65536 and ws == 2:
            extra["timeline"] = _timeline(ws, bwd, comm, hidden)
        out.append(CaseResult("overlap-center-allreduce", "overlap", "gloo", ws, "pass",
                              3.9 + ws * 0.4, metrics=metrics, extra=extra))
    return out


def _timeline(ws: int, bwd: float, comm: float, hidden: float) -> dict[str, Any]:
    ranks = []
    for r in range(ws):
        skew = 0.4 * r
        issue_end = 0.3 + skew
        ar_start, ar_end = issue_end, issue_end + comm
        bwd_end = issue_end + bwd
        wait_end = max(bwd_end, ar_end) + comm * (1 - hidden) * 0.2
        ranks.append({"rank": r, "spans": [
            {"name": "issue", "start_ms": skew, "end_ms": issue_end},
            {"name": "allreduce", "start_ms": ar_start, "end_ms": ar_end},
            {"name": "backward", "start_ms": issue_end, "end_ms": bwd_end},
            {"name": "wait", "start_ms": bwd_end, "end_ms": wait_end},
        ]})
    return {"ranks": ranks}


def sample_report(results: list[CaseResult] | None = None) -> dict[str, Any]:
    results = sample_results() if results is None else results
    return {"schema": 1, "tool": "dino-harness", "created": "2025-11-29T06:16:00+00:00",
            "environment": dict(SAMPLE_ENVIRONMENT), "target": dict(SAMPLE_TARGET),
            "results": [r.to_json() for r in results], "summary": summarise(results),
            "run_id": "20251129T061600.000Z-3f9a1c", "complete": True}


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from .console import render_report
    from .html import to_html
    from .markdown import to_markdown

    fmt = (argv if argv is not None else sys.argv[1:] or ["console"])[0]
    report = sample_report()
    if fmt == "md":
        sys.stdout.write(to_markdown(report))
    elif fmt == "html":
        sys.stdout.write(to_html(report))
    else:
        render_report(report, Console())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
