"""A small DINO training step in float64: what N ranks of M micro-batches must compute.

The model is backbone-free: a student and an EMA teacher, each two heads
``x -> tanh(x W1 + b1) -> h W2 + b2`` (a CLS head and, when the step has iBOT, a patch
head), every width K. A step, as the reference step (``harness.losses.step``) takes it:

1. the teacher's outputs for every micro-batch: the CLS head on the T global crops, the
   patch head on the clean tokens at the masked places;
2. centering, the seed's timing contract: the center update queued last step is applied,
   every micro-batch's teacher output is centered with it (``softmax((t - c) / temp)``),
   and ONE update of each center is queued with every micro-batch's rows;
3. per micro-batch, the student's outputs and its losses: the CLS loss (every student
   view against every teacher view of another crop), iBOT on the masked tokens, KoLeo on
   the student's CLS hidden features of each global crop; each loss's micro-batch value
   weighted by that micro-batch's share of the step's global rows;
4. the gradient, written out by hand (no autodiff: ``head_grads``), averaged over ranks
   as DDP does, one SGD step, and the teacher EMA ``t = m t + (1 - m) s``.

The losses and centers of every rank are :mod:`.sharded`'s models (one switch per known
mistake, :class:`~.sharded.Flaws`), and so are the step's own mistakes -- the caller's
(per-micro-batch center updates or EMA, a plain mean of micro-batch losses, a ``[1, M,
K]`` patch-center input, an update issued after backward): with every switch off, W
ranks of M micro-batches give the one-process step on the whole batch, which is the
golden. The timing mistake changes no number; the model says, per step, whether each
update is issued before the backward whose gradient all-reduces it should hide behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._validate import F64
from .numerics import softmax
from .sharded import CORRECT, Flaws, center_step, cls_local, ibot_local, koleo_local

#: The random stream of the initial weights (beside the data's per-sample streams).
INIT_STREAM = 1 << 41
#: The heads and their parameters, in the order modules list them.
PARAMETERS = ("w1", "b1", "w2", "b2")
#: The centers a step keeps, by the head they center.
CENTERS = ("dino", "patch")
#: The loss terms a step reports beside their weighted sum, ``loss``.
TERMS = ("dino", "ibot", "koleo")

Params = dict[str, F64]


class StepConfig(NamedTuple):
    """What one step computes, beside its data and weights."""

    global_crops: int  # T: the teacher's views, the student's first T
    student_temp: float
    teacher_temp: float
    center_momentum: float
    ema_momentum: float
    lr: float
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    koleo_weight: float = 0.0
    #: The style's single-process semantics (``harness.semantics.Semantics``).
    center_init: str = "first"
    cls_reduction: str = "mean_off_diagonal"

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads the model has: a patch head only where the step has iBOT."""
        return ("cls", "patch") if self.ibot_weight else ("cls",)

    @property
    def centers(self) -> tuple[str, ...]:
        """The centers the step keeps: the CLS head's, and the patch head's with iBOT."""
        return CENTERS if self.ibot_weight else CENTERS[:1]


class MicroData(NamedTuple):
    """One rank's micro-batch: ``crops`` ``[S, b, D]`` (the first T are the global crops
    the teacher sees), ``masked_student`` / ``masked_teacher`` ``[m, D]``: the inputs of
    the student's and the teacher's patch heads at the masked places."""

    crops: F64
    masked_student: F64
    masked_teacher: F64


class Trajectory(NamedTuple):
    """What a run of ``steps`` steps leaves: ``student[k]`` / ``teacher[k]`` the weights
    after step k (the same on every rank: DDP); per rank, ``centers[rank][k]`` the center
    each head used at step k, then after the last apply (None: no center yet),
    ``losses[rank][k]`` the local losses of step k, ``overlap[rank][k]`` whether each
    center update of step k was issued before its backward."""

    student: list[Params]
    teacher: list[Params]
    centers: list[list[dict[str, F64 | None]]]
    losses: list[list[dict[str, float]]]
    overlap: list[list[dict[str, bool]]]


def initial_params(seed: int, width: int, heads: Sequence[str]) -> Params:
    """Every head's weights from the case seed, exact in float32 (what the ranks load):
    ``W ~ N(0, 1 / width)``, ``b ~ N(0, 0.01)``, each parameter its own stream."""
    params: Params = {}
    for h, head in enumerate(("cls", "patch")):
        if head not in heads:
            continue
        for p, name in enumerate(PARAMETERS):
            rng = np.random.default_rng([seed, INIT_STREAM, h, p])
            shape = (width, width) if name.startswith("w") else (width,)
            scale = 1.0 / np.sqrt(width) if name.startswith("w") else 0.1
            params[f"{head}.{name}"] = (rng.standard_normal(shape) * scale).astype(
                np.float32).astype(np.float64)
    return params


def head(params: Params, name: str, x: F64) -> tuple[F64, F64]:
    """``(hidden, output)`` of head ``name`` on ``x`` ``[..., D]``."""
    hidden = np.tanh(x @ params[f"{name}.w1"] + params[f"{name}.b1"])
    return hidden, hidden @ params[f"{name}.w2"] + params[f"{name}.b2"]


