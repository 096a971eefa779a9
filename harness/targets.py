"""Load the code under test and present it through the seed API its case kinds call.

A target is a module name (``harness.losses``, ``dinov2.loss``), a ``.py`` file (a file
inside a package is imported as that package's module, so its relative imports work), or
either followed by ``:attribute`` to select one class or object in it. Its *style*
(``harness.styles``: seed, dinov2, dinov3, dino, lightly, solo, or ``--adapter FILE.py``)
turns it into the seed-API namespace and says what it computes on one process.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import TargetError
from .semantics import Semantics
from .styles.seed import SEED_NAMES

__all__ = ["AUTO", "SEED_NAMES", "STEP_ATTRIBUTE", "Target", "TargetSpec", "load_step", "load_target"]

AUTO = "auto"


#: A target module may name the step function the ``step`` kind drives (the planted step
#: faults do); ``--step`` overrides it, and without either the kind runs the reference's.
STEP_ATTRIBUTE = "DINO_HARNESS_STEP"


@dataclass(frozen=True)
class TargetSpec:
    """Picklable description of a target; every rank loads it again by this."""

    impl: str = "harness.losses"
    api: str = AUTO  # a style name; "auto" only before the parent resolved it
    adapter: str | None = None  # a user's style file (--adapter)
    step: str | None = None  # a user's step function (--step FILE.py:function)


class Target:
    """The seed-API namespace of a loaded target, its style, semantics and contracts."""

    def __init__(self, spec: TargetSpec, module: Any, api: Any, style: Any, choice: str) -> None:
        self.spec = spec
        self.module = module
        self.api = api  # an object with the seed API names as attributes
        self.style = style
        self.semantics: Semantics = style.semantics
        self.contracts: frozenset[str] = frozenset(style.contracts(module))
        self.choice = choice  # how the style was chosen, in words
        #: The step function the step kind drives (None: the reference's).
        self.step: Any = (load_step(spec.step) if spec.step
                          else getattr(module, STEP_ATTRIBUTE, None))

    def describe(self) -> dict[str, Any]:
        return {"impl": self.spec.impl, "api": self.spec.api, "adapter": self.spec.adapter,
                "step": self.spec.step, "file": getattr(self.module, "__file__", None)}


def load_target(impl: str = "harness.losses", api: str = AUTO,
                adapter: str | None = None, step: str | None = None) -> Target:
    adapter = str(Path(adapter).expanduser().resolve()) if adapter else None
    return _load(TargetSpec(_normalise_impl(impl), api, adapter,
                            _normalise_impl(step) if step else None))


def load_step(spec: str) -> Any:
    """A step function, ``FILE.py:function`` or ``module:function`` (README, "Check your
    own training step"); exit 2 naming what is wrong."""
    where, sep, name = spec.partition(":")
    if not sep or not name:
        raise TargetError(f"--step {spec!r}: expected FILE.py:function or module:function")
    try:
        module = (_import_file(where) if where.endswith(".py") or "/" in where
                  else _import_module(where))
    except TargetError as exc:
        raise TargetError(f"--step {spec!r}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise TargetError(f"--step {spec!r}: {where} has no function {name!r}")
    return function


@functools.cache
def _load(spec: TargetSpec) -> Target:
    from . import styles

    module = _import(spec.impl)
    if spec.adapter:
        style = styles.load_adapter(spec.adapter)
        match = style.match(module)
        how = f"--adapter {spec.adapter}"
    elif spec.api == AUTO:
        style, match = styles.detect(module, spec.impl)
        how = "--api auto"
    else:
        style = styles.get(spec.api)
        match = style.match(module)
        how = f"--api {spec.api}"
    if not match.fits:
        where = getattr(module, "__file__", None) or spec.impl
        raise TargetError(f"target {spec.impl!r} ({where}) does not fit the {style.name} style "
                          f"({how}): {match.text()}")
    resolved = TargetSpec(spec.impl, style.name, spec.adapter, spec.step)
    return Target(resolved, module, style.adapt(module), style,
                  f"style {style.name} ({how}; {match.text()})")


def _normalise_impl(impl: str) -> str:
    path, sep, attr = impl.partition(":")
    if path.endswith(".py") or "/" in path or path.startswith("."):
        path = str(Path(path).expanduser().resolve())
    return path + sep + attr


def _import(impl: str) -> Any:
    """The module (or the one attribute ``:attr`` selects, as a namespace of its own)."""
    where, _, attr = impl.partition(":")
    module = _import_file(where) if where.endswith(".py") or "/" in where else _import_module(where)
    if not attr:
        return module
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"target {impl!r}: {where} has no attribute {attr!r} (it has "
                              f"{', '.join(n for n in dir(obj) if not n.startswith('_'))})")
        obj = getattr(obj, part)
    if isinstance(obj, type) or callable(obj):  # a class: the namespace holds just it
        return types.SimpleNamespace(**{attr.rpartition(".")[2]: obj},
                                     __file__=getattr(module, "__file__", None))
    return obj


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise TargetError(
            f"cannot import target module {name!r}: {exc}. Looked for it as a module on "
            "sys.path; pass a .py file path to load a file"
        ) from exc
    except Exception as exc:
        raise TargetError(f"importing target module {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _package_root(path: Path) -> tuple[Path, str] | None:
    """(the folder to put on sys.path, the dotted module name) of a file in a package."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return (folder, ".".join(parts)) if len(parts) > 1 else None


def _import_file(impl: str) -> ModuleType:
    path = Path(impl)
    if not path.is_file():
        raise TargetError(f"target file {impl!r} does not exist (looked for a .py file there)")
    package = _package_root(path)
    if package is not None:
        return _import_package_member(path, *package)
    import hashlib

    name = "dino_harness_target_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    return _exec_file(path, name)


def _import_package_member(path: Path, root: Path, dotted: str) -> ModuleType:
    """A file of a package, as that package's module. Its packages' ``__init__`` files
    run as usual; when one of them fails (a heavy dependency the loss file does not
    need), the packages are set up without running their ``__init__`` instead."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module(dotted)
    except Exception as first:
        packages = dotted.split(".")[:-1]
        for name in [".".join(packages[:i]) for i in range(1, len(packages) + 1)]:
            if name in sys.modules and getattr(sys.modules[name], "__path__", None) is None:
                continue
            stub = types.ModuleType(name)
            stub.__path__ = [str(root.joinpath(*name.split(".")))]
            sys.modules[name] = stub
        sys.modules.pop(dotted, None)
        try:
            return importlib.import_module(dotted)
        except Exception as exc:
            raise TargetError(
                f"importing target file {str(path)!r} as {dotted} failed: "
                f"{type(first).__name__}: {first}; and without running its packages' "
                f"__init__: {type(exc).__name__}: {exc}") from exc


def _exec_file(path: Path, name: str) -> ModuleType:
    file_spec = importlib.util.spec_from_file_location(name, path)
    if file_spec is None or file_spec.loader is None:
        raise TargetError(f"cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    try:
        file_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TargetError(f"importing target file {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    return module
