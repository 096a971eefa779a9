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
from .koleo import EPS, nearest, normalise, pair_terms, to_features
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
    ibot_masked_normalisation: Literal["global_images", "local_images"] = "global_images"
    koleo_neighbours: Literal["global", "local"] = "global"
    koleo_gather_autograd: bool = True
    koleo_self_offset: Literal["global_offset", "rank_times_local"] = "global_offset"
    koleo_normalisation: Literal["global_batch", "local_batch"] = "global_batch"
    center_count_dtype: Literal["float32", "float16"] = "float32"
    loss_count_dtype: Literal["float64", "float16"] = "float64"
    world_size_cap: int | None = None
    #: False: the collectives span the whole world, not the process group handed over
    #: (the kinds model it by predicting the group's ranks from the whole world's shards).
    process_group_used: bool = True
    # -- micro-batches (one optimizer step in several calls) --------------------------
    center_ema_per: Literal["apply", "update"] = "apply"
    center_updates_combine: Literal["rows", "mean_of_means"] = "rows"
    micro_batch_weights: Literal["step_share", "equal"] = "step_share"
    #: "micro_batch": the teacher of each micro-batch normalised alone (the kinds model it
    #: by handing :func:`sinkhorn` each micro-batch's rows of every rank).
    sinkhorn_scope: Literal["step", "micro_batch"] = "step"
    # -- the training step that calls the losses (``harness.golden.step`` models them) ----
    step_center_updates: Literal["per_step", "per_micro_batch"] = "per_step"
    step_ema: Literal["per_step", "per_micro_batch"] = "per_step"
    step_micro_weights: Literal["global_rows", "mean"] = "global_rows"
    step_patch_center_input: Literal["rows", "rank_mean"] = "rows"
    step_center_timing: Literal["before_backward", "after_backward"] = "before_backward"


CORRECT = Flaws()


def held(count: float, dtype: str) -> float:
    """A count as a variable of ``dtype`` holds it (float16: exact to 2048, inf > 65504)."""
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return float(np.float16(count))
    return float(count)


# ------------------------------------------------------------------------------ centering


def centers(batches: Sequence[Sequence[Sequence[F64]]], momentum: float, flaws: Flaws = CORRECT,
            *, center_init: str = "first") -> list[list[F64 | None]]:
    """Every rank's center before each step and after the last apply.

    ``batches[rank][step][update]`` is the ``[rows, K]`` batch a rank passes to one
    ``update_center`` (several per step: gradient accumulation, micro-batches); each step
    applies what the steps before it queued, once. ``center_init`` is the style's start:
    "first" (no center until the first batch center becomes it) or "zero" (an EMA from
    zero). Returns ``[rank][0..steps]``: ``[K]`` arrays, None where a rank has no center yet.
    """
    world = len(batches)
    k = next(b.shape[-1] for rank in batches for step in rank for b in step)
    state: list[F64 | None] = [None if center_init == "first" else np.zeros(k)] * world
    out = [[None if c is None else c.copy()] for c in state]
    for step in range(len(batches[0])):
        state = center_step(state, [batches[r][step] for r in range(world)], momentum, flaws)
        for rank in range(world):
            out[rank].append(None if state[rank] is None else state[rank].copy())
    return out


def center_step(state: Sequence[F64 | None], updates: Sequence[Sequence[F64]], momentum: float,
                flaws: Flaws = CORRECT) -> list[F64 | None]:
    """Every rank's center after one apply of what it queued since the last:
    ``updates[rank][u]`` the rows of its u-th ``update_center`` (each a collective, so
    every rank queues as many). ``state[rank]``: its center before (None: none yet)."""
    world = len(updates)
    kept = range(len(updates[0]))
    if not flaws.updates_accumulate:
        kept = kept[-1:]  # a second update drops the first
    packed = [[_packed(updates[r][u], flaws) for u in kept] for r in range(world)]
    out: list[F64 | None] = []
    for rank in range(world):
        parts = [sum(packed[r][i] for r in range(world)) if flaws.center_all_reduce
                 else packed[rank][i] for i in range(len(kept))]
        rows = [updates[rank][u].reshape(-1, updates[rank][u].shape[-1]).shape[0] for u in kept]
        # one EMA step over the step's updates, or (the mistake) one per update
        applies = ([([p], [n]) for p, n in zip(parts, rows, strict=True)]
                   if flaws.center_ema_per == "update" else [(parts, rows)])
        center = state[rank]
        for queued, local in applies:
            center = _apply(center, _combined(queued, flaws), sum(local), world, momentum, flaws)
        out.append(center)
    return out


