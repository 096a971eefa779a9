"""The training step around the losses: its signature, and the reference implementation.

A step function is what a training loop calls once per optimizer step. The ``step`` kind
calls one on every rank -- the reference below, or the user's own (``dino-harness run
--step FILE.py:function``, or ``DINO_HARNESS_STEP`` in the target module) -- and checks
that N ranks (x M micro-batches) train exactly as one process on the whole batch::

    def step(modules: Modules, optimizer: torch.optim.Optimizer, batch: list[MicroBatch],
             losses: Losses, state: StepState) -> Mapping[str, float | torch.Tensor]

* ``modules.student`` is the student (a ``DistributedDataParallel`` on N ranks, the plain
  model on one process), ``modules.teacher`` its EMA copy (no gradients); both are called
  ``model(crops, masked) -> HeadOutputs``.
* ``optimizer`` holds the student's parameters (SGD).
* ``batch`` is this rank's micro-batches of the optimizer step, in order.
* ``losses`` are the target's losses in the seed API (whatever its style): ``dino`` (CLS
  loss and center), ``ibot`` (masked-patch loss), ``patch_center`` (the iBOT center),
  ``koleo``; the last three None where the step has no such term.
* ``state``: the step's index and hyperparameters (temperatures, weights, EMA momentum).
* It returns this rank's local losses: ``loss`` (required: what it backpropagated, summed
  over its micro-batches) and, checked where returned, ``dino``, ``ibot``, ``koleo``.

The reference step follows the seed's timing contract: the center update queued last
step is applied, every micro-batch's teacher output is centered with it, ONE update per
center with every micro-batch's rows is issued before the first backward (its all-reduce
hides behind the step's backwards), the micro-batch losses are weighted by their share of
the step's global rows, DDP synchronises the last backward only, then one optimizer step
and one teacher EMA. ``variant`` flips the caller's known mistakes
(:mod:`harness.losses.variants`, ``step_*``) for the planted faults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from . import _dist
from .variants import REFERENCE, Variant


class HeadOutputs(NamedTuple):
    """What the student and the teacher return: ``cls`` ``[S, B, K]`` logits of every crop,
    ``features`` ``[S, B, K]`` the CLS head's hidden features (KoLeo's input), ``patches``
    ``[M, K]`` logits of the masked tokens (None: the model has no patch head)."""

    cls: torch.Tensor
    features: torch.Tensor
    patches: torch.Tensor | None


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of this rank: ``crops`` ``[S, B, D]`` every crop's per-sample input
    (the first ``state.global_crops`` are the global crops, the teacher's), and the inputs
    of the patch heads at the ``M`` masked places: ``masked_student`` (what the student
    sees there) and ``masked_teacher`` (the clean tokens), ``[M, D]`` each."""

    crops: torch.Tensor
    masked_student: torch.Tensor
    masked_teacher: torch.Tensor


@dataclass(frozen=True)
class Modules:
    student: nn.Module
    teacher: nn.Module


@dataclass(frozen=True)
class Losses:
    """The target's losses, seed API: ``dino`` is a ``DINOv1Loss`` (``forward(student [S, B,
    K], teacher_probs [T, B, K])``, ``softmax_center_teacher``, ``update_center``,
    ``apply_center_update``); ``ibot`` an ``iBOTPatchLoss`` (``forward([M, K], [M, K])``);
    ``patch_center`` an ``iBOTPatchCenter`` (the same centering API on ``[M, K]`` tokens);
    ``koleo`` a ``KoLeoLoss`` (``forward([B, D])``)."""

    dino: Any
    ibot: Any | None = None
    patch_center: Any | None = None
    koleo: Any | None = None


@dataclass(frozen=True)
class StepState:
    """Which step this is and its hyperparameters."""

    step: int
    global_crops: int
    teacher_temp: float
    ema_momentum: float
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    koleo_weight: float = 0.0


StepFunction = Callable[[Modules, torch.optim.Optimizer, Sequence[MicroBatch], Losses, StepState],
                        Mapping[str, Any]]


