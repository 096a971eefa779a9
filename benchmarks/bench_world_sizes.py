"""What a case costs as the world grows: wall time and peak memory at W = 2, 8, 16, 32, 64.

    python benchmarks/bench_world_sizes.py [--world-sizes 2,8,16,32,64] [--cases NAME ...]
                                           [--json reports/bench/world_sizes.json]

Each (case, W) is one ``dino-harness run --cases FILE --world-sizes W`` in a fresh process
(its zygote boot and pool start included in ``wall_s``; ``case_s`` is the case alone, from
its report). While it runs, the process tree (the harness, its zygote, every rank) is
sampled every 0.3 s: ``peak_mb`` is the largest sum of its proportional set sizes (PSS:
shared pages split between the processes that share them, so the sum is what the tree
holds), and ``estimate_mb`` what the harness estimated before running
(harness/cases/footprint.py: it refuses a case whose estimate the machine cannot hold).
Every figure is also given as a ratio to the same case at W = 2 in the same run.

The cases (``CASES``): the issue's measurement (centering, K = 4096, 8 samples per rank:
10.6 s at W = 32, OOM-killed at W = 64 before the ranks built only their own rows), a
64-GPU step's CLS loss (10 views, K = 4096), and a K = 65536 Sinkhorn.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from harness.report import BenchSection, collect_environment, write_json
from harness.report.figures import Figure, figure_result
from harness.report.model import Report

HARNESS = [sys.executable, "-m", "harness"]
SAMPLE_S = 0.3
CASES = {
    "centering-k4096": """
kind = "centering"
K = 4096
steps = 6
views_teacher = 2
batch_per_rank = 8
logits = { scale = 1.0, sample_offset = 0.5, prototype_offset = 1.0 }
""",
    "cls-ten-views-k4096": """
kind = "cls"
K = 4096
views_student = 10
views_teacher = 2
batch_per_rank = 8
logits = { distribution = "uniform", scale = 1.0 }
""",
    "sinkhorn-k65536": """
kind = "sinkhorn"
K = 65536
batch_per_rank = 16
logits = { distribution = "uniform", scale = 1.0, sample_offset = 3.0, prototype_offset = 1.0 }
""",
}


def tree_pss_mb(root: psutil.Process) -> float:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total / 2**20


def measure(case_file: Path, name: str, world: int, tmp: Path) -> dict[str, float]:
    out = tmp / f"{name}-{world}.json"
    env = {**os.environ, "CI": "true"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*HARNESS, "run", "--cases", str(case_file), "--world-sizes", str(world),
                             "--report-dir", str(tmp / "reports"), "--json", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    root = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_pss_mb(root))
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} at W={world}: exit {proc.returncode}\n{err[-2000:]}")
    result = json.loads(out.read_text())["results"][0]
    return {"wall_s": wall, "case_s": result["duration_s"], "peak_mb": peak,
            "estimate_mb": result["memory"]["estimate_mb"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world-sizes", default="2,8,16,32,64")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--json", default="reports/bench/world_sizes.json")
    args = p.parse_args(argv)
    worlds = [int(w) for w in args.world_sizes.split(",")]
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="dino-bench-ws-") as tmp_name:
        tmp = Path(tmp_name)
        for name in args.cases:
            case_file = tmp / f"{name}.toml"
            case_file.write_text(f'[[case]]\nname = "{name}"\nworld_sizes = {worlds}\n'
                                 + CASES[name])
            rows = {}
            for world in worlds:
                rows[world] = measure(case_file, name, world, tmp)
                r, base = rows[world], rows[worlds[0]]
                print(f"{name} W={world:<3d} wall {r['wall_s']:6.1f} s (x{r['wall_s'] / base['wall_s']:.1f})"
                      f"  case {r['case_s']:6.2f} s (x{r['case_s'] / base['case_s']:.1f})"
                      f"  peak {r['peak_mb']:7.0f} MB (x{r['peak_mb'] / base['peak_mb']:.1f})"
                      f"  estimate {r['estimate_mb']:7.0f} MB", flush=True)
            for world, r in rows.items():
                base = rows[worlds[0]]
                figures = [Figure("wall_s", [r["wall_s"]], gated=False),
                           Figure("case_s", [r["case_s"]], gated=False),
                           Figure("peak_mb", [r["peak_mb"]], gated=False),
                           Figure("estimate_mb", [r["estimate_mb"]], gated=False),
                           Figure("case_s_vs_w2", [r["case_s"] / base["case_s"]], gated=False),
                           Figure("peak_mb_vs_w2", [r["peak_mb"] / base["peak_mb"]], gated=False),
                           # the refusal is only honest if the estimate covers what ran
                           Figure("estimate_over_peak", [r["estimate_mb"] / r["peak_mb"]],
                                  target=(">=", 1.0), gated=False)]
                results.append(figure_result(f"world-sizes-{name}", figures, backend="gloo",
                                             world_size=world, duration_s=r["wall_s"]))
    seconds = time.perf_counter() - t0
    report = Report(results=results, environment=collect_environment("gloo"),
                    target={"impl": "harness.losses", "api": "seed"},
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    bench=BenchSection("world-sizes", seconds=round(seconds, 1),
                                       extra={"command": "python benchmarks/bench_world_sizes.py",
                                              "ranks": "processes forked from the zygote",
                                              "note": "2 cores shared with other users"}))
    write_json(Path(args.json), report)
    print(f"wrote {args.json} ({seconds:.0f} s)")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
