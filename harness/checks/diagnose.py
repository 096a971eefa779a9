"""Likely cause of a numeric failure: which known mistake reproduces the target's numbers.

A kind's verifier, when a check of a quantity failed, hands over what the target returned
for that quantity (every rank, every step, and the one-process run, each with the check's
tolerance) and how to predict the same list from a set of :class:`~harness.golden.sharded.Flaws`
on the case's own data and sharding. Every known mistake of the quantity
(:mod:`harness.golden.mistakes`) is tried; those whose every prediction is within tolerance
are the diagnosis. The models are about numbers, not code, so this works for a target of
any style: the verifier passes the style's semantics into the prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..golden import mistakes
from ..golden.mistakes import Mistake
from ..golden.sharded import Flaws
from .closeness import compare

NO_MATCH = "no known mistake matches these numbers"

#: One observed value and the tolerance it is held to (None: the target returned none).
Observed = Sequence[tuple[Any, float]]
Predict = Callable[[Flaws], Sequence[Any]]


@dataclass(frozen=True)
class Diagnosis:
    """The mistakes whose models match (empty: none does)."""

    matches: tuple[Mistake, ...] = ()

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.matches]

    @property
    def text(self) -> str:
        if not self.matches:
            return NO_MATCH
        return "matches: " + "; or: ".join(m.description for m in self.matches)

    def __add__(self, other: Diagnosis) -> Diagnosis:
        return Diagnosis(self.matches + tuple(m for m in other.matches if m not in self.matches))


def explain(quantity: str, observed: Observed, predict: Predict) -> Diagnosis:
    """The mistakes of ``quantity`` whose predictions all match ``observed``."""
    return Diagnosis(tuple(m for m in mistakes.of_quantity(quantity)
                           if _matches(observed, predict, m)))


def _matches(observed: Observed, predict: Predict, mistake: Mistake) -> bool:
    try:
        predicted = list(predict(mistake.flaws))
    except (ValueError, IndexError, ZeroDivisionError, FloatingPointError):
        return False  # the model does not apply to this data
    if len(predicted) != len(observed):
        return False
    for (actual, tolerance), expected in zip(observed, predicted, strict=True):
        if actual is None or expected is None:
            if (actual is None) != (expected is None):
                return False
            continue
        check = compare(mistake.name, actual, expected, max(tolerance, mistake.slack),
                        comparison="diagnosis")
        if not check.passed:
            return False
    return True
