"""The pytest plugin, exercised in a child pytest (with and without xdist)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parent / "samples" / "dist_sample.py"
ROOT = Path(__file__).resolve().parents[2]


def run_sample(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(SAMPLE), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def counts(output: str) -> dict[str, int]:
    found = dict.fromkeys(("passed", "failed", "skipped", "error"), 0)
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|error)", output):
        found[what] = int(n)
    return found


def test_plugin_under_xdist() -> None:
    proc = run_sample("-n", "2", "--dino-world-sizes", "1,2", "--dino-dist-timeout", "30")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # dist_run tests without a marker run once per world size: sum x2, explicit x2,
    # marker, failure: 6 passed; the nccl-marked test is skipped (x2)
    assert counts(out) == {"passed": 6, "failed": 0, "skipped": 2, "error": 0}, out[-3000:]
    assert "needs --dino-backend nccl" in out


def test_plugin_nccl_without_gpus_skips_cleanly() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs")
    proc = run_sample("--dino-backend", "nccl", "--dino-world-sizes", "1,2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert counts(out)["passed"] == 0 and counts(out)["failed"] == 0, out[-3000:]
    assert "NCCL" in out


def test_plugin_rejects_bad_world_sizes() -> None:
    proc = run_sample("--dino-world-sizes", "two")
    assert proc.returncode == 4  # pytest's usage error
    assert "--dino-world-sizes" in proc.stderr


USER_CONFTEST = '''
def pytest_addoption(parser):
    # Names that ML projects commonly give their own options: the plugin must not take them.
    parser.addoption("--backend", default="project-own")
    parser.addoption("--world-sizes", default="8")
'''


def test_a_project_with_its_own_backend_option_starts_and_passes(tmp_path: Path) -> None:
    """The installed plugin (pytest11 entry point) next to a conftest.py that defines
    --backend and --world-sizes itself; the user's test passes a plain function."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "conftest.py").write_text(USER_CONFTEST)
    sample = SAMPLE.parent / "user_project_test_allreduce.py"
    (project / "test_allreduce.py").write_text(sample.read_text())
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "--rootdir", str(project), str(project)],
        cwd=project, capture_output=True, text=True, timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert counts(out) == {"passed": 5, "failed": 0, "skipped": 0, "error": 0}, out[-3000:]


def test_the_readme_example_runs_in_a_project_of_its_own(tmp_path: Path) -> None:
    project = tmp_path / "yourproject"
    project.mkdir()
    shutil.copy(SAMPLE.parent / "readme_dist_test.py", project / "test_dist.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(project / "test_dist.py")],
                          cwd=project, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert counts(out) == {"passed": 2, "failed": 0, "skipped": 0, "error": 0}, out[-3000:]