def _combined(parts: Sequence[F64], flaws: Flaws) -> F64:
    """One apply's queued ``[row sum, row count]`` updates as one: summed (every row alike),
    or -- the mean of per-micro-batch means -- each update's mean averaged, at the summed
    count (so the apply's divisor gives that average back)."""
    total = sum(parts)
    if flaws.center_updates_combine != "mean_of_means":
        return total
    mean = np.mean([p[:-1] / max(p[-1], 1.0) for p in parts], axis=0)
    return np.append(mean * total[-1], total[-1])


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
               "local_times_world": float(local_rows * world)}.get(
        flaws.center_divisor, held(total[-1], flaws.center_count_dtype))
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
    world = _capped(len(students), flaws)
    every_pair = reduction == "sum_all_pairs" or flaws.cls_pairs == "all"
    global_b = held(sum(s.shape[1] for s in students), flaws.loss_count_dtype)
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
    world = _capped(len(students), flaws)
    global_m = held(sum(s.shape[0] for s in students), flaws.loss_count_dtype)
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


def ibot_masked_local(students: Sequence[F64], teachers: Sequence[F64], masks: Sequence[np.ndarray],
                      temp: float, flaws: Flaws = CORRECT) -> list[tuple[float, F64]]:
    """Every rank's (local masked iBOT loss, its gradient w.r.t. the rank's ``[M_r, K]``
    patches), ``masks[r]`` the ``[images_r, N]`` masks of the rank's images.

    Each patch weighs ``1 / max(1, masked count of its image)``. Correct: the weighted sum
    scaled by ``W / global images`` (0 everywhere when no rank has an image);
    ``ibot_masked_normalisation="local_images"``: divided by the rank's own image count
    (DINOv2's ``forward_masked``; NaN, 0/0, on a rank with none).
    """
    world = _capped(len(students), flaws)
    global_images = held(sum(m.shape[0] for m in masks), flaws.loss_count_dtype)
    out = []
    for s, t, mask in zip(students, teachers, masks, strict=True):
        per_image = 1.0 / np.maximum(1, mask.sum(axis=1))
        weight = np.broadcast_to(per_image[:, None], mask.shape)[mask][:, None]
        if flaws.ibot_masked_normalisation == "local_images":
            scale = 1.0 / mask.shape[0] if mask.shape[0] else math.nan
        else:
            scale = world / global_images if global_images else 0.0
        log_p = log_softmax(s / temp) if s.shape[0] else s
        total = -float(np.sum(weight * t * log_p))
        grad = weight * (np.exp(log_p) * t.sum(axis=-1, keepdims=True) - t) / temp
        out.append((total * scale, grad * scale))
    return out


def micro_weights(counts: Sequence[Sequence[int]], flaws: Flaws = CORRECT) -> list[float]:
    """What each micro-batch's loss is weighed by, from every rank's ``counts[rank][m]`` (in
    the loss term's own count): its share of the step's global count, ``G_m / G`` (0 when
    no rank has anything); ``micro_batch_weights="equal"``: 1 / M (``loss / M``)."""
    m = len(counts[0])
    if flaws.micro_batch_weights == "equal":
        return [1.0 / m] * m
    global_counts = [float(sum(column)) for column in zip(*counts, strict=True)]
    total = sum(global_counts)
    return [g / total if total else 0.0 for g in global_counts]


def accumulated(per_micro: Sequence[Sequence[tuple[float, F64]]], weights: Sequence[float],
                axis: int) -> list[tuple[float, F64]]:
    """Every rank's (step loss, step gradient) from ``per_micro[m][rank]``, each micro-batch's
    (local loss, gradient w.r.t. its rows) weighed by ``weights[m]``: the loss summed, the
    gradients of the micro-batches' rows joined along ``axis`` (they are consecutive)."""
    world = len(per_micro[0])
    out = []
    for rank in range(world):
        parts = [(w * micro[rank][0], w * micro[rank][1])
                 for w, micro in zip(weights, per_micro, strict=True)]
        out.append((float(sum(loss for loss, _ in parts)),
                    np.concatenate([grad for _, grad in parts], axis=axis)))
    return out


