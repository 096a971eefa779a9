"""How close actual is to expected: element error metrics and one `Check` verdict per quantity.

The rule, for every element: ``|actual - expected| <= tolerance * max(1, |expected|)``
-- absolute for values below 1 (probabilities, centers near 0), relative above (losses,
large logits). ``max_rel_err`` is reported as ``|a - e| / |e|`` for reading only; the
verdict uses the scaled error above, and ``ratio`` is its worst value over tolerance.
A non-finite actual where the expected value is finite (or the reverse) always fails and
is counted, never hidden inside a NaN maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results import Check

#: What a failed check blames, by what it compared (see :func:`category_of`).
CATEGORIES = ("distributed", "numerics", "semantics")
DISTRIBUTED_COMPARISONS = frozenset({"dist_vs_single", "rank_agreement"})


def to_numpy(value: Any) -> np.ndarray:
    """float64 view of a tensor, array or scalar (bf16 tensors included)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def compare(
    name: str,
    actual: Any,
    expected: Any,
    tolerance: float,
    *,
    comparison: str,
    rank: int | None = None,
    detail: str = "",
) -> Check:
    """One verdict; a tolerance that carries its rule (``cases.tolerances.Tolerance``)
    leaves it on the check."""
    check = _compare(name, actual, expected, float(tolerance), comparison=comparison, rank=rank,
                     detail=detail)
    check.tolerance_rule = getattr(tolerance, "rule", "")
    return check


def _compare(name: str, actual: Any, expected: Any, tolerance: float, *, comparison: str,
             rank: int | None, detail: str) -> Check:
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape != e.shape:
        return Check(
            name=name, max_abs_err=float("inf"), max_rel_err=float("inf"),
            tolerance=tolerance, passed=False, rank=rank, comparison=comparison,
            detail=f"shape {a.shape} differs from expected {e.shape}. {detail}".strip(),
        )
    if a.size == 0:
        return Check(name=name, max_abs_err=0.0, max_rel_err=0.0, tolerance=tolerance,
                     passed=True, rank=rank, comparison=comparison, ratio=0.0, detail=detail)

    finite_a, finite_e = np.isfinite(a), np.isfinite(e)
    same_nonfinite = ~finite_a & ~finite_e & ((a == e) | (np.isnan(a) & np.isnan(e)))
    bad = (finite_a != finite_e) | (~finite_a & ~finite_e & ~same_nonfinite)
    both = finite_a & finite_e
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf - inf: masked
        err = np.where(both, np.abs(a - e), 0.0)
        scaled = err / np.maximum(1.0, np.abs(np.where(both, e, 0.0)))
        rel = np.where(both & (e != 0), err / np.abs(e), np.where(err > 0, np.inf, 0.0))

    nonfinite = int(bad.sum())
    if nonfinite:
        worst = np.unravel_index(int(np.argmax(bad)), a.shape)
        max_abs = max_rel = ratio = float("inf")
    else:
        worst = np.unravel_index(int(np.argmax(scaled)), a.shape)
        max_abs, max_rel = float(err.max()), float(rel.max())
        ratio = float(scaled.max()) / tolerance if tolerance > 0 else (
            0.0 if scaled.max() == 0 else float("inf"))
    passed = nonfinite == 0 and float(scaled.max()) <= tolerance
    if nonfinite:
        detail = f"{nonfinite} non-finite value(s) where the other side is finite. {detail}".strip()
    return Check(
        name=name, max_abs_err=max_abs, max_rel_err=max_rel, tolerance=tolerance,
        passed=bool(passed), rank=rank, comparison=comparison,
        index=[int(i) for i in worst], actual=float(a[worst]), expected=float(e[worst]),
        ratio=ratio, nonfinite=nonfinite, detail=detail,
    )


def rank_agreement(name: str, per_rank: list[Any], tolerance: float = 0.0) -> Check:
    """Replicated state (the center) must be the same on every rank; default: bit-for-bit."""
    arrays = [to_numpy(v) for v in per_rank]
    worst: Check | None = None
    for rank, value in enumerate(arrays[1:], start=1):
        check = compare(name, value, arrays[0], tolerance, comparison="rank_agreement", rank=rank,
                        detail="rank vs rank 0")
        if worst is None or _badness(check) > _badness(worst):
            worst = check
    if worst is None:  # one rank: trivially in agreement
        return Check(name=name, max_abs_err=0.0, max_rel_err=0.0, tolerance=tolerance, passed=True,
                     rank=0, comparison="rank_agreement", ratio=0.0)
    return worst


def worst_of(name: str, checks: list[Check]) -> Check:
    """Fold per-rank checks of one quantity into the one that is furthest from passing."""
    if not checks:
        raise ValueError(f"no checks to fold for {name!r}")
    return max(checks, key=_badness)


def _badness(check: Check) -> tuple[int, float]:
    ratio = check.ratio if check.ratio is not None else (0.0 if check.passed else float("inf"))
    return (0 if check.passed else 1, ratio)


def category_of(check: Check) -> str | None:
    """The kind of mistake a failed check shows; None for a passing one.

    N ranks against one process, or rank against rank: ``distributed`` -- unless the
    reference side itself was not finite there, which is ``numerics`` (the one-process run
    overflowed too). One process against the float64 oracle: ``numerics`` when it produced
    non-finite values the oracle did not, else ``semantics``. A contract check (an
    expected error, a collective budget) carries its category from where it was made.
    """
    if check.passed:
        return None
    if check.category:
        return check.category
    if check.comparison in DISTRIBUTED_COMPARISONS:
        expected = check.expected
        if expected is not None and not np.isfinite(expected):
            return "numerics"
        return "distributed"
    if check.comparison == "single_vs_oracle":
        return "numerics" if check.nonfinite else "semantics"
    return "semantics"
