"""Golden CLS (DINO) and patch (iBOT) losses and their analytic gradients, float64.

The gradients are written out by hand (not by autodiff) so they are an independent
check of what a framework's backward -- and DDP's gradient averaging across ranks --
produces. For ``CE(t, s) = -sum_k t_k * log_softmax(s / temp)_k`` the gradient w.r.t.
the student logits is ``(softmax(s / temp) * sum_k t_k - t) / temp``; ``sum_k t_k`` is
kept (not assumed 1) so unnormalised teacher targets are handled exactly.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validate import F64, as_f64, check_last_dim, check_number, check_temp
from .numerics import log_softmax, softmax


def cross_entropy(t_probs: ArrayLike, s_logits: ArrayLike, temp: float) -> F64:
    """Per-row ``-sum(t * log_softmax(s / temp))`` over the last axis -> shape ``[...]``."""
    t = as_f64(t_probs, "t_probs", min_ndim=1)
    s = as_f64(s_logits, "s_logits", min_ndim=1)
    if t.shape != s.shape:
        raise ValueError(f"t_probs shape {t.shape} != s_logits shape {s.shape}")
    check_last_dim(s, "s_logits")
    tau = check_temp(temp)
    return -np.sum(t * log_softmax(s / tau, axis=-1), axis=-1)


def _check_cls(student_logits: ArrayLike, teacher_probs: ArrayLike, temp: float) -> tuple[F64, F64, float, np.ndarray]:
    """Validate CLS inputs; return them plus the ``[S, T]`` boolean mask of used pairs."""
    s = as_f64(student_logits, "student_logits", ndim=3)
    t = as_f64(teacher_probs, "teacher_probs", ndim=3)
    if s.shape[1:] != t.shape[1:]:
        raise ValueError(
            f"student_logits [S,B,K]={s.shape} and teacher_probs [T,B,K]={t.shape} disagree on B, K"
        )
    n_s, b, _ = s.shape
    n_t = t.shape[0]
    check_last_dim(s, "student_logits")
    if b == 0:
        raise ValueError(f"student_logits has B = 0 samples (shape {s.shape}): the mean is undefined")
    # The first min(S, T) student and teacher views are the same crops: skip s == t.
    mask = ~np.eye(n_s, n_t, dtype=bool)
    if not mask.any():
        raise ValueError(
            f"no (student, teacher) view pairs with s != t for S={n_s}, T={n_t}: the mean is 0/0"
        )
    return s, t, check_temp(temp), mask


def cls_loss(student_logits: ArrayLike, teacher_probs: ArrayLike, temp: float) -> float:
    """DINO CLS loss: CE(teacher view t, student view s) over pairs ``s != t``, mean over pairs and samples."""
    s, t, tau, mask = _check_cls(student_logits, teacher_probs, temp)
    ls = log_softmax(s / tau, axis=-1)  # [S, B, K]
    ce = -np.einsum("tbk,sbk->stb", t, ls)  # [S, T, B]
    n_pairs = int(mask.sum())
    return float(ce[mask].sum() / (n_pairs * s.shape[1]))


def cls_loss_grad(student_logits: ArrayLike, teacher_probs: ArrayLike, temp: float) -> F64:
    """Analytic ``d cls_loss / d student_logits`` -> ``[S, B, K]``."""
    s, t, tau, mask = _check_cls(student_logits, teacher_probs, temp)
    n_pairs = int(mask.sum())
    b = s.shape[1]
    # Per student view: the sum of the teacher targets it is paired with.
    t_sum = np.einsum("st,tbk->sbk", mask.astype(np.float64), t)  # [S, B, K]
    p = softmax(s / tau, axis=-1)
    grad = (p * t_sum.sum(axis=-1, keepdims=True) - t_sum) / tau
    return grad / (n_pairs * b)


def _check_ibot(student_patch_logits: ArrayLike, teacher_patch_probs: ArrayLike, temp: float) -> tuple[F64, F64, float]:
    s = as_f64(student_patch_logits, "student_patch_logits", ndim=2)
    t = as_f64(teacher_patch_probs, "teacher_patch_probs", ndim=2)
    if s.shape != t.shape:
        raise ValueError(
            f"student_patch_logits {s.shape} and teacher_patch_probs {t.shape} must both be [M, K]"
        )
    check_last_dim(s, "student_patch_logits")
    return s, t, check_temp(temp)


def ibot_loss(student_patch_logits: ArrayLike, teacher_patch_probs: ArrayLike, temp: float) -> float:
    """iBOT patch loss: mean over the ``M`` masked patches of the cross-entropy; ``M = 0`` -> 0.0."""
    s, t, tau = _check_ibot(student_patch_logits, teacher_patch_probs, temp)
    if s.shape[0] == 0:
        return 0.0
    return float(cross_entropy(t, s, tau).mean())


def ibot_loss_grad(student_patch_logits: ArrayLike, teacher_patch_probs: ArrayLike, temp: float) -> F64:
    """Analytic ``d ibot_loss / d student_patch_logits`` -> ``[M, K]`` (zeros-shaped for M = 0)."""
    s, t, tau = _check_ibot(student_patch_logits, teacher_patch_probs, temp)
    m = s.shape[0]
    if m == 0:
        return np.zeros_like(s)
    p = softmax(s / tau, axis=-1)
    return (p * t.sum(axis=-1, keepdims=True) - t) / (tau * m)


def _patch_pair(student_patch: ArrayLike | None, teacher_patch: ArrayLike | None) -> bool:
    if (student_patch is None) != (teacher_patch is None):
        raise ValueError("student_patch and teacher_patch must both be given or both be None")
    return student_patch is not None


def dinov2_loss(
    student_cls: ArrayLike,
    teacher_cls_probs: ArrayLike,
    student_patch: ArrayLike | None = None,
    teacher_patch: ArrayLike | None = None,
    *,
    cls_temp: float = 0.1,
    patch_temp: float = 0.1,
    dino_weight: float = 1.0,
    ibot_weight: float = 1.0,
) -> float:
    """``dino_weight * cls_loss + ibot_weight * ibot_loss``; patch terms None -> CLS only."""
    wd = check_number(dino_weight, "dino_weight")
    wi = check_number(ibot_weight, "ibot_weight")
    total = wd * cls_loss(student_cls, teacher_cls_probs, cls_temp)
    if _patch_pair(student_patch, teacher_patch):
        total += wi * ibot_loss(student_patch, teacher_patch, patch_temp)
    return float(total)


def dinov2_loss_grad(
    student_cls: ArrayLike,
    teacher_cls_probs: ArrayLike,
    student_patch: ArrayLike | None = None,
    teacher_patch: ArrayLike | None = None,
    *,
    cls_temp: float = 0.1,
    patch_temp: float = 0.1,
    dino_weight: float = 1.0,
    ibot_weight: float = 1.0,
) -> tuple[F64, F64 | None]:
    """Analytic gradients of ``dinov2_loss``: ``(d/d student_cls, d/d student_patch or None)``."""
    wd = check_number(dino_weight, "dino_weight")
    wi = check_number(ibot_weight, "ibot_weight")
    g_cls = wd * cls_loss_grad(student_cls, teacher_cls_probs, cls_temp)
    g_patch = None
    if _patch_pair(student_patch, teacher_patch):
        g_patch = wi * ibot_loss_grad(student_patch, teacher_patch, patch_temp)
    return g_cls, g_patch
