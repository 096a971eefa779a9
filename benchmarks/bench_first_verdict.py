"""How long until the first verdict, against the floor: a cold ``import torch``.

    python benchmarks/bench_first_verdict.py [--runs 5] [--whole-run]
                                             [--json reports/bench/first_verdict.json]

Each round measures, side by side and in alternating order (others share the machine:
only ratios taken in the same round mean much):

* ``import_torch_s``   wall time of ``python -c "import torch"`` (a fresh interpreter);
* ``first_verdict_s``  wall time from starting ``dino-harness run --world-sizes 2`` (CI
                       mode: one line per case) to its first PASS/FAIL/ERROR line; the
                       run is then stopped (SIGTERM: its pools and zygote go with it);
* ``first_verdict_ratio`` the two divided, per round: the figure over its floor.

``--whole-run`` also times one whole ``CI=true dino-harness run --backend gloo
--world-sizes 1,2,3,4`` (what ``make run`` runs), ``whole_run_s``.
Target (issue 12): the median ratio <= 1.3. The JSON is a schema-1 report
(harness/report/figures.py) that ``dino-harness compare`` gates.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.report import BenchSection, collect_environment, write_json
from harness.report.figures import Figure, figure_result
from harness.report.model import Report

VERDICT = re.compile(r"^(PASS|FAIL|ERROR|SKIP) ")
RATIO_TARGET = 1.3
HARNESS = [sys.executable, "-m", "harness"]


def import_torch_s() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - t0


def first_verdict_s(report_dir: str) -> float:
    """Seconds to the first verdict line of a CI-mode run at 2 ranks; the run is stopped."""
    env = {**os.environ, "CI": "true"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*HARNESS, "run", "--world-sizes", "2", "--report-dir", report_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    seen = None
    for line in proc.stdout:
        if VERDICT.match(line):
            seen = time.perf_counter() - t0
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    if seen is None:
        raise SystemExit(f"no verdict line (exit {proc.returncode})")
    return seen


def whole_run_s(report_dir: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([*HARNESS, "run", "--backend", "gloo", "--world-sizes", "1,2,3,4",
                    "--report-dir", report_dir], env={**os.environ, "CI": "true"},
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--whole-run", action="store_true")
    p.add_argument("--json", default="reports/bench/first_verdict.json")
    args = p.parse_args(argv)
    torch_s: list[float] = []
    verdict_s: list[float] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dino-bench-fv-") as tmp:
        for i in range(args.runs):
            if i % 2:  # alternate the order: neither always runs on a warmer page cache
                verdict_s.append(first_verdict_s(tmp))
                torch_s.append(import_torch_s())
            else:
                torch_s.append(import_torch_s())
                verdict_s.append(first_verdict_s(tmp))
            print(f"round {i + 1}: import torch {torch_s[-1]:.2f} s, first verdict "
                  f"{verdict_s[-1]:.2f} s, ratio {verdict_s[-1] / torch_s[-1]:.2f}", flush=True)
        figures = [Figure("first_verdict_ratio", [v / t for v, t in zip(verdict_s, torch_s, strict=True)],
                          target=("<=", RATIO_TARGET)),
                   Figure("first_verdict_s", verdict_s, gated=False),
                   Figure("import_torch_s", torch_s, gated=False)]
        if args.whole_run:
            whole = whole_run_s(tmp)
            print(f"whole run (world sizes 1,2,3,4): {whole:.1f} s", flush=True)
            figures.append(Figure("whole_run_s", [whole]))
    seconds = time.perf_counter() - t0
    result = figure_result("bench-first-verdict", figures, backend="gloo", world_size=2,
                           duration_s=seconds, extra={"rounds": args.runs,
                                                      "command": "dino-harness run --world-sizes 2 (CI=true)"})
    report = Report(results=[result], environment=collect_environment("gloo"),
                    target={"impl": "harness.losses", "api": "seed"},
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    bench=BenchSection("first-verdict", seconds=round(seconds, 1),
                                       extra={"command": "python benchmarks/bench_first_verdict.py",
                                              "note": "2 cores shared with other users"}))
    write_json(Path(args.json), report)
    m = result.metrics or {}
    print(f"{result.case}: {result.status}  ratio median {m['first_verdict_ratio']:.2f} "
          f"[{m['first_verdict_ratio_ci_low']:.2f}, {m['first_verdict_ratio_ci_high']:.2f}] "
          f"(first verdict {m['first_verdict_s']:.2f} s, import torch {m['import_torch_s']:.2f} s)")
    print(f"wrote {args.json} ({seconds:.0f} s)")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
