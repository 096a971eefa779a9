"""The validated case: one frozen dataclass whose fields are the schema's keys.

Field defaults come from the schema, and an import-time check keeps the field names equal
to the schema's keys, so a key is declared in one place only. Kind-specific facts (the
tensors, the gradient bound) come from the case's kind (``harness.kinds``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from . import kind as kinds
from .data import LogitsSpec, generate
from .schema import KEYS, default
from .sharding import check_world_size, per_rank, shard
from .tolerances import tolerance


@dataclass(frozen=True)
class Case:
    """One validated correctness case. Build it with ``load_cases`` or :meth:`from_dict`.

    ``batch_per_rank`` / ``masked_per_rank`` / ``images_per_rank`` are tuples (an int
    ``n`` in the file is ``(n,)``), ``mask_ratio`` a tuple of ``(lo, hi)``; rank ``r``
    gets ``sizes[r % len(sizes)]``. ``comms`` maps an API call to
    ``(base, per_iteration)``; use :meth:`max_collectives`.
    """

    name: str
    kind: str
    source: str = "<dict>"
    description: str = default("description")
    K: int = default("K")  # noqa: N815 - the paper's name
    views_student: int = default("views_student")
    views_teacher: int = default("views_teacher")
    batch_per_rank: tuple[int, ...] = default("batch_per_rank")
    masked_per_rank: tuple[int, ...] = default("masked_per_rank")
    images_per_rank: tuple[int, ...] = default("images_per_rank")
    patches_per_image: int = default("patches_per_image")
    mask_ratio: tuple[tuple[float, float], ...] = default("mask_ratio")
    teacher_dtype: str = default("teacher_dtype")
    student_dtype: str = default("student_dtype")
    student_temp: float = default("student_temp")
    teacher_temp: float = default("teacher_temp")
    momentum: float = default("momentum")
    steps: int = default("steps")
    updates_per_apply: int = default("updates_per_apply")
    teacher_2d: bool = default("teacher_2d")
    n_iterations: int = default("n_iterations")
    num_samples: str = default("num_samples")
    teacher_norm: str = default("teacher_norm")
    logits: LogitsSpec = field(default_factory=LogitsSpec)
    dino_weight: float = default("dino_weight")
    ibot_weight: float = default("ibot_weight")
    world_sizes: tuple[int, ...] = default("world_sizes")
    backends: tuple[str, ...] = default("backends")
    tolerances: dict[str, float] = field(default_factory=dict, hash=False, compare=True)
    comms: dict[str, tuple[int, int]] = field(default_factory=dict, hash=False, compare=True)
    expect_error: str | None = default("expect_error")
    seed: int = 0
    deadline_s: float = default("deadline_s")

    # -- sharding ----------------------------------------------------------------------
    def batch_sizes(self, world_size: int) -> list[int]:
        """Per-rank B (rows per rank when ``teacher_2d``): rank r gets list[r % len]."""
        return per_rank(self.batch_per_rank, world_size)

    def masked_counts(self, world_size: int) -> list[int]:
        """Per-rank number of masked patches M_r."""
        return per_rank(self.masked_per_rank, world_size)

    def image_counts(self, world_size: int) -> list[int]:
        """Per-rank number of images (rows of the patch mask)."""
        return per_rank(self.images_per_rank, world_size)

    def tensor_names(self) -> tuple[str, ...]:
        """The keys :meth:`global_data` returns for this kind."""
        return tuple(kinds.get(self.kind).tensors)

    def _tensor(self, tensor: str) -> kinds.Tensor:
        spec = kinds.get(self.kind).tensors.get(tensor)
        if spec is None:
            raise ValueError(f"unknown tensor {tensor!r} for a {self.kind!r} case "
                             f"(it has {', '.join(self.tensor_names())})")
        return spec

    def sample_axis(self, tensor: str) -> int:
        """The axis of ``tensor`` that ranks shard (its second-to-last axis)."""
        return len(self._tensor(tensor).lead(self))

    def shard_sizes(self, tensor: str, world_size: int) -> list[int]:
        """Per-rank sizes along :meth:`sample_axis` of ``tensor``."""
        spec = self._tensor(tensor)
        if spec.sizes is not None:  # the kind's own layout (counts = "layout")
            return list(spec.sizes(self, world_size))
        if spec.counts == "batch":
            return self.batch_sizes(world_size)
        return self.masked_counts(world_size)

    def global_count(self, tensor: str, world_size: int) -> int:
        return sum(self.shard_sizes(tensor, world_size))

    def dtype_of(self, tensor: str) -> str:
        """The dtype name ``tensor`` is given to the target in."""
        return self.teacher_dtype if self._tensor(tensor).role == "teacher" else self.student_dtype

    def torch_dtype_name(self, which: str = "teacher") -> str:
        """``"float32"`` / ``"bfloat16"`` / ``"float16"``: ``getattr(torch, name)`` gives the
        dtype. ``which`` is "teacher", "student" or a tensor name of :meth:`global_data`."""
        if which == "teacher":
            return self.teacher_dtype
        if which == "student":
            return self.student_dtype
        return self.dtype_of(which)

    # -- data --------------------------------------------------------------------------
    def global_data(self, world_size: int) -> dict[str, np.ndarray]:
        """The global batch for ``world_size``: float64 arrays ``[*lead, samples, K]``,
        exact in their dtype (the tensors of ``cases/README.md``)."""
        check_world_size(world_size)
        out = {}
        for name, spec in kinds.get(self.kind).tensors.items():
            out[name] = generate(self.logits, self.seed, spec.id, spec.lead(self),
                                 self.global_count(name, world_size), self.K, self.dtype_of(name))
        return out

    def local_data(self, world_size: int, rank: int) -> dict[str, np.ndarray]:
        """Rank ``rank``'s shard of every tensor of :meth:`global_data`."""
        check_world_size(world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        return {
            name: shard(arr, self.shard_sizes(name, world_size), rank, self.sample_axis(name))
            for name, arr in self.global_data(world_size).items()
        }

    # -- checks ------------------------------------------------------------------------
    def tolerance(self, quantity: str) -> float:
        """The tolerance of ``quantity`` (center, probs, sinkhorn, loss, grad): see
        ``tolerances.tolerance`` and the measurements there."""
        return tolerance(self, quantity)

    def grad_bound(self) -> float:
        """The largest |d loss / d student logit| this case can produce at any of its world
        sizes (the scale gradients are compared at; 1.0 for kinds without a loss)."""
        bounds = kinds.get(self.kind).grad_bounds
        return (max(bounds(self), default=1.0) if bounds else 1.0) or 1.0

    def max_collectives(self, call: str) -> int:
        """The most collectives one ``call`` may issue (comms cases)."""
        if call not in self.comms:
            raise KeyError(f"case {self.name!r} bounds no collectives of {call!r}")
        base, per_iteration = self.comms[call]
        return base + per_iteration * self.n_iterations

    def applies_to(self, backend: str, world_size: int) -> bool:
        return backend in self.backends and world_size in self.world_sizes

    def test_id(self, backend: str, world_size: int) -> str:
        """``name[backend-wsN]``, as in harness.results.CaseResult.test_id."""
        return f"{self.name}[{backend}-ws{world_size}]"

    @property
    def n_pairs(self) -> int:
        """CLS (student, teacher) view pairs with s != t."""
        return self.views_student * self.views_teacher - min(self.views_student, self.views_teacher)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field (for reports and for other processes)."""
        d: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, LogitsSpec):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif name == "comms":
                value = {k: {"base": b, "per_iteration": p} for k, (b, p) in value.items()}
            elif isinstance(value, dict):
                value = dict(value)
            d[name] = value
        return d


_FIELDS = [f.name for f in fields(Case) if f.name != "source"]
if _FIELDS != list(KEYS):  # pragma: no cover - a developer error, caught by any import
    raise RuntimeError(f"Case fields {_FIELDS} differ from the schema's keys {list(KEYS)}")


def expand(cases: Iterable[Case], backends: Sequence[str] | None = None,
           world_sizes: Sequence[int] | None = None) -> list[tuple[Case, str, int]]:
    """Every (case, backend, world size) to run: the requested ones (None: each case's
    own lists) that the case itself allows, in case, then backend, then world-size order."""
    out: list[tuple[Case, str, int]] = []
    for case in cases:
        for backend in backends if backends is not None else case.backends:
            for w in world_sizes if world_sizes is not None else case.world_sizes:
                if case.applies_to(backend, w):
                    out.append((case, backend, w))
    return out
