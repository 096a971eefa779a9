"""What a *sharded* target computes on each rank, with or without a known mistake, in float64.

The other golden modules answer "what is right" (one process, the whole batch). These
simulate the distributed computation itself -- every rank's shard, the all-reduces as sums
over the shards -- with each known mistake as one switch of :class:`Flaws` (all off: the
correct algorithm, equal to the single-process golden). A failed check can then ask
which switch reproduces the target's numbers (:mod:`.mistakes`). They follow what the
numbers are, not how any codebase writes them: the seed's ``Q /= B`` with ``B = n_local``
or ``n_local * W`` gives the same output, so one switch models both.

The switch names and values are those of the reference's variation points, so a planted
fault and the model of its mistake say the same thing (a test holds them together); the
few mistakes only other codebases make (``center_divisor="local_times_world"``) add values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from ._validate import F64
from .numerics import log_softmax, round_bf16

EXP_FLOOR = -87.0  # the reference floors shifted exponents here (float32 subnormals)
FLOAT32_LOG_TINY = math.log(2.0**-149)  # below it, exp is 0 in float32


class Flaws(NamedTuple):
    """The known mistakes, one switch each; the defaults are the correct algorithm."""

    center_all_reduce: bool = True
    center_divisor: Literal["global_rows", "local_rows", "mean_of_means",
                            "local_times_world"] = "global_rows"
    center_ema: Literal["momentum_on_center", "swapped"] = "momentum_on_center"
    center_dtype: Literal["float32", "bfloat16", "bfloat16_ops"] = "float32"
    updates_accumulate: bool = True
    sinkhorn_shift: Literal["exact", "none", "per_sample", "per_sample_raw"] = "exact"
    sinkhorn_row_all_reduce: bool = True
    sinkhorn_sample_mass: Literal["cancelled", "local_count"] = "cancelled"
    sinkhorn_iterations_delta: int = 0
    cls_pairs: Literal["off_diagonal", "all"] = "off_diagonal"
    cls_normalisation: Literal["global_batch", "local_batch"] = "global_batch"
    ibot_normalisation: Literal["global_count", "local_mean"] = "global_count"


CORRECT = Flaws()

# ------------------------------------------------------------------------------ centering


def centers(batches: Sequence[Sequence[Sequence[F64]]], momentum: float, flaws: Flaws = CORRECT,
            *, center_init: str = "first") -> list[list[F64 | None]]:
    """Every rank's center before each step and after the last apply.

    ``batches[rank][step][update]`` is the ``[rows, K]`` batch a rank passes to one
    ``update_center`` (several per step: gradient accumulation); each step applies what
    the steps before it queued. ``center_init`` is the style's start: "first" (no center
    until the first batch center becomes it) or "zero" (an EMA from zero).
    Returns ``[rank][0..steps]``: ``[K]`` arrays, None where a rank has no center yet.
    """
    world = len(batches)
    k = next(b.shape[-1] for rank in batches for step in rank for b in step)
    state: list[F64 | None] = [None if center_init == "first" else np.zeros(k)] * world
    out = [[None if c is None else c.copy()] for c in state]
    for step in range(len(batches[0])):
        updates = range(len(batches[0][step]))
        if not flaws.updates_accumulate:
            updates = updates[-1:]  # a second update drops the first
        packed = [[_packed(batches[r][step][u], flaws) for u in updates] for r in range(world)]
        for rank in range(world):
            parts = [sum(packed[r][i] for r in range(world)) if flaws.center_all_reduce
                     else packed[rank][i] for i in range(len(updates))]
            total = sum(parts)
            local_rows = sum(batches[rank][step][u].shape[0] for u in updates)
            state[rank] = _apply(state[rank], total, local_rows, world, momentum, flaws)
            out[rank].append(None if state[rank] is None else state[rank].copy())
    return out


def _packed(rows: F64, flaws: Flaws) -> F64:
    """``[row sum, row count]`` (mean of means: ``[row mean, 1]``, an empty rank's mean 0)."""
    rows = rows.reshape(-1, rows.shape[-1])
    if flaws.center_divisor == "mean_of_means":
        mean = rows.mean(axis=0) if rows.shape[0] else np.zeros(rows.shape[1])
        return np.append(mean, 1.0)
    return np.append(rows.sum(axis=0), float(rows.shape[0]))


def _apply(center: F64 | None, total: F64, local_rows: int, world: int, momentum: float,
           flaws: Flaws) -> F64 | None:
    divisor = {"local_rows": float(local_rows),
               "local_times_world": float(local_rows * world)}.get(flaws.center_divisor, total[-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        if flaws.center_divisor == "local_times_world":  # the styles divide unguarded
            batch = total[:-1] / divisor
        else:
            batch = total[:-1] / max(divisor, 1.0)
    if flaws.center_divisor != "local_times_world" and divisor <= 0:
        return center  # no rows anywhere: nothing to average
    # "bfloat16_ops": the center a bf16 tensor, so its product with a weight rounds too
    # before the float32 batch term is added (``center * m + batch * (1 - m)`` in torch).
    keep = round_bf16 if flaws.center_dtype == "bfloat16_ops" else (lambda v: v)
    with np.errstate(invalid="ignore", over="ignore"):  # an unguarded 0/0 stays NaN, quietly
        if center is None:
            updated = batch
        elif flaws.center_ema == "swapped":
            updated = keep((1.0 - momentum) * center) + momentum * batch
        else:
            updated = keep(momentum * center) + (1.0 - momentum) * batch
    return round_bf16(updated) if flaws.center_dtype != "float32" else updated


# ------------------------------------------------------------------------------- Sinkhorn


def sinkhorn(shards: Sequence[F64], temp: float, n_iterations: int,
             flaws: Flaws = CORRECT) -> list[F64]:
    """Every rank's ``[n_r, K]`` Sinkhorn output for its ``shards[r]`` of the global logits.

    Prototype (row) sums are summed over ranks, sample (column) sums are local. The
    correct version shifts every prototype by its global max and keeps each sample's
    own shift as a factor of the first row sums; ``sinkhorn_shift="none"`` exponentiates
    unshifted in float32's range (what overflows to inf, then NaN, on a real target).
    A dropped per-sample factor changes the first row sums by what the shift was, so the
    mistake has two forms: ``"per_sample"`` shifts after the per-prototype shift (the
    reference's planted fault), ``"per_sample_raw"`` shifts the raw logits, as code without
    a per-prototype shift does (``x - x.max(1)``, then / T).
    """
    k = shards[0].shape[-1]
    x = [np.asarray(s, dtype=np.float64).reshape(-1, k) for s in shards]
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if flaws.sinkhorn_shift == "none":  # float32 from here on: its range is the mistake
            q = [np.exp(s / temp).astype(np.float32) for s in x]
            weight = [np.ones((s.shape[0], 1), dtype=np.float32) for s in x]
        elif flaws.sinkhorn_shift == "per_sample_raw":
            q, weight = [], []
            for s in x:
                z = s / temp - (s.max(axis=1, keepdims=True) / temp if s.shape[0] else 0.0)
                q.append(np.exp(np.maximum(z, EXP_FLOOR)))
                weight.append(np.ones((s.shape[0], 1)))
        else:
            peak = np.max([s.max(axis=0) for s in x if s.shape[0]], axis=0)
            q, weight = [], []
            for s in x:
                z = (s - peak) / temp
                shift = z.max(axis=1, keepdims=True) if s.shape[0] else np.zeros((0, 1))
                q.append(np.exp(np.maximum(z - shift, EXP_FLOOR)))
                # The factor in float32's range: a sample far below a prototype's global
                # max weighs 0, which only rank-local row sums turn into 0/0.
                weight.append(np.where(shift < FLOAT32_LOG_TINY, 0.0, np.exp(shift))
                              if flaws.sinkhorn_shift == "exact" else np.ones_like(shift))
        sums = [(w * r).sum(axis=0) for w, r in zip(weight, q, strict=True)]
        local = flaws.sinkhorn_sample_mass == "local_count"
        for iteration in range(n_iterations + flaws.sinkhorn_iterations_delta):
            if iteration:
                sums = [r.sum(axis=0) for r in q]
            if flaws.sinkhorn_row_all_reduce:
                sums = [sum(sums)] * len(q)
            q = [r / s for r, s in zip(q, sums, strict=True)]
            q = [r / r.sum(axis=1, keepdims=True) for r in q]
            if local:
                q = [r / max(r.shape[0], 1) for r in q]
        if local:
            q = [r * max(r.shape[0], 1) for r in q]
    return [r.astype(np.float64) for r in q]


# --------------------------------------------------------------------------------- losses


def cls_local(students: Sequence[F64], teachers: Sequence[F64], temp: float,
              flaws: Flaws = CORRECT, *, reduction: str = "mean_off_diagonal"
              ) -> list[tuple[float, F64]]:
    """Every rank's (local CLS loss, its gradient w.r.t. the rank's ``[S, B_r, K]`` student).

    Correct: the pair sum scaled by ``W / (pairs * global B)``, so the mean over ranks is
    the one-process loss. ``reduction="sum_all_pairs"`` is the DINOv2 style's own loss
    (every pair, summed, each a mean over the local samples).
    """
    world = len(students)
    every_pair = reduction == "sum_all_pairs" or flaws.cls_pairs == "all"
    global_b = sum(s.shape[1] for s in students)
    out = []
    for s, t in zip(students, teachers, strict=True):
        n_s, b, _ = s.shape
        mask = np.ones((n_s, t.shape[0]), dtype=bool)
        if not every_pair:
            mask &= ~np.eye(n_s, t.shape[0], dtype=bool)
        pairs = 1 if reduction == "sum_all_pairs" else int(mask.sum())
        local = flaws.cls_normalisation == "local_batch"
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = 1.0 / (pairs * max(b, 1)) if local else (
                world / (pairs * global_b) if global_b else 0.0)
        log_p = log_softmax(s / temp)
        total = -float(np.einsum("st,tbk,sbk->", mask.astype(np.float64), t, log_p))
        t_sum = np.einsum("st,tbk->sbk", mask.astype(np.float64), t)
        grad = (np.exp(log_p) * t_sum.sum(axis=-1, keepdims=True) - t_sum) / temp
        out.append((total * scale, grad * scale))
    return out


def ibot_local(students: Sequence[F64], teachers: Sequence[F64], temp: float,
               flaws: Flaws = CORRECT) -> list[tuple[float, F64]]:
    """Every rank's (local iBOT loss, its gradient w.r.t. the rank's ``[M_r, K]`` patches).

    Correct: ``W * sum(local CE) / global M`` (0 everywhere when no rank has a patch);
    ``ibot_normalisation="local_mean"``: the local mean (NaN, 0/0, on a rank with none).
    """
    world = len(students)
    global_m = sum(s.shape[0] for s in students)
    out = []
    for s, t in zip(students, teachers, strict=True):
        m = s.shape[0]
        if flaws.ibot_normalisation == "local_mean":
            scale = 1.0 / m if m else math.nan
        else:
            scale = world / global_m if global_m else 0.0
        log_p = log_softmax(s / temp) if m else s
        total = -float(np.sum(t * log_p))
        grad = (np.exp(log_p) * t.sum(axis=-1, keepdims=True) - t) / temp if m else s * 0.0
        out.append((total * scale, grad * (scale if m else 0.0)))
    return out

