"""collect_environment / describe_target: the fields, and a git commit from a checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report import collect_environment, describe_target


def test_environment_fields() -> None:
    env = collect_environment("gloo")
    for key in ("torch", "python", "backend", "nccl", "devices", "hostname", "platform",
                "cpu_count"):
        assert key in env
    assert env["backend"] == "gloo"
    assert env["devices"] and all(isinstance(d, str) for d in env["devices"])
    assert env["python"].count(".") == 2


def test_target_version_for_the_reference() -> None:
    t = describe_target("harness.losses", "seed")
    assert t["impl"] == "harness.losses" and t["api"] == "seed"
    assert t.get("version") and t["path"].endswith("__init__.py")


def test_unknown_target_never_raises() -> None:
    assert describe_target("no_such_pkg_xyz.mod", "seed") == {"impl": "no_such_pkg_xyz.mod",
                                                              "api": "seed"}
    assert describe_target("/nonexistent/file.py", "dinov2")["api"] == "dinov2"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_of_a_file_target(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "myloss.py").write_text('__version__ = "9.9"\n')
    git("add", "myloss.py")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "x")
    t = describe_target(str(tmp_path / "myloss.py"), "seed")
    assert t["git_commit"] == git("rev-parse", "HEAD")
    assert t["git_dirty"] is False and t["version"] == "9.9"
    (tmp_path / "myloss.py").write_text('__version__ = "9.10"\n')
    assert describe_target(str(tmp_path / "myloss.py"), "seed")["git_dirty"] is True
    # a file git does not track there (pip's package in the checkout's .venv) has no commit
    (tmp_path / "untracked.py").write_text("x = 1\n")
    untracked = describe_target(str(tmp_path / "untracked.py"), "seed")
    assert "git_commit" not in untracked and "git_dirty" not in untracked
