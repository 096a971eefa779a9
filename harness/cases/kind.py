"""What a case kind declares, and the registry case validation asks.

The kinds themselves are plug-ins: one module each in ``harness.kinds``, which finds its
modules and registers them (:func:`register`) when it is imported. This package never imports
them (it sits below them), so whoever reads case files imports ``harness.kinds`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

#: Which per-rank counts shard a tensor (see ``Tensor``).
Counts = Literal["batch", "masked", "layout"]
#: Whose dtype a tensor is given in.
Role = Literal["teacher", "student"]


def _no_lead(case: Any) -> tuple[int, ...]:
    return ()


#: The key that holds each plain ``Tensor.counts``: rank r gets ``key[r % len]`` rows.
COUNT_KEYS: dict[Counts, str] = {"batch": "batch_per_rank", "masked": "masked_per_rank"}


@dataclass(frozen=True)
class Tensor:
    """A tensor a kind generates: ``[*lead(case), samples, K]``.

    ``id`` keys its random streams (never change it: it would change every case's data);
    ``counts`` says which per-rank counts shard it (``batch_per_rank`` or
    ``masked_per_rank``), or ``"layout"``: then the kind computes them itself,
    ``sizes(case, world_size)`` (rows that follow a mask layout, say), and ``key`` names
    the case key a bad count is reported under; ``role`` whose dtype it is given in
    (teacher or student).
    """

    id: int
    counts: Counts
    role: Role
    lead: Callable[[Any], tuple[int, ...]] = _no_lead
    sizes: Callable[[Any, int], list[int]] | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.counts not in get_args(Counts):
            raise ValueError(f"tensor {self.id}: counts must be one of {get_args(Counts)}, "
                             f"got {self.counts!r}")
        if self.role not in get_args(Role):
            raise ValueError(f"tensor {self.id}: role must be one of {get_args(Role)}, "
                             f"got {self.role!r}")
        if (self.counts == "layout") != (self.sizes is not None and bool(self.key)):
            raise ValueError(f"tensor {self.id}: counts = 'layout' goes with sizes and key, and "
                             f"only it does (got counts = {self.counts!r})")

    @property
    def count_key(self) -> str:
        """The case key whose value decides this tensor's per-rank row counts."""
        return self.key or COUNT_KEYS[self.counts]


def has_api_name(api: Any, need: str) -> bool:
    """Whether ``api`` has ``need``; a dotted need (``iBOTPatchLoss.forward_masked``) is
    looked up attribute by attribute on the class itself: the parent process asks this
    before any rank runs, so nothing is constructed (a loss may need K, a device, a
    process group to be built)."""
    obj = api
    for part in need.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


@dataclass(frozen=True)
class Kind:
    """One case kind: its keys, its tensors, the seed-API names it calls, its program.

    ``keys`` are the schema keys that apply to it beyond the ones every kind has;
    ``rank_program(ctx, job)`` runs on every rank, ``verify(job, target, ranks, single)``
    in the parent; ``order`` places it in listings and messages.
    """

    name: str
    keys: frozenset[str]
    tensors: Mapping[str, Tensor]
    needs: tuple[str, ...]
    rank_program: Callable[..., dict[str, Any]]
    verify: Callable[..., list[Any]]
    order: int = 1000
    #: The largest |d loss / d student logit| of each loss term (none: no gradients).
    grad_bounds: Callable[[Any], Iterable[float]] | None = None
    #: Rules between keys, after merging: ``check(values, explicit)`` raises validate.Bad.
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    #: Seed-API names a case's own calls need beyond ``needs``: ``call needs Name``.
    calls_missing: Callable[[Any, Any], list[str]] | None = None
    #: The per-rank counts the ``micro_batches`` key cuts, by name, at a world size
    #: (samples, masked patches, images): a kind has micro-batches iff it declares them,
    #: and then lists the key.
    micro_counts: Callable[[Any, int], dict[str, list[int]]] | None = None
    #: ``spread(case, quantity, world_size)``: how far the kind's float64 model moves a
    #: quantity when its state is held in float32 (a training step's own amplification of
    #: rounding over its steps); the quantity's tolerance grows with it (``tolerances.py``).
    rounding_spread: Callable[[Any, str, int], float] | None = None
    doc: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if ("micro_batches" in self.keys) != (self.micro_counts is not None):
            raise ValueError(f"kind {self.name!r}: the micro_batches key goes with micro_counts, "
                             "and only it does")

    def missing(self, api: Any) -> list[str]:
        """The seed-API names this kind calls that ``api`` lacks (dotted: a method of a
        class of the API, see :func:`has_api_name`)."""
        return [name for name in self.needs if not has_api_name(api, name)]


_REGISTERED: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    _REGISTERED[kind.name] = kind


def forget() -> None:
    """Drop every registered kind (``harness.kinds.refresh`` registers them again)."""
    _REGISTERED.clear()


def registry() -> Mapping[str, Kind]:
    """Every registered kind, by ``order`` then name."""
    if not _REGISTERED:
        raise RuntimeError("no case kinds are registered: import harness.kinds (it registers "
                           "every kind module) before reading case files")
    return dict(sorted(_REGISTERED.items(), key=lambda item: (item[1].order, item[0])))


def kind_names() -> tuple[str, ...]:
    return tuple(registry())


def get(name: str) -> Kind:
    return registry()[name]
