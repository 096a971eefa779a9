"""Numerically stable float64 primitives: logsumexp, softmax, log_softmax.

These are plain numerical building blocks: they convert to float64 and shift by the
max along ``axis`` (so large logits never overflow) but do not reject non-finite
values -- the oracles that call them validate their own inputs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validate import F64


def _max_shift(x: F64, axis: int) -> F64:
    """Max along ``axis`` (keepdims), with non-finite maxima replaced by 0.

    A row that is all ``-inf`` would otherwise give ``-inf - -inf = NaN`` shifts.
    """
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)


def logsumexp(x: ArrayLike, axis: int = -1, keepdims: bool = False) -> F64:
    """``log(sum(exp(x)))`` along ``axis``, exact for any finite magnitude."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[axis] == 0:
        raise ValueError(f"logsumexp over an empty axis {axis} of shape {x.shape}")
    m = _max_shift(x, axis)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for all -inf rows
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x: ArrayLike, axis: int = -1) -> F64:
    """``x - logsumexp(x)`` along ``axis``: log-probabilities without overflow."""
    x = np.asarray(x, dtype=np.float64)
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: ArrayLike, axis: int = -1) -> F64:
    """Max-shifted softmax along ``axis`` in float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[axis] == 0:
        raise ValueError(f"softmax over an empty axis {axis} of shape {x.shape}")
    e = np.exp(x - _max_shift(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def round_bf16(x: ArrayLike) -> F64:
    """``x`` as a float32 rounded to bfloat16 (round to nearest, ties to even), in float64.

    What ``tensor.float().to(torch.bfloat16)`` keeps: the top 16 bits of the float32
    pattern. NaN stays NaN (the rounding carry must not turn it into an infinity).
    """
    f = np.asarray(x, dtype=np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    rounded = bits.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(f), f, rounded).astype(np.float64)
