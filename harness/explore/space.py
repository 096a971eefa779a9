"""The case space the search draws from: one Hypothesis strategy per case-file key.

A drawn configuration is a case *table* -- what a ``[[case]]`` of a TOML file holds, keys
by their file names -- which ``case_from_table`` then validates exactly as a case file
is validated: a drawn case is a valid case by construction and writes back as TOML.
Which keys a kind has is the kind's own declaration (``Kind.keys``); this module only
says how to draw each key.

Shrinking is Hypothesis's: integers shrink towards their lower bound, ``sampled_from``
towards its first entry, ``one_of`` towards its first strategy, lists towards fewer
entries. So every strategy lists the simplest case first -- the fewest ranks, samples,
steps, views and iterations; for the other keys the catalogue's default (a default value
is left out of the written file, so a shrunk file shows only the keys that matter), then
round values, then arbitrary ones ("K round and not"). A step case is drawn smaller and
tamer than the others (``STEP_*``: it is a training run, and its tolerances hold there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from ..cases import kind as kinds
from ..cases.choices import DTYPES, NUM_SAMPLES, TEACHER_NORMS
from ..cases.schema import KEYS, applies
from ..kinds import step as step_kind
from .assumptions import Assumptions

#: The name every drawn case carries (a finding's case file gets its own): the data
#: depend on the drawn ``seed`` only, never on the name.
DRAWN = "explore"
#: Keys the search never draws, and why (a test holds every key to a strategy or a reason).
NOT_DRAWN = {
    "name": "a drawn case is named by the finding it shows",
    "kind": "drawn first, from the kinds searched",
    "description": "written from the finding",
    "world_sizes": "drawn first: one world size per case",
    "backends": "the backend the search runs on",
    "tolerances": "the harness's own, as in every run",
    "comms": "a collective budget is the user's to write: the comms kind is not searched",
    "expect_error": "the search looks for bugs, not for the error contract",
    "deadline_s": "the run's default deadline",
}
#: Kinds the search cannot draw: a key they require has nothing to draw it from.
NOT_SEARCHABLE = {"comms": NOT_DRAWN["comms"]}
#: Most samples per rank drawn (batch rows, masked patches, images): small cases run fast,
#: and a distributed mistake shows on a handful of samples.
MAX_BATCH, MAX_MASKED, MAX_IMAGES = 12, 24, 6
MAX_STEPS, MAX_ITERATIONS, MAX_VIEWS = 6, 6, 6
MAX_MICRO = 4  # micro-batches per step
#: Round prototype counts, the default (128) first; then any K.
ROUND_K = (128, 8, 16, 32, 64, 256, 512, 1024, 4096, 65536)
MAX_K = 3000
#: Temperatures DINO-family training uses, round ones first; then any in [0.02, 1].
STUDENT_TEMPS = (0.1, 0.2, 0.05, 0.07, 1.0)
TEACHER_TEMPS = (0.04, 0.07, 0.1, 0.05, 0.02, 0.2, 1.0)
MIN_TEMP = 0.02
MOMENTA = (0.9, 0.0, 0.5, 0.7, 0.99, 0.996)
MASK_RATIOS = ((0.1, 0.5), (0.5, 0.5), (0.0, 0.3), (0.3, 1.0), (1.0, 1.0), (0.0, 0.0))
LOGIT_SCALES = (1.0, 0.1, 3.0, 10.0, 30.0, 120.0)
HEAD_SCALES = (1.0, 0.3)  # uniform in [-scale, scale]: cosines, or a head that spreads less
OFFSETS = (0.0, 0.5, 1.0, 3.0)
OUTLIERS = (-5.0, 5.0, -30.0, 30.0)
WEIGHTS = (1.0, 0.5, 2.0)
MAX_SEED = 2**20
#: The step kind -- a k-step DDP training run of K x K tanh heads -- is drawn where it is
#: cheap and where its float32 run stays within its tolerances of the float64 step:
#:
#: * cost: a failing step reruns the float64 step once per known mistake to name it (on
#:   this 2-core machine 3 s at K = 128, 3 steps, 4 ranks; 136 s at its MAX_K = 1024);
#: * tolerances: the reference itself exceeds the step's weights tolerance (floor 1e-5, or
#:   100 x the spread of float32-held weights, which leaves float32 arithmetic out) at
#:   K = 128 with prototype offsets of 3 (up to 7 x tol), with inputs of scale 120 (tanh
#:   saturates: 38 x tol at K = 16) and with a student temperature of 0.02 (2 x tol).
#:
#: So K <= 32, at most 3 steps, inputs of scale <= 1 with offsets <= 1 (the step
#: catalogue's), temperatures no sharper than DINO's own; widen once that tolerance is
#: derived from the step's float32 arithmetic.
STEP_MAX_K, STEP_MAX_STEPS = min(32, step_kind.MAX_K), 3
STEP_INPUT_SCALES, STEP_OFFSETS = (1.0, 0.3, 0.1), (0.0, 0.5, 1.0)
STEP_MIN_STUDENT_TEMP, STEP_MIN_TEACHER_TEMP = 0.1, 0.04
#: The step's SGD learning rates, the default (0.05) first; then any in [0.001, 0.5].
LRS, MAX_LR = (0.05, 0.01, 0.1, 0.5), 0.5
IBOT_WEIGHTS = (*WEIGHTS, 0.0)  # the step without iBOT: what a style with a CLS loss only runs
KOLEO_WEIGHTS = (0.1, 0.05, 0.5)


@dataclass(frozen=True)
class Space:
    """What the search may draw: the kinds, the largest world size, the backend, and the
    user's assumptions."""

    kinds: tuple[str, ...]
    max_world_size: int
    backend: str = "gloo"
    assumptions: Assumptions = field(default_factory=Assumptions)

    def world_sizes(self) -> tuple[int, int]:
        """The (lowest, highest) world size drawn."""
        w = self.assumptions.world_size
        return (w, w) if w is not None else (1, self.max_world_size)


