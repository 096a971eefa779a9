"""The case kinds: one module per kind, each with a module-level ``KIND`` (a
``harness.cases.kind.Kind``: its keys, tensors, seed-API names, rank program, verifier).

Adding a kind is adding a module here (plus its TOML file): :func:`registry` finds every
public module of this package. Kind modules keep torch and the check machinery out of
their top level (they import them inside the functions that run), so that validating a
case file stays light.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..cases.kind import Kind
from ..cases.schema import KEYS


@functools.cache
def registry() -> dict[str, Kind]:
    """Every kind, by ``order`` then name. :func:`refresh` forgets what was found."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        kind = importlib.import_module(f"{__name__}.{info.name}").KIND
        if kind.name != info.name:
            raise RuntimeError(f"harness.kinds.{info.name} declares kind {kind.name!r}")
        if unknown := sorted(kind.keys - KEYS.keys()):
            raise RuntimeError(f"kind {kind.name!r} lists keys not in the schema: {unknown}")
        found.append(kind)
    return {k.name: k for k in sorted(found, key=lambda k: (k.order, k.name))}


def refresh() -> None:
    """Look for kind modules again (after a module was added to this package's path)."""
    registry.cache_clear()


KINDS: tuple[str, ...] = tuple(registry())
