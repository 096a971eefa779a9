"""Teacher-centering goldens: batch centers, the EMA sequence, and centered softmax.

What a distributed implementation must match: the center is the EMA of *global* batch
means -- the mean over every view and sample of every rank, i.e. weighted by row count,
never a mean of per-rank means -- and a training step uses the center built from the
*previous* batches only (the update is all-reduced asynchronously behind backward and
applied at the start of the next step).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ._validate import F64, as_f64, check_last_dim, check_number, check_temp
from .numerics import softmax


def _rows(batch: ArrayLike, name: str) -> F64:
    """``[..., K]`` (at least 2-D) flattened to ``[rows, K]``."""
    arr = as_f64(batch, name, min_ndim=2)
    k = check_last_dim(arr, name)
    return arr.reshape(-1, k)


def batch_center(batch: ArrayLike) -> F64:
    """Mean over every leading dim of a ``[T, B, K]`` (or 2-D ``[N, K]``, one view) batch -> ``[K]``."""
    rows = _rows(batch, "batch")
    if rows.shape[0] == 0:
        raise ValueError(f"batch has no rows, its mean is undefined: shape {np.shape(batch)}")
    return rows.mean(axis=0)


def accumulated_center(batches: Sequence[ArrayLike]) -> F64:
    """Mean over every row of every batch -> ``[K]``.

    This is what two ``update_center`` calls before one apply must give: the combined
    mean weighted by row count (not the mean of the per-batch means), exactly like the
    global mean over uneven rank shards.
    """
    if isinstance(batches, np.ndarray) or not isinstance(batches, Sequence):
        raise ValueError("batches must be a sequence of arrays (a list or tuple)")
    rows = [_rows(b, f"batches[{i}]") for i, b in enumerate(batches)]
    if not rows:
        raise ValueError("batches is empty: no rows to average")
    ks = {r.shape[1] for r in rows}
    if len(ks) != 1:
        shapes = [tuple(np.shape(b)) for b in batches]
        raise ValueError(f"batches disagree on the prototype count K: shapes {shapes}")
    allrows = np.concatenate(rows, axis=0)
    if allrows.shape[0] == 0:
        raise ValueError("batches hold zero rows in total: the center is undefined")
    return allrows.mean(axis=0)


def _check_momentum(momentum: float) -> float:
    m = check_number(momentum, "momentum")
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
    return m


def center_sequence(batches: Sequence[ArrayLike], momentum: float) -> list[F64]:
    """Center after applying the update of batch ``k``, for ``k = 0..n-1``.

    The first batch center becomes the center; afterwards
    ``center = momentum * center + (1 - momentum) * batch_center``.
    """
    m = _check_momentum(momentum)
    if isinstance(batches, np.ndarray) or not isinstance(batches, Sequence):
        raise ValueError("batches must be a sequence of arrays (a list or tuple)")
    out: list[F64] = []
    center: F64 | None = None
    for i, b in enumerate(batches):
        try:
            bc = batch_center(b)
        except ValueError as exc:
            raise ValueError(f"batches[{i}]: {exc}") from exc
        if center is None:
            center = bc
        else:
            if bc.shape != center.shape:
                raise ValueError(
                    f"batches[{i}] has K={bc.shape[0]}, earlier batches K={center.shape[0]}"
                )
            center = m * center + (1.0 - m) * bc
        out.append(center.copy())
    return out


def centers_used(batches: Sequence[ArrayLike], momentum: float) -> list[F64 | None]:
    """The center training step ``k`` *uses*: built from batches ``0..k-1`` (None at step 0).

    One-step lag, because step k's own update is only applied at the start of step k+1.
    """
    seq = center_sequence(batches, momentum)
    return [None, *seq[:-1]] if seq else []


def softmax_center(logits: ArrayLike, center: ArrayLike | None, temp: float) -> F64:
    """``softmax((logits - center) / temp)`` over the last axis; ``center=None`` -> no centering."""
    x = as_f64(logits, "logits", min_ndim=1)
    k = check_last_dim(x, "logits")
    t = check_temp(temp)
    if center is None:
        return softmax(x / t, axis=-1)
    c = as_f64(center, "center")
    if c.shape not in ((k,), (1, k)):
        raise ValueError(f"center must have shape ({k},) or (1, {k}), got {c.shape}")
    return softmax((x - c.reshape(k)) / t, axis=-1)
