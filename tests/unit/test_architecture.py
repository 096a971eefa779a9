"""The layers of ARCHITECTURE.md hold (import-linter contracts in pyproject.toml), and the
check is able to fail: a planted import across a layer breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"),
                           "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_contracts_hold() -> None:
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_import_across_a_layer_breaks_the_check(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "harness", tmp_path / "harness",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / "harness" / "losses" / "cross_entropy.py"
    planted.write_text(planted.read_text() + "\nimport harness.report  # noqa: E402,F401\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "harness.losses is not allowed to import harness.report" in proc.stdout
    assert str(tmp_path) not in str(ROOT)  # the copy, not the checkout, was linted
