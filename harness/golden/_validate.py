"""Input conversion and validation shared by the golden oracles.

Every oracle converts its inputs to float64 first: the whole point of the golden is to
be an independent, higher-precision answer, so nothing may stay in the caller's dtype.
Bad inputs raise ValueError naming the argument, so a bad case file fails loudly
instead of producing a NaN "golden" that everything then disagrees with.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]


def as_f64(
    x: ArrayLike,
    name: str,
    *,
    ndim: int | None = None,
    min_ndim: int | None = None,
    finite: bool = True,
) -> F64:
    """Convert ``x`` to a float64 array and check its rank and (optionally) finiteness."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be convertible to a float64 array: {exc}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dims, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN/inf), shape {arr.shape}")
    return arr


def check_temp(temp: Any, name: str = "temp") -> float:
    """A temperature must be a finite positive number (it divides the logits)."""
    try:
        t = float(temp)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {temp!r}") from exc
    if not math.isfinite(t) or t <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {temp!r}")
    return t


def check_number(value: Any, name: str) -> float:
    """A finite real scalar (loss weights, momentum)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_last_dim(arr: F64, name: str) -> int:
    """The prototype axis (last) must be non-empty: softmax over zero classes is undefined."""
    k = arr.shape[-1]
    if k < 1:
        raise ValueError(f"{name} must have at least one prototype (last dim), got shape {arr.shape}")
    return int(k)