@dataclass(frozen=True)
class Draw:
    """What a key's strategy may depend on: the space, the kind and world size drawn, and
    the keys drawn before it (in :data:`STRATEGIES` order)."""

    space: Space
    kind: str
    world: int
    table: dict[str, Any]

    @property
    def assume(self) -> Assumptions:
        return self.space.assumptions

    def value(self, key: str) -> Any:
        """The drawn value of ``key``, or its default when it was not drawn."""
        return self.table.get(key, KEYS[key].default)


OMIT: Any = object()  # a strategy's answer when its key must stay out of this table
Strategy = Callable[[Draw], Any]  # a SearchStrategy, or OMIT


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def _prototypes(d: Draw) -> Any:
    hi = STEP_MAX_K if d.kind == "step" else MAX_K
    return st.one_of(st.sampled_from([k for k in ROUND_K if k <= hi]), st.integers(2, hi))


def _steps(d: Draw) -> Any:
    return st.integers(1, STEP_MAX_STEPS if d.kind == "step" else MAX_STEPS)


def _per_rank(hi: int) -> Strategy:
    """Counts per rank, rank r's at position r; one int when every rank's is the same
    (the file's short form). ``equal-batches`` draws one count, ``no-empty-rank`` none 0."""
    def strategy(d: Draw) -> Any:
        lo = 1 if d.assume.no_empty_rank else 0
        if d.assume.equal_batches:
            return st.integers(1, hi)
        return (st.lists(st.integers(lo, hi), min_size=d.world, max_size=d.world)
                .filter(any).map(lambda xs: xs[0] if len(set(xs)) == 1 else xs))
    return strategy


def _views_teacher(d: Draw) -> Any:
    return OMIT if d.value("teacher_2d") else st.integers(1, 4)


def _views_student(d: Draw) -> Any:
    """At least one (student, teacher) pair with s != t (S = T = 1 is the error contract);
    in a step the teacher's views are the student's first ones, so S >= T (its rule)."""
    t = d.value("views_teacher")
    lo = 2 if t == 1 else 1
    return st.integers(max(lo, t) if d.kind == "step" else lo, MAX_VIEWS)


