"""Record every collective a rank issues, at the dispatcher, per API call.

A TorchDispatchMode sees the c10d ops however the target reaches them
(``dist.all_reduce``, ``from torch.distributed import all_reduce``, async or not), the
same mechanism CommDebugMode uses -- but this one keeps the order, sizes, dtypes and
reduce op, which is what ranks must agree on.

Why ``_should_skip_dynamo`` is overridden: by default torch wraps every
``TorchDispatchMode.__torch_dispatch__`` in ``torch._disable_dynamo``, whose first call
imports ``torch._dynamo`` -- 1.7 s of CPU on a 2-core machine, paid by every rank of the
first case that records (it made ``comms-update-center`` take 2-6 s). Disabling dynamo
only matters while dynamo is compiling, and then it has been imported:
:func:`_dynamo_disabled` applies the disable only in that case.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


@dataclass
class Collective:
    op: str
    numel: int
    dtype: str
    reduce_op: str | None = None

    def key(self) -> tuple[str, int, str, str | None]:
        return (self.op, self.numel, self.dtype, self.reduce_op)

    def __str__(self) -> str:
        red = f" {self.reduce_op}" if self.reduce_op else ""
        return f"{self.op}({self.numel} x {self.dtype}{red})"


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _dynamo_disabled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run with dynamo disabled when dynamo is loaded (it may be compiling the
    caller), and plainly otherwise, without importing it (see the module docstring)."""
    disabled: list[Callable[..., Any]] = []  # built once, when dynamo is first seen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        dynamo = sys.modules.get("torch._dynamo")
        if dynamo is None:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(dynamo.disable(fn, recursive=True))
        return disabled[0](*args, **kwargs)

    return call


class CollectiveRecorder(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # __torch_dispatch__ does it itself, lazily: _dynamo_disabled

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[Collective]] = {}
        self._current: list[Collective] | None = None

    @_dynamo_disabled
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "c10d" and self._current is not None:
            first = args[0] if args else None
            tensors = _tensors(first)
            reduce_op = next((str(a).rsplit(".", 1)[-1] for a in args
                              if type(a).__name__ in ("ReduceOp", "RedOpType")), None)
            self._current.append(Collective(
                op=func._opname if hasattr(func, "_opname") else str(func.overloadpacket),
                numel=sum(t.numel() for t in tensors),
                dtype=str(tensors[0].dtype).replace("torch.", "") if tensors else "-",
                reduce_op=reduce_op,
            ))
        return func(*args, **kwargs)

    @contextmanager
    def section(self, name: str):
        calls: list[Collective] = self.sections.setdefault(name, [])
        previous, self._current = self._current, calls
        try:
            yield calls
        finally:
            self._current = previous


@dataclass
class CommsLog:
    sections: dict[str, list[tuple[str, int, str, str | None]]] = field(default_factory=dict)
