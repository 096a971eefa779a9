"""`make test-dist`: what a multi-GPU user runs before a long job.

1. gloo: the distributed pytest suites (catalogue, subgroups, pool reliability) at world
   sizes 1-4 on CPU.
2. NCCL, when GPUs are visible: the same distributed tests and the whole catalogue at
   world sizes 1..visible GPUs (one GPU per rank), then the overlap bench with CUDA-event
   timing. Without a GPU it says so and stops after the gloo part.
3. A summary: what ran, what passed, what was skipped and why. Exit 1 if anything failed.

    python -m harness.commands.test_dist [--report-dir reports/test-dist]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

DIST_TESTS = ["tests/dist", "tests/reliability"]


@dataclass
class Part:
    name: str
    command: list[str]
    returncode: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    skips: collections.Counter[str] = field(default_factory=collections.Counter)
    note: str = ""


def _pytest(name: str, backend: str, world_sizes: str, out: Path, extra: list[str]) -> Part:
    xml = out / f"{name}.xml"
    return Part(name, [sys.executable, "-m", "pytest", "-q", "--dino-backend", backend,
                       "--dino-world-sizes", world_sizes, f"--junitxml={xml}", *extra, *DIST_TESTS])


def _read_junit(part: Part, xml: Path) -> None:
    if not xml.exists():
        return
    root = ET.parse(xml).getroot()
    counts = collections.Counter()
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            counts["skipped"] += 1
            part.skips[(case.find("skipped").get("message") or "").strip()[:140]] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        else:
            counts["passed"] += 1
    part.counts = dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="distributed tests on gloo, then NCCL if GPUs")
    parser.add_argument("--report-dir", default="reports/test-dist")
    args = parser.parse_args(argv)
    out = Path(args.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()

    from harness.runtime import visible_gpu_count

    gpus = visible_gpu_count()
    parts = [_pytest("gloo", "gloo", "1,2,3,4", out, ["-n", "2", "--dist", "loadgroup"])]
    if gpus:
        parts.append(_pytest("nccl", "nccl", "auto", out, []))
        parts.append(Part("nccl-catalogue", [
            sys.executable, "-m", "harness", "run", "--backend", "nccl", "--world-sizes", "auto",
            "--report-dir", str(out), "--json", str(out / "nccl-catalogue.json")]))
        parts.append(Part("nccl-overlap", [
            sys.executable, "-m", "harness", "bench", "overlap", "--backend", "nccl",
            "--world-sizes", "auto", "--json", str(out / "nccl-overlap.json")]))
    for part in parts:
        console.rule(f"[bold]{part.name}[/]: {' '.join(part.command[2:])}")
        part.returncode = subprocess.call(part.command)
        _read_junit(part, out / f"{part.name}.xml")

    table = Table(title=f"make test-dist — {gpus} visible GPU(s)")
    for column in ("part", "exit", "passed", "failed", "skipped", "skip reasons"):
        table.add_column(column)
    for part in parts:
        reasons = "\n".join(f"{n}× {why}" for why, n in part.skips.most_common(4))
        table.add_row(part.name, str(part.returncode), *(str(part.counts.get(k, "-"))
                      for k in ("passed", "failed", "skipped")), reasons)
    console.print(table)
    if not gpus:
        console.print("[yellow]No CUDA GPU visible: NCCL tests, the NCCL catalogue and the CUDA-event "
                      "overlap bench did not run. The gloo part above is all this machine can do.[/]")
    failed = [p.name for p in parts if p.returncode]
    console.print(f"[bold {'red' if failed else 'green'}]test-dist: "
                  f"{'FAILED: ' + ', '.join(failed) if failed else 'all parts passed'}[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
