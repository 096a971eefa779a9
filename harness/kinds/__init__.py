"""The case kinds: one module per kind, each with a module-level ``KIND`` (a
``harness.cases.kind.Kind``: its keys, tensors, seed-API names, rank program, verifier).

Importing this package finds every public module in it and registers its kind with
``harness.cases.kind``, which case validation, the runner and :func:`run` ask. Adding a
kind is adding a module here (plus its TOML file). Kind modules keep torch out of their
top level (they import it inside the functions that run on the ranks), so reading case
files stays light.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..cases import kind as registry
from ..cases.schema import KEYS


def discover() -> None:
    """Register the kind of every public module of this package (``__path__``)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        kind = importlib.import_module(f"{__name__}.{info.name}").KIND
        if kind.name != info.name:
            raise RuntimeError(f"harness.kinds.{info.name} declares kind {kind.name!r}")
        if unknown := sorted(kind.keys - KEYS.keys()):
            raise RuntimeError(f"kind {kind.name!r} lists keys not in the schema: {unknown}")
        registry.register(kind)


def refresh() -> None:
    """Forget every kind and look again (after a module was added to ``__path__``)."""
    registry.forget()
    discover()


def run(ctx: Any, job: Any) -> dict[str, Any]:
    """The SPMD entry point every rank runs for a case (``checks.runner.PROGRAM``): the
    case's kind program; an expected exception is a result, not a failure."""
    from ..checks.job import process_groups  # torch: on the ranks only

    program = registry.get(job.case.kind).rank_program
    with process_groups(job):
        if not job.case.expect_error:
            return program(ctx, job)
        try:
            program(ctx, job)
        except Exception as exc:  # noqa: BLE001 - the case names what it expects
            return {"raised": type(exc).__name__, "message": str(exc)}
    return {"raised": None, "message": "returned normally"}


discover()
KINDS: tuple[str, ...] = registry.kind_names()
