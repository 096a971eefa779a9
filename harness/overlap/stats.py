"""Statistics over iterations: median, p10/p90 and a bootstrap 95 % interval of the median.

Everything here is plain NumPy on a list of per-iteration values; NaN values (a metric
that is undefined in that iteration, e.g. the hidden fraction when nothing is
communicated) are dropped first, and a metric with no finite value is NaN throughout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

N_BOOTSTRAP = 2000
CI_LEVEL = 0.95
SUFFIXES = ("", "_p10", "_p90", "_ci_low", "_ci_high")


def summarize(values: Sequence[float], *, n_boot: int = N_BOOTSTRAP, level: float = CI_LEVEL,
              seed: int = 0) -> dict[str, float]:
    """``{"median", "p10", "p90", "ci_low", "ci_high", "n"}`` of the finite values.

    p10/p90: linear-interpolated percentiles of the iterations (the spread of one
    iteration). ci_low/ci_high: the percentile bootstrap interval of the *median* at
    ``level`` (resample the iterations with replacement ``n_boot`` times, take the median
    of each resample, keep the middle ``level`` of those medians) -- where the median
    would land on a rerun on the same machine under the same load. Deterministic (fixed
    seed)."""
    arr = np.asarray([float(v) for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        nan = float("nan")
        return {"median": nan, "p10": nan, "p90": nan, "ci_low": nan, "ci_high": nan, "n": 0}
    median = float(np.median(arr))
    p10, p90 = (float(x) for x in np.percentile(arr, [10, 90]))
    if n == 1:
        lo = hi = median
    else:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        medians = np.median(arr[idx], axis=1)
        tail = 100 * (1 - level) / 2
        lo, hi = (float(x) for x in np.percentile(medians, [tail, 100 - tail]))
    return {"median": median, "p10": p10, "p90": p90, "ci_low": lo, "ci_high": hi, "n": n}


def metric_fields(name: str, values: Sequence[float], *, digits: int = 4,
                  seed: int = 0) -> dict[str, Any]:
    """``{name, name_p10, name_p90, name_ci_low, name_ci_high}`` (report field names)."""
    s = summarize(values, seed=seed)
    out = {}
    for suffix, key in zip(SUFFIXES, ("median", "p10", "p90", "ci_low", "ci_high"), strict=True):
        v = s[key]
        out[name + suffix] = round(v, digits) if math.isfinite(v) else v
    return out


def ci_width(metrics: dict[str, Any], name: str) -> float:
    lo, hi = metrics.get(name + "_ci_low"), metrics.get(name + "_ci_high")
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)):
        return float("nan")
    return float(hi) - float(lo)


def statistic_fields(name: str, columns: dict[str, Sequence[float]], statistic: Any,
                     per_iteration: Sequence[float], *, n_boot: int = N_BOOTSTRAP,
                     level: float = CI_LEVEL, seed: int = 0, digits: int = 4) -> dict[str, Any]:
    """Report fields of a statistic of several per-iteration columns (e.g. a ratio of
    medians): the value is ``statistic(columns)``; p10/p90 are the percentiles of
    ``per_iteration`` (the same quantity computed within each iteration); the interval is
    the percentile bootstrap of ``statistic`` over iterations resampled *jointly* (one
    iteration's values stay together). ``statistic`` maps ``{column: array}`` to a value,
    reducing the last axis (it is called once on ``(n,)`` columns and once, vectorised,
    on ``(resamples, n)`` ones)."""
    names = list(columns)
    mat = np.asarray([[float(v) for v in columns[k]] for k in names], dtype=np.float64)
    keep = np.all(np.isfinite(mat), axis=0)
    mat = mat[:, keep]
    n = mat.shape[1]
    nan = float("nan")

    def stat(m: np.ndarray) -> Any:
        """statistic of the columns; m is (columns, n) or (columns, resamples, n)."""
        return statistic({k: m[i] for i, k in enumerate(names)})

    value = float(stat(mat)) if n else nan
    per = np.asarray([v for v in per_iteration if v is not None and math.isfinite(v)], dtype=np.float64)
    p10, p90 = (float(x) for x in np.percentile(per, [10, 90])) if per.size else (nan, nan)
    if n >= 2:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        boots = np.asarray(stat(mat[:, idx]), dtype=np.float64).reshape(-1)
        boots = boots[np.isfinite(boots)]
        tail = 100 * (1 - level) / 2
        lo, hi = ((float(x) for x in np.percentile(boots, [tail, 100 - tail])) if boots.size
                  else (nan, nan))
    else:
        lo = hi = value
    out = {}
    for suffix, v in zip(SUFFIXES, (value, p10, p90, lo, hi), strict=True):
        out[name + suffix] = round(v, digits) if math.isfinite(v) else v
    return out