def head_grads(params: Params, name: str, x: F64, hidden: F64, g_out: F64,
               g_hidden: F64 | None = None) -> Params:
    """The gradient of a loss w.r.t. head ``name``'s parameters, by hand: ``g_out`` is
    d loss / d output, ``g_hidden`` what reaches the hidden features besides (KoLeo)."""
    width = x.shape[-1]
    x2, h2 = x.reshape(-1, width), hidden.reshape(-1, hidden.shape[-1])
    g2 = g_out.reshape(-1, g_out.shape[-1])
    g_h = g2 @ params[f"{name}.w2"].T
    if g_hidden is not None:
        g_h = g_h + g_hidden.reshape(g_h.shape)
    g_a = g_h * (1.0 - h2**2)
    return {f"{name}.w1": x2.T @ g_a, f"{name}.b1": g_a.sum(axis=0),
            f"{name}.w2": h2.T @ g2, f"{name}.b2": g2.sum(axis=0)}


def ema(teacher: Params, student: Params, momentum: float) -> Params:
    return {k: momentum * teacher[k] + (1.0 - momentum) * student[k] for k in teacher}


def simulate(config: StepConfig, params: Params,
             batches: Sequence[Sequence[Sequence[MicroData]]],
             flaws: Flaws = CORRECT, *, teacher: Params | None = None,
             held_in_float32: bool = False) -> Trajectory:
    """Every step of ``batches[rank][step][micro]`` on ``len(batches)`` ranks (one rank of
    one micro-batch: the one-process golden), with the mistakes ``flaws`` switches on.
    The teacher starts as a copy of the student (``teacher``: other weights).
    ``held_in_float32``: the weights are rounded to float32 after every update, as a
    float32 run holds them -- how far that moves the steps is their own amplification of
    float32 rounding (the step kind's tolerances grow with it)."""
    world = len(batches)
    steps = len(batches[0]) if world else 0
    width = next(iter(params.values())).shape[0]
    init = None if config.center_init == "first" else np.zeros(width)
    heads = config.centers
    state = {c: [init] * world for c in heads}
    pending: dict[str, list[list[F64]]] = {c: [[] for _ in range(world)] for c in heads}
    def held(weights: Params) -> Params:
        return {k: v.astype(np.float32).astype(np.float64) for k, v in weights.items()} \
            if held_in_float32 else weights

    student, teacher = held(dict(params)), held(dict(params if teacher is None else teacher))
    out = Trajectory(student=[], teacher=[], centers=[[] for _ in range(world)],
                     losses=[[] for _ in range(world)], overlap=[[] for _ in range(world)])
    for step in range(steps):
        micro = [batches[r][step] for r in range(world)]
        probs = _center_and_probs(config, teacher, micro, state, pending, flaws)
        for rank in range(world):
            out.centers[rank].append({c: _copy(state[c][rank]) for c in heads})
            issued = flaws.step_center_timing == "before_backward"
            out.overlap[rank].append(dict.fromkeys(heads, issued))
        grads, losses = _gradients(config, student, micro, probs, flaws)
        ema_each = flaws.step_ema == "per_micro_batch"
        n_micro = len(micro[0])
        for _ in range(n_micro - 1 if ema_each else 0):
            teacher = held(ema(teacher, student, config.ema_momentum))  # after micro j's backward
        student = held({k: student[k] - config.lr * grads[k] / world for k in student})
        teacher = held(ema(teacher, student, config.ema_momentum))
        out.student.append(student)
        out.teacher.append(teacher)
        for rank in range(world):
            out.losses[rank].append(losses[rank])
    for c in heads:  # the last apply: what the last step queued
        if any(pending[c]):
            state[c] = center_step(state[c], pending[c], config.center_momentum, flaws)
    for rank in range(world):
        out.centers[rank].append({c: _copy(state[c][rank]) for c in heads})
    return out


def _copy(center: F64 | None) -> F64 | None:
    return None if center is None else center.copy()


def _center_rows(outputs: dict[str, F64], flaws: Flaws) -> dict[str, F64]:
    """What a micro-batch's teacher outputs give each center: its rows (``[T, b, K]``,
    ``[m, K]``), or for the patch center the rank's mean token (a ``[1, m, K]`` input
    averaged over dim 1: NaN when the rank has no token, as torch's mean of nothing)."""
    rows = dict(outputs)
    tokens = outputs.get("patch")
    if tokens is not None and flaws.step_patch_center_input == "rank_mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            rows["patch"] = (tokens.sum(axis=0, keepdims=True) / tokens.shape[0]
                             if tokens.shape[0] else np.full((1, tokens.shape[-1]), np.nan))
    return rows


