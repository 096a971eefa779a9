"""Adapters from the DINOv2 and DINOv3 loss styles to the seed API the checks drive.

Written against the published signatures, nothing downloaded:

* DINOv2 style: ``DINOLoss(out_dim, student_temp, center_momentum)``, a zero-initialised
  ``center`` buffer, ``forward(student_output_list, teacher_out_softmaxed_centered_list)``
  summing over *every* (student, teacher) pair the per-pair mean over samples,
  ``softmax_center_teacher(teacher_output, teacher_temp)``,
  ``sinkhorn_knopp_teacher(teacher_output, teacher_temp, n_iterations=3)``,
  ``update_center(teacher_output)`` on a 2-D ``[N, K]`` tensor.
* DINOv3 style: the same constructor, a NaN ``center`` until ``init_weights()`` zeroes it,
  ``forward(student_logits, teacher_probs, ignore_diagonal)`` on ``[S|T, B, K]`` tensors (driven
  with ``ignore_diagonal=True``: the mean over off-diagonal pairs, like the seed), and
  ``softmax_center_teacher(teacher_output, teacher_temp, update_centers=True)``.

Neither style has the seed's iBOT or DINOv2 combination: the namespace :func:`adapt` returns
has only ``DINOv1Loss`` and ``sinkhorn_knopp``, so the kinds that need more are skipped.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

import torch
import torch.nn as nn

from .errors import TargetError
from .semantics import Semantics


class StyleDINOLoss(nn.Module):
    """Presents a DINOv2/DINOv3-style ``DINOLoss`` as the seed's ``DINOv1Loss``.

    The wrapped module needs ``out_dim`` at construction, so it is built on first use.
    """

    def __init__(self, loss_cls: type, style: str, temperature_student: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        self._loss_cls = loss_cls
        self._style = style
        self._student_temp = temperature_student
        self._momentum = center_momentum
        self.inner: nn.Module | None = None

    def _module(self, k: int) -> nn.Module:
        if self.inner is None:
            self.inner = self._loss_cls(k, student_temp=self._student_temp,
                                        center_momentum=self._momentum)
            if self._style == "dinov3":
                self.inner.init_weights()  # what DINOv3's training code does before step 0
        return self.inner

    @property
    def center(self) -> torch.Tensor | None:
        return None if self.inner is None else self.inner.center

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
        inner = self._module(student_logits.shape[-1])
        if self._style == "dinov2":
            return inner(list(student_logits.unbind(0)), list(teacher_probs.unbind(0)))
        return inner(student_logits, teacher_probs, ignore_diagonal=True)

    def softmax_center_teacher(self, teacher_logits: torch.Tensor, teacher_temp: float,
                               update_centers: bool = True) -> torch.Tensor:
        inner = self._module(teacher_logits.shape[-1])
        if self._style == "dinov2":
            if not update_centers:
                raise TargetError("the DINOv2 style always applies the queued center update")
            return inner.softmax_center_teacher(teacher_logits, teacher_temp)
        return inner.softmax_center_teacher(teacher_logits, teacher_temp, update_centers=update_centers)

    def update_center(self, teacher_output: torch.Tensor) -> None:
        k = teacher_output.shape[-1]
        self._module(k).update_center(teacher_output.reshape(-1, k))

    def apply_center_update(self) -> None:
        if self.inner is not None:
            self.inner.apply_center_update()

    def sinkhorn_knopp_teacher(self, teacher_logits: torch.Tensor, teacher_temp: float,
                               num_samples: Any = None, n_iterations: int = 3) -> torch.Tensor:
        k = teacher_logits.shape[-1]
        flat = teacher_logits.reshape(-1, k)
        out = self._module(k).sinkhorn_knopp_teacher(flat, teacher_temp, n_iterations=n_iterations)
        return out.reshape(teacher_logits.shape)


def adapt(api: str, module: ModuleType, impl: str) -> tuple[Any, Semantics]:
    loss_cls = getattr(module, "DINOLoss", None)
    if loss_cls is None:
        raise TargetError(
            f"--api {api}: target {impl!r} ({getattr(module, '__file__', '?')}) has no DINOLoss "
            f"class; the {api} adapter looks for DINOLoss(out_dim, student_temp, center_momentum)"
        )
    if api == "dinov3" and not hasattr(loss_cls, "init_weights"):
        raise TargetError(f"--api dinov3: {impl!r}.DINOLoss has no init_weights() method")

    def make_loss(temperature_student: float = 0.1, center_momentum: float = 0.9, **_: Any):
        return StyleDINOLoss(loss_cls, api, temperature_student, center_momentum)

    def sinkhorn_knopp(teacher_output, teacher_temp, num_samples=None, n_iterations=3):
        return make_loss().sinkhorn_knopp_teacher(teacher_output, teacher_temp, num_samples,
                                                  n_iterations)

    namespace = SimpleNamespace(DINOv1Loss=make_loss, sinkhorn_knopp=sinkhorn_knopp)
    semantics = Semantics(
        center_init="zero",
        cls_reduction="sum_all_pairs" if api == "dinov2" else "mean_off_diagonal",
    )
    return namespace, semantics
