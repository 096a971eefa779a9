"""What a style is: how to recognise a codebase's loss API, and how to drive it.

A style turns a target module into the *seed-API namespace* the case kinds call
(``DINOv1Loss``, ``sinkhorn_knopp``, ``iBOTPatchLoss``, ...) by wrapping the real objects,
and tells the float64 oracle what that codebase computes on one process
(:class:`~harness.semantics.Semantics`). The distributed check, N ranks against one
process on the concatenated batch, is the same for every style.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..semantics import Semantics


@dataclass(frozen=True)
class Mark:
    """One thing a style looks for: ``obj`` in the module, with these parameter names on
    its constructor (``init``) and these methods, each with these parameters (``methods``)."""

    obj: str
    init: tuple[str, ...] = ()
    methods: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def look(self, module: ModuleType) -> tuple[list[str], list[str]]:
        """(what was found, what was missing), in words."""
        found: list[str] = []
        missing: list[str] = []
        target = getattr(module, self.obj, None)
        if target is None:
            return found, [self.obj]
        found.append(self.obj)
        if self.init:
            have = parameters(target)
            lacking = [p for p in self.init if p not in have]
            (missing if lacking else found).append(
                f"{self.obj}({', '.join(self.init)})"
                + (f" [lacks {', '.join(lacking)}; has {', '.join(have) or 'none'}]"
                   if lacking else ""))
        for method, params in self.methods.items():
            fn = getattr(target, method, None)
            if fn is None:
                missing.append(f"{self.obj}.{method}")
                continue
            have = parameters(fn)
            lacking = [p for p in params if p not in have]
            (missing if lacking else found).append(
                f"{self.obj}.{method}({', '.join(params)})"
                + (f" [has {', '.join(have) or 'none'}]" if lacking else ""))
        return found, missing


@dataclass(frozen=True)
class Match:
    style: str
    found: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return not self.missing

    def text(self) -> str:
        if self.fits:
            return f"{self.style}: found {', '.join(self.found)}"
        return (f"{self.style}: found {', '.join(self.found) or 'none of its names'}; "
                f"lacks {', '.join(self.missing)}")


#: Reference contracts beyond the distributed one, which a style checks only where its own
#: source promises them (the case kinds ask :func:`required_contract`).
CONTRACTS = {
    "raises": "raises the expected exception on a bad input",
    "updates_accumulate": "two update_center calls before one apply combine both batches",
    "teacher_2d": "a 2-D [N, K] teacher is one view of N rows",
    "num_samples_none": "num_samples=None is inferred",
    "float32_compute": "low-precision (bf16/fp16) inputs are computed on in float32",
}


def required_contract(case: Any) -> str | None:
    """The reference contract a case checks, if any."""
    if case.expect_error:
        return "raises"
    if getattr(case, "updates_per_apply", 1) > 1:
        return "updates_accumulate"
    if getattr(case, "teacher_2d", False):
        return "teacher_2d"
    if getattr(case, "num_samples", None) == "none":
        return "num_samples_none"
    if (case.teacher_dtype != "float32" and case.kind in ("centering", "patch_centering")) or (
            getattr(case, "student_dtype", "float32") != "float32" and case.kind != "sinkhorn"):
        return "float32_compute"
    return None


@dataclass(frozen=True)
class Style:
    """One codebase's API style. ``adapt(module)`` returns the seed-API namespace;
    ``contracts(module)`` the reference contracts this target promises (see CONTRACTS)."""

    name: str
    summary: str
    marks: tuple[Mark, ...]
    adapt: Callable[[ModuleType], Any]
    semantics: Semantics = Semantics()
    contracts: Callable[[ModuleType], frozenset[str]] = lambda module: frozenset()
    #: Detection order among styles whose marks all fit: the more specific first.
    specificity: int = 0

    def match(self, module: ModuleType) -> Match:
        found: list[str] = []
        missing: list[str] = []
        for mark in self.marks:
            f, m = mark.look(module)
            found += f
            missing += m
        return Match(self.name, tuple(found), tuple(missing))


def parameters(obj: Any) -> list[str]:
    """Parameter names of a callable (a class: its ``__init__``), ``self`` left out."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters if p != "self"]


def namespace(**names: Any) -> Any:
    """A seed-API namespace: only the names a style can really provide (a case kind whose
    names are missing is skipped with the reason)."""
    from types import SimpleNamespace

    return SimpleNamespace(**{k: v for k, v in names.items() if v is not None})
