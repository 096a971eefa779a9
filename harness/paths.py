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

#: The catalogue's families (folders of ``cases/``), and the world sizes a run of one
#: defaults to (None: each case's own ``world_sizes``). ``scale`` is opt-in: production
#: sizes at 8..64 ranks, minutes rather than seconds (README, "Production scale").
FAMILIES: dict[str, str | None] = {"correctness": "1,2,3,4", "scale": None}
DEFAULT_FAMILY = "correctness"


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
