"""Fold many element-wise comparisons into one Check per (quantity, comparison)."""

from __future__ import annotations

from typing import Any

from ..results import Check
from .closeness import category_of, compare, rank_agreement, worst_of
from .diagnose import Diagnosis


class Verdicts(list[Check]):
    """The checks of one case, and the likely cause of their failure (``diagnosis``, None
    when nothing failed or the kind has no model of its numbers): what a verifier returns."""

    diagnosis: Diagnosis | None = None


class Checks:
    """Keeps the worst check per (name, comparison) -- the one furthest from passing."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], list[Check]] = {}
        self._diagnosis: Diagnosis | None = None

    def failed(self, name: str) -> bool:
        """Whether any check of quantity ``name`` failed so far."""
        return any(not c.passed for (n, _), checks in self._by_key.items() if n == name
                   for c in checks)

    def failed_any(self) -> bool:
        return any(not c.passed for checks in self._by_key.values() for c in checks)

    def diagnose(self, diagnosis: Diagnosis) -> None:
        """Record the likely cause of this case's failure (several quantities: all of them)."""
        self._diagnosis = diagnosis if self._diagnosis is None else self._diagnosis + diagnosis

    def add(self, name: str, comparison: str, actual: Any, expected: Any, tolerance: float,
            *, rank: int | None = None, detail: str = "") -> None:
        if actual is None or expected is None:
            self.missing(name, comparison, actual is None, rank=rank, detail=detail,
                         tolerance=tolerance, both=actual is None and expected is None)
            return
        check = compare(name, actual, expected, tolerance, comparison=comparison, rank=rank,
                        detail=detail)
        self._by_key.setdefault((name, comparison), []).append(check)

    def agree(self, name: str, per_rank: list[Any], *, detail: str = "") -> None:
        if all(v is None for v in per_rank):
            return
        if any(v is None for v in per_rank):
            absent = [r for r, v in enumerate(per_rank) if v is None]
            self._by_key.setdefault((name, "rank_agreement"), []).append(Check(
                name=name, max_abs_err=float("inf"), max_rel_err=float("inf"), tolerance=0.0,
                passed=False, rank=absent[0], comparison="rank_agreement",
                detail=f"missing on rank(s) {absent}. {detail}".strip()))
            return
        check = rank_agreement(name, per_rank)
        check.detail = f"{check.detail} {detail}".strip()
        self._by_key.setdefault((name, "rank_agreement"), []).append(check)

    def missing(self, name: str, comparison: str, actual_missing: bool, *, rank: int | None,
                detail: str, tolerance: float, both: bool) -> None:
        if both:
            return
        what = "actual value is None" if actual_missing else "expected a None value"
        self._by_key.setdefault((name, comparison), []).append(Check(
            name=name, max_abs_err=float("inf"), max_rel_err=float("inf"),
            tolerance=float(tolerance), passed=False, rank=rank, comparison=comparison,
            detail=f"{what}. {detail}".strip(), tolerance_rule=getattr(tolerance, "rule", "")))

    def expect(self, name: str, passed: bool, detail: str, *, rank: int | None = None,
               category: str = "semantics") -> None:
        """A yes/no check (an expected error: semantics; a collective budget: distributed)."""
        self._by_key.setdefault((name, "contract"), []).append(Check(
            name=name, max_abs_err=0.0 if passed else float("inf"),
            max_rel_err=0.0 if passed else float("inf"), tolerance=0.0, passed=passed,
            rank=rank, comparison="contract", ratio=0.0 if passed else float("inf"),
            detail=detail, category=None if passed else category))

    def result(self) -> Verdicts:
        """The worst check per quantity, every failed one with its category, and the
        diagnosis when one was made."""
        out = Verdicts(worst_of(name, checks) for (name, _), checks in self._by_key.items())
        for check in out:
            check.category = category_of(check)
        out.diagnosis = self._diagnosis
        return out
