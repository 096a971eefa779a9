"""Expected single-process values from the float64 oracles, in the target's own semantics."""

from __future__ import annotations

import numpy as np

from .. import golden
from ..semantics import Semantics


def centers_after_each_step(batches: list[np.ndarray], momentum: float,
                            semantics: Semantics) -> list[np.ndarray]:
    """Center after applying step k's update, for k = 0..n-1."""
    if semantics.center_init == "first":
        return golden.center_sequence(batches, momentum)
    center = np.zeros(batches[0].shape[-1])
    out = []
    for batch in batches:
        center = momentum * center + (1.0 - momentum) * golden.batch_center(batch)
        out.append(center)
    return out


def centers_used(batches: list[np.ndarray], momentum: float,
                 semantics: Semantics) -> list[np.ndarray | None]:
    """The center step k uses: built from steps 0..k-1 (the one-step lag)."""
    after = centers_after_each_step(batches, momentum, semantics)
    first = None if semantics.center_init == "first" else np.zeros(batches[0].shape[-1])
    return [first, *after[:-1]]


def cls_loss(student: np.ndarray, teacher: np.ndarray, temp: float,
             semantics: Semantics) -> tuple[float, np.ndarray]:
    """(loss, d loss / d student) for the target's CLS reduction."""
    if semantics.cls_reduction == "mean_off_diagonal":
        return golden.cls_loss(student, teacher, temp), golden.cls_loss_grad(student, teacher, temp)
    # "sum_all_pairs": sum over every (s, t) pair of the per-pair mean over samples.
    batch = student.shape[1]
    log_p = golden.log_softmax(student / temp)
    p = np.exp(log_p)
    loss = -float(np.einsum("tbk,sbk->", teacher, log_p)) / batch
    teacher_sum = teacher.sum(axis=0)  # [B, K]: every teacher view pairs with every student view
    grad = (p * teacher_sum.sum(axis=-1)[None, :, None] - teacher_sum[None]) / (temp * batch)
    return loss, grad
