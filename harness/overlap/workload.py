"""The DINO-like workload one rank runs: a student head, its frozen teacher copy, the
per-rank views, and the loss of the target under test.

Head (DINO's projection head, one hidden layer): ``Linear(in, hidden) → GELU →
Linear(hidden, bottleneck) → L2-normalise → weight-normalised prototypes (K outputs, no
bias, the norm scale g frozen at 1 as DINO's ``norm_last_layer``)``; the weight norm is
applied to the output columns (the same function as ``weight_norm``, cheaper). The teacher is a
frozen deep copy; its logits are computed under ``no_grad``.

One training step, as the seed API's timing contract has it (README)::

    probs = loss.softmax_center_teacher(t_logits, teacher_temp)  # applies last step's update
    value = loss.forward(s_logits, probs)
    loss.update_center(t_logits)                                 # all-reduce starts
    value.backward()                                             # ... and runs meanwhile
    (next step) loss.apply_center_update()                       # waits, applies the EMA
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cases import OverlapCase


class _PrototypeLayer(torch.autograd.Function):
    """``out = (z @ v.T) * g / |v|`` (rows of v normalised, g fixed): weight_norm's output
    with the normalisation applied to the output columns -- the same function and the
    same gradient as ``F.linear(z, g * v / |v|)``, with one pass over the ``[K, D]``
    weight in backward instead of four (which on a CPU would dominate the step)."""

    @staticmethod
    def forward(ctx, z, v, g):  # type: ignore[override]
        norm = v.norm(dim=1).clamp_min(1e-12)
        scale = g / norm
        y = F.linear(z, v)
        ctx.save_for_backward(z, v, y, norm, scale, g)
        return y * scale

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        z, v, y, norm, scale, g = ctx.saved_tensors
        grad_y = grad_out * scale
        grad_z = grad_v = None
        if ctx.needs_input_grad[0]:
            grad_z = grad_y @ v
        if ctx.needs_input_grad[1]:
            # d scale_k / d v_k = -g_k v_k / |v_k|^3 ; grad_scale_k = sum_n grad_out[n, k] y[n, k]
            grad_scale = (grad_out * y).sum(dim=0)
            coeff = (-grad_scale * g / norm.pow(3)).unsqueeze(1)
            grad_v = (grad_y.t() @ z).addcmul_(v, coeff)
        return grad_z, grad_v, None


class DINOHead(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, prototypes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        self.prototypes_v = nn.Parameter(torch.empty(prototypes, bottleneck_dim))
        nn.init.trunc_normal_(self.prototypes_v, std=0.02)
        # weight_norm's g, fixed at 1 (DINO's norm_last_layer=True): not trained.
        self.prototypes_g = nn.Parameter(torch.ones(prototypes), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=-1)
        return _PrototypeLayer.apply(z, self.prototypes_v, self.prototypes_g)


class Workload:
    """Everything one rank needs for the protocol's four phases."""

    def __init__(self, case: OverlapCase, loss_module: Any, device: torch.device, rank: int,
                 *, ddp: bool = False) -> None:
        self.case = case
        self.device = device
        self.loss = loss_module
        dtype = getattr(torch, case.dtype)
        self.teacher_dtype = getattr(torch, case.teacher_dtype_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(case.seed)  # the same weights on every rank (DDP also broadcasts)
            head = DINOHead(case.in_dim, case.hidden_dim, case.bottleneck_dim, case.K)
            gen = torch.Generator().manual_seed(case.seed * 1_000_003 + 1 + rank)
            x_s = torch.randn(case.views_student * case.batch_per_rank, case.in_dim, generator=gen)
            x_t = torch.randn(case.views_teacher * case.batch_per_rank, case.in_dim, generator=gen)
        head = head.to(device=device, dtype=dtype)
        self.teacher = copy.deepcopy(head).requires_grad_(False).eval()
        self.params = [p for p in head.parameters() if p.requires_grad]
        if ddp:
            from torch.nn.parallel import DistributedDataParallel

            head = DistributedDataParallel(
                head, device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False)
        self.student = head
        self.x_s = x_s.to(device=device, dtype=dtype)
        self.x_t = x_t.to(device=device, dtype=dtype)
        if isinstance(loss_module, nn.Module):
            loss_module.to(device)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Student and teacher forward, ``softmax_center_teacher`` and the loss; returns the
        loss value (graph attached) and the teacher logits for ``update_center``."""
        c = self.case
        s = self.student(self.x_s).view(c.views_student, c.batch_per_rank, c.K)
        with torch.no_grad():
            t = self.teacher(self.x_t).view(c.views_teacher, c.batch_per_rank, c.K)
            t = t.to(self.teacher_dtype)
        probs = self.loss.softmax_center_teacher(t, c.teacher_temp)
        value = self.loss.forward(s, probs)
        return value, t

    def zero_grad(self) -> None:
        """Clear the grads, so that every timed backward starts from none."""
        for p in self.params:
            p.grad = None