def dino_step(modules: Modules, optimizer: torch.optim.Optimizer, batch: Sequence[MicroBatch],
              losses: Losses, state: StepState, *, variant: Variant = REFERENCE
              ) -> dict[str, float]:
    """One optimizer step of DINO + iBOT (+ KoLeo) over ``batch`` (module doc)."""
    v = variant
    with torch.no_grad():
        teacher = [modules.teacher(mb.crops[:state.global_crops], mb.masked_teacher)
                   for mb in batch]
    shares = _shares(batch, v)
    each = v.step_center_updates == "per_micro_batch"
    before = v.step_center_timing == "before_backward"
    probs = [] if each else [_centered(losses, out, state, apply=j == 0)
                             for j, out in enumerate(teacher)]
    if not each and before:
        _update_centers(losses, teacher, v)
    totals: dict[str, float] = {}
    optimizer.zero_grad(set_to_none=True)
    for j, mb in enumerate(batch):
        last = j == len(batch) - 1
        if each:
            probs.append(_centered(losses, teacher[j], state, apply=True))
            if before:
                _update_centers(losses, teacher[j:j + 1], v)
        sync = nullcontext() if last or not hasattr(modules.student, "no_sync") \
            else modules.student.no_sync()  # DDP all-reduces the last backward's gradients
        with sync:
            terms = _losses(modules.student(mb.crops, mb.masked_student), probs[j], losses,
                            state, shares[j])
            terms["loss"].backward()
        for name, value in terms.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach())
        if each and not before:
            _update_centers(losses, teacher[j:j + 1], v)
        if v.step_ema == "per_micro_batch" and not last:
            ema(modules, state.ema_momentum)
    if not each and not before:
        _update_centers(losses, teacher, v)
    optimizer.step()
    ema(modules, state.ema_momentum)
    return totals


def _shares(batch: Sequence[MicroBatch], v: Variant) -> list[tuple[float, float]]:
    """Each micro-batch's (CLS, patch) weight: its share of the step's global samples and
    masked tokens (one all-reduce of the counts; 0 where the step has none anywhere), or
    -- the mistake -- ``1 / M`` each."""
    if v.step_micro_weights == "mean":
        return [(1.0 / len(batch), 1.0 / len(batch))] * len(batch)
    device = batch[0].crops.device
    counts = torch.tensor([[mb.crops.shape[1], mb.masked_student.shape[0]] for mb in batch],
                          dtype=torch.float64, device=device)
    _dist.all_reduce(counts)
    total = counts.sum(dim=0)
    shares = torch.where(total > 0, counts / total.clamp_min(1.0), torch.zeros_like(counts))
    return [(float(cls), float(patch)) for cls, patch in shares.tolist()]


def _centered(losses: Losses, out: HeadOutputs, state: StepState, *, apply: bool
              ) -> dict[str, torch.Tensor]:
    """The teacher's centered softmax of each head; ``apply``: apply what is queued first."""
    probs = {"dino": losses.dino.softmax_center_teacher(out.cls, state.teacher_temp,
                                                         update_centers=apply)}
    if losses.patch_center is not None and out.patches is not None:
        probs["patch"] = losses.patch_center.softmax_center_teacher(
            out.patches, state.teacher_temp, update_centers=apply)
    return probs


def _update_centers(losses: Losses, teacher: Sequence[HeadOutputs], v: Variant) -> None:
    """Queue one update of each center with the rows of ``teacher`` (every micro-batch's)."""
    losses.dino.update_center(torch.cat([out.cls for out in teacher], dim=1))
    if losses.patch_center is None or teacher[0].patches is None:
        return
    tokens = torch.cat([out.patches for out in teacher])
    if v.step_patch_center_input == "rank_mean":
        # [1, M, K], as DINOv2's training hands its iBOTPatchLoss; that center averages
        # its input's dim 1 (the patches of an image): here, the rank's mean token.
        tokens = tokens.unsqueeze(0).mean(dim=1)
    losses.patch_center.update_center(tokens)


def _losses(out: HeadOutputs, probs: dict[str, torch.Tensor], losses: Losses, state: StepState,
            share: tuple[float, float]) -> dict[str, torch.Tensor]:
    """This micro-batch's terms, each weighted by its share of the step, and their sum."""
    cls_share, patch_share = share
    dino = cls_share * losses.dino(out.cls, probs["dino"])
    terms = {"dino": dino, "loss": state.dino_weight * dino}
    if losses.ibot is not None and out.patches is not None:
        terms["ibot"] = patch_share * losses.ibot(out.patches, probs["patch"])
        terms["loss"] = terms["loss"] + state.ibot_weight * terms["ibot"]
    if losses.koleo is not None:
        koleo = sum(losses.koleo(out.features[crop]) for crop in range(state.global_crops))
        terms["koleo"] = cls_share * koleo
        terms["loss"] = terms["loss"] + state.koleo_weight * terms["koleo"]
    return terms


@torch.no_grad()
def ema(modules: Modules, momentum: float) -> None:
    """``teacher = m * teacher + (1 - m) * student``, parameter by parameter."""
    for s, t in zip(modules.student.parameters(), modules.teacher.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
