"""Record every collective a rank issues, at the dispatcher, per API call.

A TorchDispatchMode sees the c10d ops however the target reaches them
(``dist.all_reduce``, ``from torch.distributed import all_reduce``, async or not), the
same mechanism CommDebugMode uses -- but this one keeps the order, sizes, dtypes and
reduce op, which is what ranks must agree on.
"""

from __future__ import annotations

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


class CollectiveRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[Collective]] = {}
        self._current: list[Collective] | None = None

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
