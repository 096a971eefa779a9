"""compare: non-finite values are verdicts, never numpy warnings (seen on real codebases'
-inf centers, where every failing run printed a RuntimeWarning)."""

from __future__ import annotations

import warnings

import numpy as np

from harness.checks.closeness import compare


def test_infinities_on_both_sides_compare_without_a_warning() -> None:
    actual = np.array([np.inf, -np.inf, 1.0, np.nan])
    expected = np.array([np.inf, np.inf, 1.0, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check = compare("center", actual, expected, 1e-6, comparison="dist_vs_single")
    assert not check.passed and check.max_abs_err == float("inf")
    same = compare("center", actual[[0, 2, 3]], expected[[0, 2, 3]], 1e-6,
                   comparison="dist_vs_single")
    assert same.passed