def _patches(d: Draw) -> Any:
    lo = 10 if d.assume.no_empty_rank else 1  # a ratio >= 0.1 then masks >= 1 patch
    return st.one_of(st.just(KEYS["patches_per_image"].default), st.integers(lo, 32))


def _mask_ratio(d: Draw) -> Any:
    """One range for every rank, or one per rank; some image is sure to mask a patch (its
    rank holds images and ``floor(N * lo) >= 1``), else the global batch could be empty."""
    n = d.value("patches_per_image")
    drawn = d.value("images_per_rank")
    images = [drawn] if isinstance(drawn, int) else list(drawn)
    ratios = [list(r) for r in MASK_RATIOS if not d.assume.no_empty_rank or r[0] * n >= 1]

    def masks_some(ranges: list[list[float]]) -> bool:
        return any(images[r % len(images)] and ranges[r % len(ranges)][0] * n >= 1
                   for r in range(d.world))

    one = st.sampled_from(ratios).map(lambda r: [r]).filter(masks_some).map(lambda rs: rs[0])
    if d.assume.equal_batches:
        return one
    return st.one_of(one, st.lists(st.sampled_from(ratios), min_size=d.world, max_size=d.world)
                     .filter(masks_some))


def _dtype(d: Draw) -> Any:
    return st.just("float32") if d.assume.float32 else st.sampled_from(DTYPES)


def _temperature(values: tuple[float, ...], step_min: float) -> Strategy:
    """Round temperatures first, then any down to ``MIN_TEMP`` (a step's: ``step_min``)."""
    def strategy(d: Draw) -> Any:
        lo = step_min if d.kind == "step" else MIN_TEMP
        return st.one_of(st.sampled_from([t for t in values if t >= lo]),
                         st.floats(lo, 1.0).map(_round3))
    return strategy


def _momentum(d: Draw) -> Any:
    return st.one_of(st.sampled_from(MOMENTA), st.floats(0.0, 0.999).map(_round3))


def _lr(d: Draw) -> Any:
    """The step's learning rate: large ones too (0.5), where a wrong gradient moves most."""
    return st.one_of(st.sampled_from(LRS), st.floats(0.001, MAX_LR).map(_round3))


def _koleo_weight(d: Draw) -> Any:
    """None first; none with micro-batches (the step's rule: KoLeo's neighbours are the
    step's whole batch), nor on a global batch of one sample (no neighbour)."""
    if d.value("micro_batches") != 1 or _global_batch(d) < 2:
        return OMIT
    return _optional(st.sampled_from(KOLEO_WEIGHTS))


def _group_size(d: Draw) -> Any:
    """Process groups smaller than the world (none first), each with some of every count
    the kind has: the case's rule. A target that ignores its group shows only here."""
    def counts(key: str) -> list[int]:
        sizes = d.value(key)
        sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
        return [sizes[r % len(sizes)] for r in range(d.world)]

    keys = [k for k in ("batch_per_rank", "masked_per_rank") if applies(k, d.kind)]
    sizes = [g for g in range(1, d.world) if d.world % g == 0
             and all(sum(counts(k)[first:first + g]) for k in keys for first in range(0, d.world, g))]
    return _optional(st.sampled_from(sizes)) if sizes else OMIT


