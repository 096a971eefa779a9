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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..golden import mistakes
from ..golden.mistakes import Mistake
from ..golden.numerics import round_bf16
from ..golden.sharded import CORRECT, Flaws
from .closeness import compare, to_numpy

NO_MATCH = "no known mistake matches these numbers"
#: What a diagnosis says when correct code's own model reproduces the numbers: no mistake
#: can be told from it, and the failing check is off by no more than its tolerance allows
#: elsewhere (a tolerance too tight for these data, or a check beyond the models).
AS_CORRECT = ("no known mistake: the numbers are what a correct implementation computes, "
              "within the check's tolerance")

#: One observed value and the tolerance it is held to (None: the target returned none).
Observed = Sequence[tuple[Any, float]]
Predict = Callable[[Flaws], Sequence[Any]]


@dataclass(frozen=True)
class Diagnosis:
    """The mistakes whose models match (empty: none does; ``as_correct``: correct code's
    model matches as well, so none can be told from it)."""

    matches: tuple[Mistake, ...] = ()
    as_correct: bool = False

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.matches]

    @property
    def text(self) -> str:
        if not self.matches:
            return AS_CORRECT if self.as_correct else NO_MATCH
        return "matches: " + "; or: ".join(m.description for m in self.matches)

    def __add__(self, other: Diagnosis) -> Diagnosis:
        return Diagnosis(self.matches + tuple(m for m in other.matches if m not in self.matches),
                         self.as_correct and other.as_correct)


def modelled_world(job: Any, flaws: Flaws) -> tuple[Any, slice]:
    """(the job whose ranks a model of ``flaws`` computes over, which of them to predict):
    the job itself, or -- for a target whose collectives ignore the process group it is
    handed -- the whole world, of which the group's ranks are picked."""
    if flaws.process_group_used or getattr(job, "group", None) is None:
        return job, slice(None)
    return replace(job, group=None), slice(job.ranks.start, job.ranks.stop)


def explain(quantity: str, observed: Observed, predict: Predict,
            upstream: Sequence[str] = ()) -> Diagnosis:
    """The mistakes of ``quantity`` whose predictions all match ``observed`` -- none when
    correct code's prediction matches too: a mistake that changes nothing on these data
    (an iBOT mistake in a CLS-only case) would otherwise be named for any numbers.

    ``upstream``: quantities computed on the way (a loss on Sinkhorn teacher probs), whose
    mistakes ``predict`` also models: one of them alone, else -- when no single mistake
    matches -- one of them together with one of ``quantity``'s (two mistakes at once:
    DINOv2's CLS loss normalised by the local batch on its rank-local Sinkhorn count)."""
    if _matches(observed, predict, CORRECT):
        return Diagnosis(as_correct=True)
    try:
        correct = [(value, tol) for value, (_, tol) in zip(predict(CORRECT), observed, strict=True)]
    except (ValueError, IndexError, ZeroDivisionError, FloatingPointError):
        correct = []

    def shows(flaws: Flaws, slack: float) -> bool:
        """The form matches the numbers and, on these data, differs from correct code
        (a Sinkhorn iteration fewer changes nothing when K >> N)."""
        return (_matches(observed, predict, flaws, slack)
                and not (correct and _matches(correct, predict, flaws)))

    singles = [*mistakes.of_quantity(quantity), *(m for q in upstream for m in mistakes.of_quantity(q))]
    found = tuple(m for m in singles if _on_its_grid(observed, m)
                  and any(shows(f, m.slack) for f in m.models))
    if found or not upstream:
        return Diagnosis(found)
    for own in mistakes.of_quantity(quantity):
        if not _on_its_grid(observed, own):
            continue
        for other in (m for q in upstream for m in mistakes.of_quantity(q)
                      if _on_its_grid(observed, m)):
            slack = max(own.slack, other.slack)
            if any(shows(_both(a, b), slack) and not shows(a, slack) and not shows(b, slack)
                   for a in own.models for b in other.models):
                return Diagnosis((own, other))
    return Diagnosis()


def on_grid(values: Any, dtype: str) -> bool:
    """Whether every finite value is a number of ``dtype`` (only bfloat16 is asked)."""
    array = np.asarray(to_numpy(values), dtype=np.float64)
    finite = array[np.isfinite(array)]
    return bool(np.array_equal(round_bf16(finite), finite)) if dtype == "bfloat16" else True


def _on_its_grid(observed: Observed, mistake: Mistake) -> bool:
    """A mistake that rounds to a dtype's grid (a bfloat16 center) makes only numbers of
    that dtype: values off it rule the mistake out, however close they are."""
    return not mistake.grid or all(on_grid(actual, mistake.grid)
                                   for actual, _ in observed if actual is not None)


def _both(a: Flaws, b: Flaws) -> Flaws:
    """The switches of two mistakes together."""
    return a._replace(**{f: getattr(b, f) for f in b._fields if getattr(b, f) != getattr(CORRECT, f)})


def _matches(observed: Observed, predict: Predict, flaws: Flaws, slack: float = 0.0) -> bool:
    try:
        predicted = list(predict(flaws))
    except (ValueError, IndexError, ZeroDivisionError, FloatingPointError):
        return False  # the model does not apply to this data
    if len(predicted) != len(observed):
        return False
    for (actual, tolerance), expected in zip(observed, predicted, strict=True):
        if actual is None or expected is None:
            if (actual is None) != (expected is None):
                return False
            continue
        check = compare("diagnosis", actual, expected, max(tolerance, slack),
                        comparison="diagnosis")
        if not check.passed:
            return False
    return True
