"""The validated case: one frozen dataclass, each case-file key one field of it.

A key is declared once, here: its name, type, default, validator, doc, and whether every
kind has it (``common``). ``schema.KEYS``, the loader and the key table of
``cases/README.md`` are read from these fields. Adding a key is one field::

    warmup_steps: int = key(0, v.v_int(0), "steps before the center is applied")
    layout: Layout = key("flat", v.v_enum(LAYOUTS), "process groups", common=True)

(``key(default, validator, doc, common=..., default_doc=...)``; a closed set of values
is a ``Literal`` in ``choices.py`` plus its ``get_args`` tuple; a sub-table is
:func:`~.keys.table`; a validator of its own goes in ``keys.py``). The kinds it applies
to list it in their ``keys`` (a ``common`` key applies to every kind); paste
``schema.markdown_table()`` into ``cases/README.md`` (a unit test compares them). The
field order is the table's order. Kind-specific facts (the tensors, the gradient
bound) come from the case's kind (``harness.kinds``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import keys
from . import kind as kinds
from . import validate as v
from .choices import (
    BACKENDS,
    DTYPES,
    NUM_SAMPLES,
    QUANTITIES,
    TEACHER_NORMS,
    Backend,
    CommsCall,
    Dtype,
    NumSamples,
    Quantity,
    TeacherNorm,
)
from .data import LogitsSpec, default_seed, generate
from .keys import key, keys_of, table
from .sharding import check_world_size, micro_split, per_rank, shard_range
from .tolerances import Tolerance, tolerance
from .validate import MISSING


@dataclass(frozen=True)
class Case:
    """One validated correctness case. Build it with ``load_cases`` or ``case_from_table``.

    ``batch_per_rank`` / ``masked_per_rank`` / ``images_per_rank`` are tuples (an int
    ``n`` in the file is ``(n,)``), ``mask_ratio`` a tuple of ``(lo, hi)``; rank ``r``
    gets ``sizes[r % len(sizes)]``. ``comms`` maps an API call to
    ``(base, per_iteration)``; use :meth:`max_collectives`. Every field but ``source``
    is a case-file key.
    """

    name: str = key(MISSING, v.v_name, "unique across all loaded files; start it with the kind "
                    "so `-k sinkhorn` selects it; not allowed in `[defaults]`", common=True)
    kind: str = key(MISSING, v.v_enum(kinds.kind_names), "what the case checks: a module of "
                    "`harness/kinds/`", common=True)
    source: str = "<dict>"  # the file it came from: not a key
    description: str = key("", v.v_str, "one line", common=True)
    K: int = key(128, v.v_int(1), "prototypes (koleo: the feature dimension D; step: also the "
                 "width of the heads' inputs and hidden features)", common=True)  # noqa: N815 - the paper's name
    views_student: int = key(4, v.v_int(1), "S, student views")
    views_teacher: int = key(2, v.v_int(1), "T, teacher views")
    batch_per_rank: tuple[int, ...] = key(
        (8,), keys.sizes, "samples per rank: one int for every rank, or a list, rank r gets "
        "`list[r % len]`", default_doc="`8`")
    masked_per_rank: tuple[int, ...] = key(
        (16,), keys.sizes, "masked patches per rank, same rules", default_doc="`16`")
    images_per_rank: tuple[int, ...] = key(
        (4,), keys.sizes, "images per rank (the rows of the `[images, N]` patch mask a rank's "
        "loss gets), same rules", default_doc="`4`")
    patches_per_image: int = key(16, v.v_int(1), "N, patches per image (the columns of the mask)")
    mask_ratio: tuple[tuple[float, float], ...] = key(
        ((0.1, 0.5),), keys.mask_ratio, "each image masks `floor(N * u)` of its N patches (at "
        "random places), u uniform in `[lo, hi]`, drawn from the seed and the image's global "
        "index (the same image gets the same mask at every world size); an array of pairs "
        "gives rank r's images `list[r % len]`", default_doc="`[0.1, 0.5]`")
    teacher_dtype: Dtype = key("float32", v.v_enum(DTYPES), "dtype of the teacher tensors",
                               common=True)
    student_dtype: Dtype = key("float32", v.v_enum(DTYPES), "dtype of the student tensors")
    student_temp: float = key(0.1, keys.POSITIVE, "student temperature")
    teacher_temp: float = key(0.04, keys.POSITIVE, "teacher temperature", common=True)
    momentum: float = key(0.9, v.v_num(0.0, 1.0, hi_open=True), "center EMA momentum")
    steps: int = key(5, v.v_int(1), "training steps")
    updates_per_apply: int = key(1, v.v_int(1), "`update_center` calls per "
                                 "`apply_center_update`")
    micro_batches: int | tuple[tuple[int, ...], ...] = key(
        1, keys.micro_batches, "micro-batches per optimizer step (gradient accumulation): each "
        "rank cuts its shard (centering: of every update) into M consecutive micro-batches of "
        "`ceil(n / M)` rows, the last ones shorter (empty where M > n), and calls the target "
        "once per micro-batch; or their sizes, which must add up to each rank's count. The "
        "golden is one step on the whole batch: see below")
    teacher_2d: bool = key(False, v.v_bool, "teacher as `[N, K]` rows instead of `[T, B, K]`; "
                           "then `views_teacher` does not apply and `batch_per_rank` counts rows")
    n_iterations: int = key(3, v.v_int(1), "Sinkhorn iterations")
    num_samples: NumSamples = key("global_int", v.v_enum(NUM_SAMPLES), "the sample count a "
                                  "check passes to the Sinkhorn call, see below")
    teacher_norm: TeacherNorm = key(
        "sinkhorn", v.v_enum(TEACHER_NORMS), "teacher probs of the loss cases: `sinkhorn` (the "
        "target's Sinkhorn over the global batch) or `softmax` (plain `softmax(logits / "
        "teacher_temp)`, no collective); with `softmax`, `n_iterations` / `num_samples` do not "
        "apply")
    logits: LogitsSpec = table(
        LogitsSpec, v.v_sub_table({name: k.check for name, k in keys_of(LogitsSpec).items()}),
        "how logits are drawn, sub-table below", common=True, default_doc="see below")
    dino_weight: float = key(1.0, v.v_num(), "weight of the DINO (CLS) loss")
    ibot_weight: float = key(1.0, v.v_num(), "weight of the iBOT (patch) loss")
    koleo_weight: float = key(0.0, v.v_num(), "weight of the KoLeo loss on the student's CLS "
                              "features of each global crop (0: no KoLeo)")
    ema_momentum: float = key(0.9, v.v_num(0.0, 1.0, hi_open=True), "teacher EMA momentum: "
                              "`teacher = m * teacher + (1 - m) * student` after each optimizer "
                              "step")
    lr: float = key(0.05, keys.POSITIVE, "the student's SGD learning rate")
    koleo_topk: int = key(1, v.v_int(1), "KoLeo neighbours per sample: its k nearest in its "
                          "neighbour set")
    koleo_group_size: int | None = key(
        None, v.v_int(2), "KoLeo neighbour sets of this many consecutive global samples "
        "(DINOv3's `loss_group_size`; the last may be shorter)", default_doc="none: the whole "
        "global batch")
    world_sizes: tuple[int, ...] = key((1, 2, 3, 4), keys.world_sizes,
                                       "world sizes the case runs at", common=True)
    group_size: int | None = key(
        None, v.v_int(1), "ranks per process group: the world splits into consecutive groups "
        "of this many ranks (rank r in group r // group_size), each handed to the target as "
        "its process group; the golden is the same computation per group. Every world size "
        "must be a multiple of it", default_doc="none: one group, the whole world")
    backends: tuple[Backend, ...] = key(BACKENDS, keys.backends, "backends the case runs on",
                                        common=True)
    tolerances: dict[Quantity, float] = table(
        dict, v.v_sub_table({q: keys.POSITIVE for q in QUANTITIES}, "unknown quantity"),
        "`{quantity = number > 0}` overriding the defaults; quantities "
        + " ".join(f"`{q}`" for q in QUANTITIES), common=True, default_doc="the defaults below")
    comms: dict[CommsCall, tuple[int, int]] = table(
        dict, keys.comms, "`{API call = max collectives}`, below", default_doc="required")
    expect_error: str | None = key(None, v.v_exception, "exception class name: the case passes "
                                   "iff the target raises it", common=True, default_doc="none")
    seed: int | None = key(None, v.v_int(0), "seed of the case's data", common=True,
                           default_doc="from SHA-256 of the name: the same in every process")
    deadline_s: float = key(60.0, keys.POSITIVE, "seconds a run of the case may take",
                            common=True)

    def __post_init__(self) -> None:
        if self.seed is None:  # the key's default: derived from the name
            object.__setattr__(self, "seed", default_seed(self.name))

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

    def micro_sizes(self, counts: list[int]) -> list[list[int]]:
        """Every rank's micro-batch sizes of its ``counts[r]`` rows (``micro_batches``)."""
        return micro_split(counts, self.micro_batches)

    def micro_counts(self, world_size: int) -> dict[str, list[int]]:
        """The per-rank counts ``micro_batches`` cuts at ``world_size``, by name (the
        kind's: samples, masked patches, images); none for a kind without micro-batches."""
        counts = kinds.get(self.kind).micro_counts
        return counts(self, world_size) if counts else {}

    def groups(self, world_size: int) -> list[range]:
        """The ranks of each process group at ``world_size`` (one, the world, ungrouped)."""
        size = self.group_size or world_size
        return [range(first, first + size) for first in range(0, world_size, size)]

    def group_totals(self, sizes_of: Any) -> list[int]:
        """Every process group's total of ``sizes_of(world_size)`` at every world size."""
        return [sum(sizes[r] for r in group) for w in self.world_sizes
                for sizes in [sizes_of(w)] for group in self.groups(w)]

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
        return {name: self.rows(name, world_size) for name in self.tensor_names()}

    def local_data(self, world_size: int, rank: int) -> dict[str, np.ndarray]:
        """Rank ``rank``'s shard of every tensor of :meth:`global_data`, built alone."""
        check_world_size(world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        return {name: self.rows(name, world_size, shard_range(self.shard_sizes(name, world_size),
                                                              rank))
                for name in self.tensor_names()}

    def rows(self, tensor: str, world_size: int, rows: range | None = None) -> np.ndarray:
        """Global samples ``rows`` (default: all) of ``tensor``: ``[*lead, len(rows), K]``."""
        spec = self._tensor(tensor)
        return generate(self.logits, self.seed, spec.id, spec.lead(self),
                        self.global_count(tensor, world_size), self.K, self.dtype_of(tensor), rows)

    # -- checks ------------------------------------------------------------------------
    def tolerance(self, quantity: str, world_size: int | None = None) -> Tolerance:
        """The tolerance of ``quantity`` (center, probs, sinkhorn, loss, grad) at
        ``world_size`` (default: the case's largest), with its rule: see
        ``tolerances.tolerance`` and the measurements there."""
        return tolerance(self, quantity, world_size)

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
