"""Rank programs: how a "package.module:function" string becomes a call, and how its
result and errors travel back to the parent.

Programs are named by import path, not pickled as functions: a warm worker imports the
module once and the parent never has to ship code (closures and lambdas cannot cross
a process boundary anyway).
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import Any

from harness.results import RankError


def resolve_program(program: str) -> Callable[..., Any]:
    """Import "package.module:function" (or "package.module:Class.attribute")."""
    module_name, sep, attr_path = program.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"program must look like 'package.module:function', got {program!r}")
    if module_name == "__main__":
        raise ValueError(
            f"program {program!r} lives in __main__, which a worker cannot import; "
            "move it into an importable module"
        )
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"program {program!r} is not callable")
    return obj


def to_cpu(obj: Any) -> Any:
    """Move every tensor in a (nested list / tuple / dict) result to the CPU, detached.

    The parent may have no GPU context (and should not need one) to unpickle results.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        items = [to_cpu(v) for v in obj]
        if hasattr(obj, "_fields"):  # namedtuple
            return type(obj)(*items)
        return tuple(items)
    return obj


def error_from_exception(rank: int, exc: BaseException) -> RankError:
    """A RankError with the exception's qualified type name and full traceback."""
    cls = type(exc)
    module = cls.__module__
    name = cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    return RankError(
        rank=rank,
        type=name,
        message=str(exc) or cls.__qualname__,
        traceback="".join(traceback.format_exception(cls, exc, exc.__traceback__)),
    )
