"""Target API styles: one module per codebase, each turning a loaded target into the
seed-API namespace the case kinds call, with the single-process semantics its oracle uses.

Adding a style is one module here with a module-level ``STYLE`` (a :class:`Style`), or,
outside the project, a file passed with ``--adapter FILE.py`` that defines one. Listing the
styles imports none of them (the CLI offers them as ``--api`` choices); ``--api auto``
imports them all and takes the most specific whose marks the target has.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path
from types import ModuleType

from ..errors import TargetError
from ..semantics import Semantics
from ._base import CONTRACTS, Mark, Match, Style, parameters, required_contract

__all__ = ["CONTRACTS", "Mark", "Match", "Semantics", "Style", "detect", "get", "load_adapter",
           "names", "parameters", "required_contract"]


def names() -> tuple[str, ...]:
    """Every style module's name, without importing any of them."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_")))


def get(name: str) -> Style:
    if name not in names():
        raise TargetError(f"unknown --api {name!r}: expected auto or one of {', '.join(names())}")
    style = importlib.import_module(f"{__name__}.{name}").STYLE
    if style.name != name:
        raise RuntimeError(f"harness.styles.{name} declares style {style.name!r}")
    return style


def detect(module: object, impl: str) -> tuple[Style, Match]:
    """The most specific style whose every mark the target has; exit 2 naming, for each
    style, what it looked for and what it found, when none fits."""
    styles = sorted((get(n) for n in names()), key=lambda s: -s.specificity)
    matches = [(style, style.match(module)) for style in styles]
    for style, match in matches:
        if match.fits:
            return style, match
    where = getattr(module, "__file__", None) or type(module).__name__
    lines = "\n".join(f"  - {m.text()}" for _, m in matches)
    raise TargetError(f"target {impl!r} ({where}) fits no API style (--api auto):\n{lines}\n"
                      "Pass --api NAME to name one, or --adapter FILE.py for a style of your own "
                      "(README: 'Your own style').")


def load_adapter(path: str) -> Style:
    """A user's style: a .py file defining ``STYLE = Style(...)``."""
    file = Path(path)
    if not file.is_file():
        raise TargetError(f"--adapter {path!r}: no such file")
    spec = importlib.util.spec_from_file_location(f"dino_harness_adapter_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise TargetError(f"--adapter {path!r}: cannot load it as a Python module")
    module: ModuleType = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise TargetError(f"--adapter {path!r}: importing it failed: {type(exc).__name__}: {exc}"
                          ) from exc
    style = getattr(module, "STYLE", None)
    if not isinstance(style, Style):
        raise TargetError(f"--adapter {path!r} defines no STYLE = harness.styles.Style(...) "
                          f"(found {type(style).__name__ if style is not None else 'nothing'})")
    return style
