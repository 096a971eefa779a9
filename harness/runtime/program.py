"""Rank programs: how a "package.module:function" string becomes a call, and how its
result and errors travel back to the parent.

Programs are named by import path, not pickled as functions: a warm worker imports the
module once and the parent never has to ship code (closures and lambdas cannot cross
a process boundary anyway).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable
from typing import Any

from harness.results import RankError

Program = str | Callable[..., Any]
"""A "package.module:function" string, or a top-level function (named by its module and
qualified name, which is what crosses the process boundary)."""


def program_ref(program: Program) -> str:
    """The "module:qualname" a rank imports ``program`` by; raises (in the parent, before
    any rank runs) for what a rank cannot import: a lambda, a closure, a local function,
    anything in ``__main__``."""
    if isinstance(program, str):
        return program
    module = getattr(program, "__module__", None)
    qualname = getattr(program, "__qualname__", None)
    if not callable(program) or not module or not qualname:
        raise TypeError(f"a program is a top-level function or a 'module:function' string, "
                        f"got {program!r}")
    where = f"{module}.{qualname}"
    if "<lambda>" in qualname or "<locals>" in qualname:
        what = "a lambda" if "<lambda>" in qualname else "a local function or closure"
        raise ValueError(
            f"{where} is {what}: the ranks are other processes and import a program by its "
            "module and name, so it must be defined at the top level of an importable module "
            "(its inputs go in the payload argument, not in captured variables)"
        )
    if module == "__main__":
        raise ValueError(f"{where} lives in __main__, which a rank cannot import; move it "
                         "into an importable module")
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not program:
        raise ValueError(f"{where} is not reachable under that name (decorated, renamed or "
                         "replaced?); pass it as a 'module:function' string instead")
    return f"{module}:{qualname}"


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


def call_program(ctx: Any, program: str, payload: Any, *, pickled: bool = False
                 ) -> tuple[str, Any]:
    """Run ``program(ctx, payload)`` on this rank; never raises.

    Returns ("ok", the result moved to the CPU) or ("error", a RankError). Pool workers and
    torchrun ranks both call this, so a program sees the same world either way: the
    caller's default dtype and grad mode are restored afterwards (one program cannot change
    the next one's numerics on a warm rank), and CUDA work is synchronised inside the run so
    that asynchronous errors are reported against the program that caused them.
    ``pickled``: ``payload`` is the pickled bytes (a bad payload is then this run's error).
    """
    import pickle

    import torch

    dtype = torch.get_default_dtype()
    grad = torch.is_grad_enabled()
    try:
        fn = resolve_program(program)
        result = fn(ctx, pickle.loads(payload) if pickled else payload)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        return "ok", to_cpu(result)
    except BaseException as exc:  # SystemExit / KeyboardInterrupt in a program are errors too
        return "error", error_from_exception(ctx.rank, exc)
    finally:
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)


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
