"""The reference's variation points: every place a real implementation is known to go
wrong, as one switch each. The defaults are the correct algorithm.

The planted faults (``harness.faults``) and the overlap bench's fake-async control each
flip exactly one switch, so a fault differs from the system under test by one named
decision and cannot drift from it. The golden oracles model the same decisions in
float64, which is what lets a failed check name the mistake it matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Variant:
    # -- centering: update_center / apply_center_update, of both heads (CLS, iBOT patch) --
    center_all_reduce: bool = True
    """False: each rank centers on its own shard's statistics."""
    center_divisor: Literal["global_rows", "local_rows", "mean_of_means"] = "global_rows"
    """How the all-reduced row sum becomes a mean: by the global row count (exact on
    uneven shards); by this rank's rows (the world size is missing); or the mean of
    per-rank means (every rank weighs one, wrong whenever shards are uneven)."""
    center_ema: Literal["momentum_on_center", "swapped"] = "momentum_on_center"
    """``center = m * center + (1 - m) * batch`` or, swapped, ``(1 - m) * center + m * batch``."""
    center_dtype: Literal["float32", "bfloat16"] = "float32"
    updates_accumulate: bool = True
    """False: a second update_center before an apply drops the first batch."""
    center_count_dtype: Literal["float32", "float16"] = "float32"
    """"float16": the all-reduced row count the center is divided by is held in half
    precision: exact up to 2048 rows, rounded above (a scale-only mistake)."""
    center_async: bool = True
    """False: update_center all-reduces synchronously (nothing left to hide behind the
    backward) -- numerically the reference: only the overlap bench can tell."""
    center_ema_per: Literal["apply", "update"] = "apply"
    """When the EMA steps: once per ``apply_center_update``, over every update queued
    since the last (one step per optimizer step, however many micro-batches); or, as the
    losses that center inside ``forward`` do (lightly, DINO, solo-learn), at every
    ``update_center`` -- M micro-batches make M EMA steps."""
    center_updates_combine: Literal["rows", "mean_of_means"] = "rows"
    """How one apply combines the updates queued since the last (a step's micro-batches):
    every row of every update alike (exact), or the mean of each update's batch center
    (every micro-batch weighs one: wrong when micro-batches are unequal)."""

    # -- Sinkhorn-Knopp ---------------------------------------------------------------
    sinkhorn_shift: Literal["exact", "none", "per_sample"] = "exact"
    """"exact": global per-prototype max, plus a per-sample shift whose factor is kept;
    "none": ``exp(logits / T)`` unshifted (overflows); "per_sample": the per-sample shift
    with its factor dropped (inexact at finite iterations)."""
    sinkhorn_row_all_reduce: bool = True
    """False: prototype (row) sums are rank-local."""
    sinkhorn_sample_mass: Literal["cancelled", "local_count"] = "cancelled"
    """"local_count": every sample column carries ``1 / B_local`` between iterations (the
    seed's ``Q /= B`` with B the rank's own count): exact only when B is equal on all ranks."""
    sinkhorn_iterations_delta: int = 0
    """Added to ``n_iterations`` (-1: one iteration short)."""
    sinkhorn_empty_rank_skips: bool = False
    """True: a rank with no samples returns at once, skipping collectives (a hang)."""

    # -- losses ---------------------------------------------------------------------------
    cls_pairs: Literal["off_diagonal", "all"] = "off_diagonal"
    """"all": each view is paired with its own crop too (s == t not excluded)."""
    cls_normalisation: Literal["global_batch", "local_batch"] = "global_batch"
    """"local_batch": the local loss is a mean over this rank's batch, not scaled to the
    global one (wrong with uneven shards)."""
    ibot_normalisation: Literal["global_count", "local_mean"] = "global_count"
    """"local_mean": the mean over this rank's masked patches (0/0 on a rank with none)."""
    ibot_masked_normalisation: Literal["global_images", "local_images"] = "global_images"
    """How the masked iBOT loss (``forward_masked``) divides its per-image weighted sum:
    by the global image count, scaled by the world size (exact); or, as DINOv2 and DINOv3
    do, by this rank's image count (wrong with uneven images per rank, 0/0 on a rank
    with none)."""
    loss_count_dtype: Literal["float64", "float16"] = "float64"
    """"float16": the all-reduced global count a loss is scaled by (samples, masked
    patches) is held in half precision: exact up to 2048, rounded above, inf above 65504."""
    micro_batch_weights: Literal["step_share", "equal"] = "step_share"
    """Inside a loss's ``micro_batches``: each micro-batch's loss weighed by its share of the
    step's global count (exact), or by 1 / M, the usual ``loss / M`` (the step's loss a
    mean of per-micro-batch means: wrong when micro-batches are unequal)."""
    sinkhorn_scope: Literal["step", "micro_batch"] = "step"
    """Inside a loss's ``micro_batches``: its ``sinkhorn_knopp_teacher`` normalises the
    step's whole batch it is handed (the golden: DINOv2 computes its teacher once per
    step), or each micro-batch's rows alone (the teacher computed per micro-batch)."""
    world_size_cap: int | None = None
    """The world size a loss is scaled by, capped: 8 is the ranks of one 8-GPU node
    (LOCAL_WORLD_SIZE taken for WORLD_SIZE): right on one node, wrong on two."""

    # -- process groups -------------------------------------------------------------------
    process_group_used: bool = True
    """False: every collective spans the whole world, whatever process group the caller
    hands over (right whenever that group is the world)."""


    def group(self, process_group: Any) -> Any:
        """The process group the collectives use: the one handed over, or (the planted
        fault) none, the whole world."""
        return process_group if self.process_group_used else None

    # -- KoLeo --------------------------------------------------------------------------
    koleo_neighbours: Literal["global", "local"] = "global"
    """"local": nearest neighbours searched in the rank's own batch only (no all-gather)."""
    koleo_gather_autograd: bool = True
    """False: the features are all-gathered without autograd, so a sample gets no gradient
    from the pairs it is the neighbour in."""
    koleo_self_offset: Literal["global_offset", "rank_times_local"] = "global_offset"
    """Where a sample's self-match is masked in the gathered batch: at its global index, or
    at ``rank * local batch + i`` (DINOv3's formula: right only on equal shards)."""
    koleo_normalisation: Literal["global_batch", "local_batch"] = "global_batch"
    """"local_batch": the local loss is the mean over this rank's samples, not scaled to the
    global batch (wrong on uneven shards, 0/0 on an empty rank)."""

    # -- the training step (``harness.losses.step``: the caller of the losses) -------------
    step_center_updates: Literal["per_step", "per_micro_batch"] = "per_step"
    """How often a step applies a center update: once per optimizer step, over every
    micro-batch's rows; or every micro-batch (lightly-train issue 968: the center moves M
    times a step, each time towards one micro-batch's mean)."""
    step_ema: Literal["per_step", "per_micro_batch"] = "per_step"
    """How often the teacher follows the student: once, after the optimizer step; or after
    every micro-batch's backward (the student unchanged but for the last)."""
    step_micro_weights: Literal["global_rows", "mean"] = "global_rows"
    """How micro-batch losses add up to the step's: each weighted by its share of the
    step's global rows (exact); or their plain mean (wrong on unequal micro-batches,
    lightly PR 2062)."""
    step_patch_center_input: Literal["rows", "rank_mean"] = "rows"
    """What the patch center is handed: the masked tokens, one row each; or what a
    ``[1, M, K]`` input becomes in a center that averages its input's dim 1 (DINOv2's
    ``iBOTPatchLoss``, fed so by its training code, dinov2 issue 546): the rank's mean
    token, so the center is a mean of per-rank means."""
    step_center_timing: Literal["before_backward", "after_backward"] = "before_backward"
    """When a step issues ``update_center``: before its backward (the all-reduce hides
    behind it, the seed's timing contract) or after it (the same numbers, nothing hidden)."""


REFERENCE = Variant()
