"""Seed-API faces for real loss modules that need the prototype count K to be built.

The case kinds construct ``DINOv1Loss(temperature_student=..., center_momentum=...)`` and
then call it with tensors; the real classes of most codebases take ``out_dim`` (K) at
construction, so the wrapper builds the real module on first use, with K from that
tensor, and from then on forwards every call to it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


class Lazy(nn.Module):
    """Builds ``self.inner`` from K on first use (``build`` is the style's constructor call)."""

    loss_cls: Any = None  # the style's real class, set per target by its adapt()

    def __init__(self) -> None:
        super().__init__()
        self.inner: Any = None

    def build(self, k: int) -> Any:  # pragma: no cover - every style overrides it
        raise NotImplementedError

    def module(self, k: int) -> Any:
        if self.inner is None:
            self.inner = self.build(k)
        return self.inner

    @property
    def center(self) -> torch.Tensor | None:
        return None if self.inner is None else self.inner.center


class ForwardCentered(Lazy):
    """The seed CLS/centering API over a loss that centers and softmaxes the teacher
    *inside* ``forward`` and updates its center there, synchronously (the original DINO,
    lightly, solo-learn). Their ``update_center`` is driven directly; the teacher's
    centered softmax, which they compute only inside ``forward``, is their own formula
    ``softmax((t - center) / T)`` on their own center. ``forward(student, teacher_probs)``
    hands them teacher logits whose centered softmax at temperature 1 is exactly
    ``teacher_probs``: ``log(p) + center``.
    """

    def __init__(self, temperature_student: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = temperature_student
        self.center_momentum = center_momentum

    # -- what each style says differently --------------------------------------------
    def call_forward(self, inner: Any, student: torch.Tensor,
                     teacher_logits: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def call_update(self, inner: Any, teacher: torch.Tensor) -> None:
        """Their ``update_center`` on the teacher rows (the original DINO's and solo's)."""
        inner.update_center(teacher.reshape(-1, teacher.shape[-1]))

    # -- the seed API ---------------------------------------------------------------------
    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        inner = self.module(student_logits.shape[-1])
        center = inner.center.detach()
        logits = teacher_probs.float().clamp_min(torch.finfo(torch.float32).tiny).log()
        logits = logits + center.reshape(-1)
        return self.call_forward(inner, student_logits, logits)

    @torch.no_grad()
    def softmax_center_teacher(self, teacher_logits: torch.Tensor, teacher_temp: float,
                               update_centers: bool = True) -> torch.Tensor:
        inner = self.module(teacher_logits.shape[-1])
        centered = teacher_logits.float() - inner.center.reshape(-1)
        return F.softmax(centered / teacher_temp, dim=-1)

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        self.call_update(self.module(teacher_output.shape[-1]), teacher_output)

    def apply_center_update(self) -> None:
        """Nothing is pending: these styles apply each update where they make it."""
