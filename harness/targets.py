"""Load the implementation under test and present it through the seed API.

A target is a module name (``harness.losses``, ``pkg.module``) or a ``.py`` file path.
``--api seed`` uses the module's own seed-API names; ``--api dinov2`` / ``--api dinov3``
wrap a ``DINOLoss`` class written in those codebases' published styles (see adapters.py),
each with its own single-process semantics for the oracle (``Semantics``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import TargetError
from .semantics import Semantics

SEED_NAMES = ("cross_entropy_loss", "sinkhorn_knopp", "DINOv1Loss", "iBOTPatchLoss", "DINOv2Loss")
APIS = ("seed", "dinov2", "dinov3")


@dataclass(frozen=True)
class TargetSpec:
    """Picklable description of a target; every rank loads it again by this."""

    impl: str = "harness.losses"
    api: str = "seed"


class Target:
    """The seed API of a loaded target, plus its semantics."""

    def __init__(self, spec: TargetSpec, module: ModuleType, api: Any, semantics: Semantics):
        self.spec = spec
        self.module = module
        self.api = api  # an object with the seed API names as attributes
        self.semantics = semantics

    def describe(self) -> dict[str, Any]:
        return {"impl": self.spec.impl, "api": self.spec.api,
                "file": getattr(self.module, "__file__", None)}


def load_target(impl: str = "harness.losses", api: str = "seed") -> Target:
    spec = TargetSpec(_normalise_impl(impl), api)
    return _load(spec)


@functools.cache
def _load(spec: TargetSpec) -> Target:
    if spec.api not in APIS:
        raise TargetError(f"unknown --api {spec.api!r}: expected one of {', '.join(APIS)}")
    module = _import(spec.impl)
    if spec.api == "seed":
        missing = [name for name in SEED_NAMES if not hasattr(module, name)]
        if missing:
            raise TargetError(
                f"target {spec.impl!r} ({getattr(module, '__file__', '?')}) lacks the seed API "
                f"name(s) {', '.join(missing)}; looked for {', '.join(SEED_NAMES)}"
            )
        return Target(spec, module, module, Semantics())
    from .adapters import adapt  # imports torch: only for the non-seed styles

    api, semantics = adapt(spec.api, module, spec.impl)
    return Target(spec, module, api, semantics)


def _normalise_impl(impl: str) -> str:
    if impl.endswith(".py") or "/" in impl or impl.startswith("."):
        return str(Path(impl).expanduser().resolve())
    return impl


def _import(impl: str) -> ModuleType:
    if impl.endswith(".py") or "/" in impl:
        path = Path(impl)
        if not path.is_file():
            raise TargetError(f"target file {impl!r} does not exist (looked for a .py file there)")
        name = "dino_harness_target_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        if name in sys.modules:
            return sys.modules[name]
        file_spec = importlib.util.spec_from_file_location(name, path)
        if file_spec is None or file_spec.loader is None:
            raise TargetError(f"cannot load {impl!r} as a Python module")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise TargetError(f"importing target file {impl!r} failed: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(impl)
    except ModuleNotFoundError as exc:
        raise TargetError(
            f"cannot import target module {impl!r}: {exc}. Looked for it as a module on "
            "sys.path; pass a .py file path to load a file"
        ) from exc
    except Exception as exc:
        raise TargetError(f"importing target module {impl!r} failed: {type(exc).__name__}: {exc}") from exc
