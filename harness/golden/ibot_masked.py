"""Golden masked-patch iBOT loss (DINOv2 / DINOv3 ``iBOTPatchLoss.forward_masked``), float64.

The student and teacher rows are the masked patches only, ``[M, K]``, in row-major mask
order (image by image, patch by patch); ``masks`` is the ``[images, N]`` boolean patch
mask they came from. Each masked patch is weighted by ``1 / max(1, masked count of its
image)`` (every image weighs the same, however many patches it masks), and the sum is
divided by the number of images -- images with no masked patch included (they add 0):

    loss = sum_m w_m * CE(t_m, s_m) / images,    CE(t, s) = -sum_k t_k log_softmax(s / temp)_k

A distributed run computes this on each rank's images; whether the mean over ranks of
those local values is this global value is what the harness checks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validate import F64, as_f64, check_last_dim, check_temp
from .losses import cross_entropy
from .numerics import softmax


def _as_masks(masks: ArrayLike) -> np.ndarray:
    arr = np.asarray(masks)
    if arr.ndim != 2:
        raise ValueError(f"masks must be 2-D [images, N], got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError("masks must be boolean (or 0 / 1)")
        arr = arr.astype(bool)
    if arr.shape[0] == 0:
        raise ValueError("masks has no image: the loss divides by the image count")
    return arr


def masked_patch_weights(masks: ArrayLike) -> F64:
    """``[M]``: ``1 / max(1, masked count of the patch's image)`` per masked patch, in
    row-major mask order (the order of ``masks[masks]``)."""
    m = _as_masks(masks)
    per_image = 1.0 / np.maximum(1, m.sum(axis=1))
    return np.broadcast_to(per_image[:, None], m.shape)[m].astype(np.float64)


def _check(student: ArrayLike, teacher: ArrayLike, masks: ArrayLike,
           temp: float) -> tuple[F64, F64, F64, int, float]:
    s = as_f64(student, "student_masked_logits", ndim=2)
    t = as_f64(teacher, "teacher_masked_probs", ndim=2)
    if s.shape != t.shape:
        raise ValueError(f"student_masked_logits {s.shape} and teacher_masked_probs {t.shape} "
                         "must both be [M, K]")
    check_last_dim(s, "student_masked_logits")
    m = _as_masks(masks)
    if int(m.sum()) != s.shape[0]:
        raise ValueError(f"masks mark {int(m.sum())} patches but there are {s.shape[0]} masked rows")
    return s, t, masked_patch_weights(m), m.shape[0], check_temp(temp)


def ibot_masked_loss(student: ArrayLike, teacher: ArrayLike, masks: ArrayLike,
                     temp: float) -> float:
    """``sum_m w_m CE(t_m, s_m) / images`` (module docstring); no masked patch -> 0.0."""
    s, t, w, images, tau = _check(student, teacher, masks, temp)
    if s.shape[0] == 0:
        return 0.0
    return float(np.sum(w * cross_entropy(t, s, tau)) / images)


def ibot_masked_loss_grad(student: ArrayLike, teacher: ArrayLike, masks: ArrayLike,
                          temp: float) -> F64:
    """Analytic ``d ibot_masked_loss / d student`` -> ``[M, K]``:
    ``w_m (softmax(s_m / temp) * sum_k t_mk - t_m) / (temp * images)``."""
    s, t, w, images, tau = _check(student, teacher, masks, temp)
    if s.shape[0] == 0:
        return np.zeros_like(s)
    p = softmax(s / tau, axis=-1)
    return w[:, None] * (p * t.sum(axis=-1, keepdims=True) - t) / (tau * images)