def _micro_batches(d: Draw) -> Any:
    """None first (one call per step); then M micro-batches of equal cut, or -- where the
    kind's micro-batches cut one count -- every rank's sizes, cut at drawn places (empty
    micro-batches and unequal ones included: what a mean of per-micro-batch means gets
    wrong). The batches' promises hold for every call: under ``equal-batches`` every rank
    cuts alike, and it and ``no-empty-rank`` leave no micro-batch empty."""
    every = _micro_counts(d)
    whole = d.assume.equal_batches or d.assume.no_empty_rank  # no empty micro-batch
    rows = [n for counts in every.values() for n in counts]
    # An int M cuts ceil(n / M) rows at a time: its last micro-batch can be empty, M <= n too.
    ms = [m for m in range(2, MAX_MICRO + 1)
          if not whole or all(n - -(-n // m) * (m - 1) >= 1 for n in rows)]
    if not ms:
        return OMIT
    equal = st.sampled_from(ms)
    if len(every) != 1:  # dinov2 cuts two counts: explicit sizes would have to fit both
        return _optional(equal)
    counts = next(iter(every.values()))
    parts = st.integers(2, min([MAX_MICRO, *rows]) if whole else MAX_MICRO)

    def cuts(n: int, m: int) -> Any:
        inner = st.integers(1, n - 1) if whole else st.integers(0, n)
        return st.lists(inner, min_size=m - 1, max_size=m - 1, unique=whole).map(
            lambda points: [b - a for a, b in zip([0, *sorted(points)], [*sorted(points), n],
                                                    strict=True)])

    if d.assume.equal_batches:  # one cut, every rank's
        explicit = parts.flatmap(lambda m: cuts(counts[0], m).map(lambda c: [c] * len(counts)))
    else:
        explicit = parts.flatmap(lambda m: st.tuples(*(cuts(n, m) for n in counts)).map(list))
    return _optional(st.one_of(equal, explicit))


def _micro_counts(d: Draw) -> dict[str, list[int]]:
    """Every rank's counts the drawn case's micro-batches cut, by name (dinov2 cuts two)."""
    from ..cases import case_from_table
    from ..errors import CaseError

    try:
        case = case_from_table(dict(d.table))
    except CaseError:
        return {}
    return case.micro_counts(d.world)


def _global_batch(d: Draw) -> int:
    """The drawn batch over every rank at the drawn world size."""
    sizes = d.value("batch_per_rank")
    sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
    return sum(sizes[r % len(sizes)] for r in range(d.world))


def _koleo_topk(d: Draw) -> Any:
    """At most 3 neighbours, and fewer than the global batch (the kind's rule); a batch of
    one sample has none to draw (the example is dropped)."""
    batch = _global_batch(d)
    return st.nothing() if batch < 2 else st.integers(1, min(3, batch - 1))


def _koleo_group_size(d: Draw) -> Any:
    """Neighbour sets of consecutive global samples, each (the last, shorter, one too) with
    at least ``koleo_topk + 1`` samples: the kind's rule."""
    batch, need = _global_batch(d), d.value("koleo_topk") + 1
    sizes = [s for s in range(need, batch + 1) if batch % s == 0 or batch % s >= need]
    return _optional(st.sampled_from(sizes)) if sizes else OMIT


def _sinkhorn_key(strategy: Any) -> Strategy:
    """A Sinkhorn key: none with a softmax teacher (the kind's rule)."""
    return lambda d: OMIT if d.value("teacher_norm") == "softmax" else strategy


def _logits(d: Draw) -> Any:
    """The ``logits`` sub-table, only its keys that differ from the defaults."""
    if d.assume.head_like_logits:
        return st.sampled_from(HEAD_SCALES).map(lambda s: _sub_table(distribution="uniform",
                                                                     scale=s))
    if d.kind == "step":  # the heads' inputs, in the regime its tolerances hold (above)
        return st.builds(
            lambda dist, scale, sample, proto: _sub_table(
                distribution=dist, scale=scale, sample_offset=sample, prototype_offset=proto),
            st.sampled_from(("normal", "uniform")), st.sampled_from(STEP_INPUT_SCALES),
            st.sampled_from(STEP_OFFSETS), st.sampled_from(STEP_OFFSETS))
    outlier = st.one_of(st.none(), st.tuples(st.sampled_from(OUTLIERS), st.sampled_from((-1, 0))))
    return st.builds(
        lambda dist, scale, sample, proto, out: _sub_table(
            distribution=dist, scale=scale, sample_offset=sample, prototype_offset=proto,
            **({} if out is None else {"outlier_offset": out[0], "outlier_index": out[1]})),
        st.sampled_from(("normal", "uniform")), st.sampled_from(LOGIT_SCALES),
        st.sampled_from(OFFSETS), st.sampled_from(OFFSETS), outlier)


def _sub_table(**values: Any) -> dict[str, Any]:
    from ..cases.data import LogitsSpec

    defaults = LogitsSpec()
    return {k: v for k, v in values.items() if getattr(defaults, k) != v}


#: How each key is drawn, in draw order (a key's strategy sees the keys before it).
STRATEGIES: dict[str, Strategy] = {
    "batch_per_rank": _per_rank(MAX_BATCH),
    "masked_per_rank": _per_rank(MAX_MASKED),
    "images_per_rank": _per_rank(MAX_IMAGES),
    "steps": _steps,
    "teacher_2d": lambda d: st.booleans(),
    "views_teacher": _views_teacher,
    "views_student": _views_student,
    "updates_per_apply": lambda d: st.integers(1, 3),
    "micro_batches": _micro_batches,
    "teacher_norm": lambda d: st.sampled_from(TEACHER_NORMS),
    "n_iterations": _sinkhorn_key(st.integers(1, MAX_ITERATIONS)),
    "num_samples": _sinkhorn_key(st.sampled_from(NUM_SAMPLES)),
    "patches_per_image": _patches,
    "mask_ratio": _mask_ratio,
    "K": _prototypes,
    "teacher_dtype": _dtype,
    "student_dtype": _dtype,
    "teacher_temp": _temperature(TEACHER_TEMPS, STEP_MIN_TEACHER_TEMP),
    "student_temp": _temperature(STUDENT_TEMPS, STEP_MIN_STUDENT_TEMP),
    "momentum": _momentum,
    "dino_weight": lambda d: st.sampled_from(WEIGHTS),
    "ibot_weight": lambda d: st.sampled_from(IBOT_WEIGHTS if d.kind == "step" else WEIGHTS),
    "koleo_weight": _koleo_weight,
    "ema_momentum": _momentum,
    "lr": _lr,
    "logits": _logits,
    "group_size": _group_size,
    "koleo_topk": _koleo_topk,
    "koleo_group_size": _koleo_group_size,
    "seed": lambda d: st.integers(0, MAX_SEED),
}


def _optional(strategy: Any) -> Any:
    """The key left out (its default) first, so a shrunk case omits it where it can."""
    return st.one_of(st.just(OMIT), strategy)


def searchable(kind: str) -> str | None:
    """Why ``kind`` cannot be searched, or None."""
    return NOT_SEARCHABLE.get(kind)


@st.composite
def tables(draw: Any, space: Space) -> dict[str, Any]:
    """A case table of one of ``space.kinds`` at one world size, inside the assumptions."""
    kind = draw(st.sampled_from(space.kinds))
    lo, hi = space.world_sizes()
    world = draw(st.integers(lo, hi))
    table: dict[str, Any] = {"name": DRAWN, "kind": kind, "world_sizes": [world],
                             "backends": [space.backend]}
    for key, strategy in STRATEGIES.items():
        if not applies(key, kind):
            continue
        if space.assumptions.pinned(key):
            table[key] = _file_value(space.assumptions.pins[key])
            continue
        made = strategy(Draw(space, kind, world, table))
        if made is not OMIT and (value := draw(made)) is not OMIT:
            table[key] = value
    return table


def _file_value(value: Any) -> Any:
    """A validated value back in its file form (tuples as arrays)."""
    if isinstance(value, tuple):
        return [_file_value(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def kind_keys(kind: str) -> frozenset[str]:
    """The keys a case of ``kind`` has (every kind's, and its own)."""
    return frozenset(k for k in KEYS if applies(k, kind))


__all__ = ["DRAWN", "NOT_DRAWN", "NOT_SEARCHABLE", "OMIT", "STRATEGIES", "Draw", "Space",
           "kind_keys", "kinds", "searchable", "tables"]
