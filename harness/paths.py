"""Where the default case catalogue lives, installed or not (package data: ``harness.catalogue``).

The repository keeps it in ``cases/``; ``pyproject.toml`` ships that folder inside the
package as ``harness.catalogue`` (package data), so a wheel installed anywhere finds it
through the import system. Run from a checkout without installing, the folder is found
beside the package. ``DINO_HARNESS_CASES`` points somewhere else altogether.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ENV = "DINO_HARNESS_CASES"
PACKAGE = "harness.catalogue"


def catalogue_dir(subdir: str) -> Path:
    """The folder of one catalogue: ``"correctness"`` or ``"overlap"``."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]) / subdir
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / subdir
    return Path(__file__).resolve().parent.parent / "cases" / subdir
