"""Single-process Sinkhorn-Knopp golden (DINOv2 seed algorithm) in float64.

The golden for a distributed Sinkhorn is this algorithm run on the whole global batch
in one process; a rank's expected output is its rows of the result.

``sinkhorn`` works in the log domain, so it stays exact and finite where the
linear-domain algorithm overflows (``exp(logits / temp)`` with logits/temp ~ 3000) or
underflows (a sample whose logits all sit far below the rest: its whole column becomes
0 and the column normalisation divides 0 by 0). ``sinkhorn_seed_float`` is the naive
linear-domain algorithm, kept only so tests can show the two agree where the naive one
is finite.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._validate import F64, as_f64, check_last_dim, check_temp
from .numerics import logsumexp


def _check_iterations(n_iterations: Any) -> int:
    if isinstance(n_iterations, bool):
        raise ValueError(f"n_iterations must be an int >= 0, got {n_iterations!r}")
    try:
        n = operator.index(n_iterations)
    except TypeError as exc:
        raise ValueError(f"n_iterations must be an int >= 0, got {n_iterations!r}") from exc
    if n < 0:
        raise ValueError(f"n_iterations must be an int >= 0, got {n_iterations!r}")
    return n


def _check_inputs(logits: ArrayLike, temp: float, n_iterations: int) -> tuple[F64, float, int]:
    arr = as_f64(logits, "logits", ndim=2)
    check_last_dim(arr, "logits")
    return arr, check_temp(temp), _check_iterations(n_iterations)


def sinkhorn(logits: ArrayLike, temp: float, n_iterations: int) -> F64:
    """Sinkhorn-Knopp of ``[N, K]`` logits, exact in the log domain; returns ``[N, K]``.

    Same steps as the seed algorithm: ``Q = exp(logits / temp).T``, ``Q /= Q.sum()``,
    then ``n_iterations`` times normalise rows (prototypes) to ``1/K`` and columns
    (samples) to ``1/N``, finally ``Q *= N``. Each normalisation is a subtraction of a
    logsumexp, so no intermediate ever overflows or underflows.
    Rows of the result sum to 1 when ``n_iterations >= 1``.
    """
    x, t, n_iter = _check_inputs(logits, temp, n_iterations)
    n, k = x.shape
    if n == 0:
        return np.zeros((0, k), dtype=np.float64)
    log_n, log_k = math.log(n), math.log(k)

    log_q = x.T / t  # [K, N]
    log_q = log_q - logsumexp(log_q.reshape(-1), axis=0)  # Q /= Q.sum()
    for _ in range(n_iter):
        log_q = log_q - (logsumexp(log_q, axis=1, keepdims=True) + log_k)  # rows: prototypes
        log_q = log_q - (logsumexp(log_q, axis=0, keepdims=True) + log_n)  # cols: samples
    log_q = log_q + log_n  # Q *= N
    return np.ascontiguousarray(np.exp(log_q).T)


def sinkhorn_seed_float(
    logits: ArrayLike,
    temp: float,
    n_iterations: int,
    *,
    dtype: DTypeLike = np.float64,
) -> NDArray[Any]:
    """The naive linear-domain seed algorithm, verbatim, in ``dtype`` (float64 by default).

    For tests only: it overflows / divides 0 by 0 exactly where real implementations do,
    which is what makes it useful as a foil for ``sinkhorn``. ``dtype=np.longdouble``
    gives a wider-range reference on platforms where long double is 80-bit;
    ``dtype=np.float32`` shows how a float32 implementation breaks.
    """
    x, t, n_iter = _check_inputs(logits, temp, n_iterations)
    n, k = x.shape
    dt = np.dtype(dtype)
    if n == 0:
        return np.zeros((0, k), dtype=dt)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        q = np.exp(x.astype(dt).T / dt.type(t))  # [K, N]
        q = q / q.sum()
        for _ in range(n_iter):
            q = q / q.sum(axis=1, keepdims=True)
            q = q / dt.type(k)
            q = q / q.sum(axis=0, keepdims=True)
            q = q / dt.type(n)
        q = q * dt.type(n)
    return np.ascontiguousarray(q.T)
