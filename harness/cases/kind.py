"""What a case kind declares, and the registry case validation asks.

The kinds themselves are plug-ins: one module each in ``harness.kinds``, which finds its
modules and registers them (:func:`register`) when it is imported. This package never imports
them (it sits below them), so whoever reads case files imports ``harness.kinds`` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _no_lead(case: Any) -> tuple[int, ...]:
    return ()


@dataclass(frozen=True)
class Tensor:
    """A tensor a kind generates: ``[*lead(case), samples, K]``.

    ``id`` keys its random streams (never change it: it would change every case's data);
    ``counts`` says which per-rank counts shard it (``batch_per_rank`` or
    ``masked_per_rank``); ``role`` whose dtype it is given in (teacher or student).
    """

    id: int
    counts: str  # "batch" | "masked"
    role: str  # "teacher" | "student"
    lead: Callable[[Any], tuple[int, ...]] = _no_lead


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
    doc: str = field(default="", compare=False)

    def missing(self, api: Any) -> list[str]:
        """The seed-API names this kind calls that ``api`` lacks."""
        return [name for name in self.needs if not hasattr(api, name)]


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
