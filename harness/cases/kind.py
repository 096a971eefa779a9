"""What a case kind declares, and where case validation finds the kinds.

The kinds themselves are plug-ins: one module each in ``harness.kinds``, found by its
registry. This package reaches them only through :func:`registry`, at first use, so
loading case files never imports torch or the check machinery.
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


def registry() -> Mapping[str, Kind]:
    """Every kind, in listing order."""
    from harness.kinds import registry as found  # the plug-in package (it imports this one)

    return found()


def kind_names() -> tuple[str, ...]:
    return tuple(registry())


def get(name: str) -> Kind:
    return registry()[name]