# ---------------------------------------------------------------------------------- KoLeo


class KoLeoPairs(NamedTuple):
    """One rank's (sample, neighbour) pairs, as global indices, and its loss's scale."""

    queries: np.ndarray
    neighbours: np.ndarray
    scale: float


def koleo_pairs(shards: Sequence[F64], topk: int = 1, group_size: int | None = None,
                flaws: Flaws = CORRECT, eps: float = EPS) -> list[KoLeoPairs]:
    """Every rank's pairs and scale (see :func:`koleo_local`). A pair ``(i, i)`` is a sample
    that found itself: its self-match was masked elsewhere."""
    world, sizes = len(shards), [s.shape[0] for s in shards]
    x_hat = normalise(np.concatenate([np.asarray(s, dtype=np.float64) for s in shards]), eps)
    total = x_hat.shape[0]
    block = np.arange(total) // group_size if group_size else np.zeros(total, dtype=int)
    gathered = world > 1 and flaws.koleo_neighbours == "global"
    out = []
    for rank, start in enumerate(np.cumsum([0, *sizes[:-1]])):
        n = sizes[rank]
        queries = np.arange(start, start + n)
        columns = np.arange(total) if gathered else queries
        dots = x_hat[queries] @ x_hat[columns].T
        dots[block[queries][:, None] != block[columns][None, :]] = -np.inf
        own = rank * n if gathered and flaws.koleo_self_offset == "rank_times_local" else (
            start if gathered else 0)
        rows = np.arange(n)
        inside = own + rows < len(columns)  # a column past the batch masks nothing
        dots[rows[inside], own + rows[inside]] = -np.inf
        neighbours = columns[nearest(dots, topk)].reshape(-1) if n else np.zeros(0, dtype=int)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = (1.0 / (n * topk) if n else math.nan) \
                if flaws.koleo_normalisation == "local_batch" else world / (total * topk)
        out.append(KoLeoPairs(np.repeat(queries, topk), neighbours, scale))
    return out


def koleo_local(shards: Sequence[F64], topk: int = 1, group_size: int | None = None,
                flaws: Flaws = CORRECT, eps: float = EPS) -> list[tuple[float, F64]]:
    """Every rank's (local KoLeo loss, the gradient its ``[n_r, D]`` features receive).

    Correct (the reference): each sample's neighbours among every rank's samples (its
    group of ``group_size`` consecutive global samples), found in the all-gathered batch
    with the sample itself masked at its global index; local loss ``W * sum(local terms) /
    (N * topk)``; the gather carries autograd, so the gradient a rank receives is that of
    the sum of every rank's loss, and ``grad / W`` is the single-process gradient. One
    shard is one process: nothing is gathered, whatever the switches say.
    """
    sizes = [s.shape[0] for s in shards]
    x = np.concatenate([np.asarray(s, dtype=np.float64) for s in shards])
    x_hat = normalise(x, eps)
    gathered = len(shards) > 1 and flaws.koleo_neighbours == "global"
    grad_hat = np.zeros_like(x_hat)
    losses = []
    for i, j, scale in koleo_pairs(shards, topk, group_size, flaws, eps):
        terms, grad = pair_terms(x_hat[i], x_hat[j], eps)
        losses.append(float(terms.sum()) * scale)
        np.add.at(grad_hat, i, grad * scale)
        if not gathered or flaws.koleo_gather_autograd:  # else: the neighbours are constants
            np.add.at(grad_hat, j, -grad * scale)
    grads = to_features(x, grad_hat, eps)
    starts = np.cumsum([0, *sizes[:-1]])
    return [(loss, grads[start:start + n]) for loss, start, n in zip(losses, starts, sizes, strict=True)]


def _capped(world: int, flaws: Flaws) -> int:
    """The world size a loss is scaled by (capped: the ranks of one node)."""
    return world if flaws.world_size_cap is None else min(world, flaws.world_size_cap)