def _center_and_probs(config: StepConfig, teacher: Params, micro: Sequence[Sequence[MicroData]],
                      state: dict[str, list[F64 | None]], pending: dict[str, list[list[F64]]],
                      flaws: Flaws) -> list[list[dict[str, F64]]]:
    """``probs[rank][micro][head]``: each micro-batch's centered teacher output. Correct:
    the update queued last step is applied once, every micro-batch is centered with that
    center, and one update per center is queued with all the step's rows. Per micro-batch
    (the mistake): each micro-batch applies what the one before queued, and queues its own."""
    world, n_micro = len(micro), len(micro[0])
    heads = config.centers
    outputs = [[_teacher_outputs(config, teacher, micro[r][j]) for j in range(n_micro)]
               for r in range(world)]
    rows = [[_center_rows(out, flaws) for out in outputs[r]] for r in range(world)]
    each = flaws.step_center_updates == "per_micro_batch"
    probs: list[list[dict[str, F64]]] = [[{} for _ in range(n_micro)] for _ in range(world)]
    for j in range(n_micro):
        if j == 0 or each:
            for c in heads:
                if any(pending[c]):
                    state[c] = center_step(state[c], pending[c], config.center_momentum, flaws)
                    pending[c] = [[] for _ in range(world)]
        for r in range(world):
            for c in heads:
                center = state[c][r]
                logits = outputs[r][j][c] if center is None else outputs[r][j][c] - center
                probs[r][j][c] = softmax(logits / config.teacher_temp)
        if each:
            for c in heads:
                pending[c] = [[rows[r][j][c]] for r in range(world)]
    if not each:  # one update per center, every micro-batch's rows
        for c in heads:
            pending[c] = [[np.concatenate([rows[r][j][c].reshape(-1, rows[r][j][c].shape[-1])
                                           for j in range(n_micro)])] for r in range(world)]
    return probs


def _teacher_outputs(config: StepConfig, teacher: Params, data: MicroData) -> dict[str, F64]:
    out = {"dino": head(teacher, "cls", data.crops[:config.global_crops])[1]}
    if "patch" in config.heads:
        out["patch"] = head(teacher, "patch", data.masked_teacher)[1]
    return out


def _gradients(config: StepConfig, student: Params, micro: Sequence[Sequence[MicroData]],
               probs: list[list[dict[str, F64]]], flaws: Flaws
               ) -> tuple[Params, list[dict[str, float]]]:
    """The sum over ranks of each rank's gradient of its local loss (over its micro-batches),
    and each rank's local losses."""
    world, n_micro, t = len(micro), len(micro[0]), config.global_crops
    grads = {k: np.zeros_like(v) for k, v in student.items()}
    losses = [dict.fromkeys(("loss", *TERMS), 0.0) for _ in range(world)]
    rows = np.array([[m.crops.shape[1] for m in ranks] for ranks in micro]).sum(axis=0)
    masked = np.array([[m.masked_student.shape[0] for m in ranks] for ranks in micro]).sum(axis=0)
    share = {"dino": _shares(rows, flaws), "ibot": _shares(masked, flaws)}
    for j in range(n_micro):
        data = [micro[r][j] for r in range(world)]
        cls = [head(student, "cls", d.crops) for d in data]
        dino = cls_local([y for _, y in cls], [probs[r][j]["dino"] for r in range(world)],
                         config.student_temp, flaws, reduction=config.cls_reduction)
        g_hidden = [np.zeros_like(h) for h, _ in cls]
        koleo = [0.0] * world
        if config.koleo_weight:
            for crop in range(t):
                per_rank = koleo_local([h[crop] for h, _ in cls], 1, None, flaws)
                for r, (value, grad) in enumerate(per_rank):
                    koleo[r] += value
                    g_hidden[r][crop] += config.koleo_weight * share["dino"][j] * grad
        for r in range(world):
            loss, g_out = dino[r]
            weight = config.dino_weight * share["dino"][j]
            grads = _add(grads, head_grads(student, "cls", data[r].crops, cls[r][0],
                                           weight * g_out, g_hidden[r]))
            losses[r]["dino"] += share["dino"][j] * loss
            losses[r]["koleo"] += share["dino"][j] * koleo[r]
            losses[r]["loss"] += weight * loss + config.koleo_weight * share["dino"][j] * koleo[r]
        if "patch" in config.heads:
            patch = [head(student, "patch", d.masked_student) for d in data]
            ibot = ibot_local([y for _, y in patch], [probs[r][j]["patch"] for r in range(world)],
                              config.student_temp, flaws)
            for r in range(world):
                loss, g_out = ibot[r]
                weight = config.ibot_weight * share["ibot"][j]
                grads = _add(grads, head_grads(student, "patch", data[r].masked_student,
                                               patch[r][0], weight * g_out))
                losses[r]["ibot"] += share["ibot"][j] * loss
                losses[r]["loss"] += weight * loss
    return grads, losses


def _shares(counts: np.ndarray, flaws: Flaws) -> list[float]:
    """Each micro-batch's weight in the step: its share of the step's global rows (0 when
    the step has none), or -- the mistake -- ``1 / M`` each."""
    if flaws.step_micro_weights == "mean":
        return [1.0 / len(counts)] * len(counts)
    total = float(counts.sum())
    return [float(c) / total if total else 0.0 for c in counts]


def _add(a: Params, b: Params) -> Params:
    return {k: a[k] + b[k] if k in b else a[k] for k in a}
