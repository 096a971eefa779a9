"""The KoLeo regulariser in float64: its value and its analytic gradient.

KoLeo (Kozachenko-Leonenko, Sablayrolles et al. 2018) is what DINOv2 and DINOv3 add to
spread the student's features. Their code (``dinov2/loss/koleo_loss.py``,
``dinov3/loss/koleo_loss.py``) computes, on one set of samples:

* ``x̂ = x / max(|x|, eps)`` (``F.normalize``);
* each sample's ``topk`` nearest neighbours, by the largest inner product ``x̂_i · x̂_j``,
  ``j != i``, among the samples of its *neighbour set*;
* ``d_ij = |x̂_i - x̂_j + eps|`` (``nn.PairwiseDistance(2, eps)`` adds eps to the
  difference, not to the norm);
* the mean over every (sample, neighbour) pair of ``-log(d_ij + eps)``.

Neighbour sets are the whole batch (``group_size=None``) or groups of ``group_size``
consecutive samples (DINOv3's ``loss_group_size``; the last group may be shorter here).
The choice of neighbours is an argmax, not differentiated; the gradient of every pair
reaches both of its samples. :func:`pair_terms` and :func:`to_features` are the pieces
``sharded.py`` builds its models of sharded targets from.
"""

from __future__ import annotations

import numpy as np

from ._validate import F64, as_f64

EPS = 1e-8  # the eps both codebases pass to F.normalize, PairwiseDistance and the log


def normalise(x: F64, eps: float = EPS) -> F64:
    """``x / max(|x|, eps)`` row by row, as ``F.normalize(x, p=2, dim=-1, eps=eps)``."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def to_features(x: F64, grad_hat: F64, eps: float = EPS) -> F64:
    """The gradient w.r.t. ``x`` of a gradient w.r.t. ``normalise(x)``: the component
    along ``x̂`` removed, divided by ``|x|`` (by ``eps`` below it, where ``F.normalize``
    divides by the constant eps)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    x_hat = normalise(x, eps)
    radial = np.sum(x_hat * grad_hat, axis=-1, keepdims=True)
    return np.where(norms > eps, (grad_hat - x_hat * radial) / np.maximum(norms, eps), grad_hat / eps)


def neighbour_sets(n: int, group_size: int | None) -> list[range]:
    """The neighbour sets of ``n`` samples: one of all, or groups of ``group_size``."""
    size = group_size or max(n, 1)
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def nearest(dots: F64, topk: int) -> np.ndarray:
    """Each row's ``topk`` columns with the largest entries (``-inf``: no candidate).

    Raises ValueError when a row has fewer than ``topk`` candidates."""
    order = np.argsort(-dots, axis=1, kind="stable")[:, :topk]
    if order.shape[1] < topk or np.isneginf(np.take_along_axis(dots, order, axis=1)).any():
        raise ValueError(f"a sample has fewer than topk = {topk} candidate neighbours")
    return order


def pair_terms(a_hat: F64, b_hat: F64, eps: float = EPS) -> tuple[F64, F64]:
    """``(-log(d + eps), d(-log(d + eps)) / d a_hat)`` of pairs of unit rows, ``d = |a - b + eps|``;
    the gradient w.r.t. ``b_hat`` is its negative."""
    u = a_hat - b_hat + eps
    d = np.linalg.norm(u, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = -(u / d[..., None]) / (d + eps)[..., None]
    return -np.log(d + eps), grad


def koleo_loss(x: F64, topk: int = 1, group_size: int | None = None, eps: float = EPS) -> float:
    """The mean over every sample of ``x [N, D]`` and each of its ``topk`` nearest
    neighbours (in its neighbour set) of ``-log(d + eps)``."""
    return _koleo(x, topk, group_size, eps)[0]


def koleo_loss_grad(x: F64, topk: int = 1, group_size: int | None = None,
                    eps: float = EPS) -> F64:
    """d :func:`koleo_loss` / d ``x``: ``[N, D]``."""
    return _koleo(x, topk, group_size, eps)[1]


def _koleo(x: F64, topk: int, group_size: int | None, eps: float) -> tuple[float, F64]:
    x = as_f64(x, "x", ndim=2)
    n = x.shape[0]
    if not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be an int >= 1, got {topk!r}")
    x_hat = normalise(x, eps)
    queries, partners = [], []
    for block in neighbour_sets(n, group_size):
        if len(block) < topk + 1:
            raise ValueError(f"a neighbour set of {len(block)} samples has no {topk} "
                             "neighbours for each of them")
        rows = x_hat[block.start:block.stop]
        dots = rows @ rows.T
        np.fill_diagonal(dots, -np.inf)
        queries.append(np.repeat(np.arange(block.start, block.stop), topk))
        partners.append(block.start + nearest(dots, topk).reshape(-1))
    i, j = np.concatenate(queries), np.concatenate(partners)
    terms, grad_pair = pair_terms(x_hat[i], x_hat[j], eps)
    scale = 1.0 / (n * topk)
    grad_hat = np.zeros_like(x_hat)
    np.add.at(grad_hat, i, grad_pair * scale)
    np.add.at(grad_hat, j, -grad_pair * scale)
    return float(terms.sum() * scale), to_features(x, grad_hat, eps)
