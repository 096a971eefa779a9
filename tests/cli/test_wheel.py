"""Installed like a user installs it: a wheel in a fresh location, run from a folder
outside the checkout, finds its own catalogue (package data) and works end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources, installed into a fresh --target."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("harness", "cases"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                    str(src)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("dino_harness-*.whl")
    site = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    return site


def harness(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DINO_HARNESS_CASES"}
    env.update(CI="true", PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_installed_wheel_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", "import harness, harness.paths as p; "
                            "print(harness.__file__); print(p.catalogue_dir('correctness'))"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)},
                           capture_output=True, text=True, check=True)
    module_file, catalogue = probe.stdout.split()
    assert module_file.startswith(str(installed)) and catalogue.startswith(str(installed))

    listing = harness(installed, tmp_path, "list")
    assert listing.returncode == 0, listing.stderr
    assert "sinkhorn-uneven-shards" in listing.stdout

    saved = tmp_path / "run.json"
    run = harness(installed, tmp_path, "run", "--world-sizes", "2", "--filter",
                  "sinkhorn-uneven-shards[", "--report-dir", str(tmp_path / "reports"),
                  "--json", str(saved))
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(saved.read_text())["results"]
    assert [(r["case"], r["status"]) for r in results] == [("sinkhorn-uneven-shards", "pass")]

    report = harness(installed, tmp_path, "report", str(saved), "--format", "md")
    assert report.returncode == 0 and "sinkhorn-uneven-shards" in report.stdout
