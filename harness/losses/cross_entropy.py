"""Per-row cross-entropy between teacher probabilities and student logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _validate


def cross_entropy_loss(t: torch.Tensor, s: torch.Tensor, temp: float) -> torch.Tensor:
    """``-sum(t * log_softmax(s / temp))`` over the last dim, in float32 whatever the inputs."""
    _validate.positive("temp", temp)
    _validate.min_ndim("t", t, 1)
    _validate.min_ndim("s", s, 1)
    if t.shape != s.shape:
        raise ValueError(
            f"teacher probs t and student logits s must have the same shape, got "
            f"{tuple(t.shape)} and {tuple(s.shape)}"
        )
    log_probs = F.log_softmax(s.float() / temp, dim=-1)
    return -(t.float() * log_probs).sum(dim=-1)
