"""The known mistakes of distributed DINO-family losses: the one place that names them.

Each :class:`Mistake` is a name, the sentence a report shows, the quantity it changes
("center", "sinkhorn", "loss", "koleo", or "step": a training step's caller code) and its model: the float64 simulation of a sharded target
(:mod:`.sharded`) with the mistake's one switch flipped. A failed check is explained by
the mistakes of its quantity whose model reproduces the target's numbers, on the same
data and the same sharding, within the check's tolerance (``harness.checks.diagnose``).

``switch`` is the (field, value) the mistake sets; for every mistake a planted fault makes
it is also that fault's switch of the reference's variation points, which is how selfcheck
knows which mistake each fault must be diagnosed as. A mistake only other codebases make
(a center divided by ``n_local * W``) has a value the reference does not offer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .sharded import Flaws

QUANTITIES = ("center", "sinkhorn", "loss", "koleo", "step")


class Mistake(NamedTuple):
    name: str
    description: str
    quantity: str | tuple[str, ...]  # what it changes: one of QUANTITIES, or several
    switch: tuple[str, Any]  # the (Flaws field, value) that models it
    slack: float = 0.0
    """The model's own resolution, where the mistake rounds (a bf16 center lands on either
    neighbour of a tie): matching uses ``max(tolerance, slack)``."""
    also: tuple[tuple[str, Any], ...] = ()
    """Other switches that model the same mistake done another way (a per-sample shift of
    the raw logits rather than after a per-prototype shift): its numbers in other code."""
    grid: str | None = None
    """A dtype every value the mistake produces lies on (a center kept in bfloat16 is a
    bfloat16 number): values off that grid rule it out, however close they are (a float16
    row count is off by at most 2^-11, well inside a bfloat16 step)."""

    @property
    def quantities(self) -> tuple[str, ...]:
        return self.quantity if isinstance(self.quantity, tuple) else (self.quantity,)

    @property
    def flaws(self) -> Flaws:
        """The model's switches: the correct algorithm with this one mistake."""
        return Flaws()._replace(**{self.switch[0]: self.switch[1]})

    @property
    def models(self) -> tuple[Flaws, ...]:
        """Every form of the mistake: its switch, then each of ``also``."""
        return (self.flaws, *(Flaws()._replace(**{f: v}) for f, v in self.also))


BF16_STEP = 2.0**-7  # one bfloat16 step, relative (8 significant bits)

MISTAKES: tuple[Mistake, ...] = (
    Mistake("center_not_all_reduced", "the batch center is never all-reduced: each rank "
            "centers on its own shard", "center", ("center_all_reduce", False)),
    Mistake("center_mean_of_means", "center is the mean of per-rank means (wrong on uneven "
            "shards)", "center", ("center_divisor", "mean_of_means")),
    Mistake("center_divisor_no_world", "the all-reduced center sum is divided by the local row "
            "count (no world-size divisor)", "center", ("center_divisor", "local_rows")),
    Mistake("center_divisor_local_times_world", "the all-reduced center sum is divided by "
            "local rows x world size (wrong on uneven shards)", "center",
            ("center_divisor", "local_times_world")),
    Mistake("ema_weights_swapped", "the EMA weights are swapped: (1 - m) * center + m * batch",
            "center", ("center_ema", "swapped")),
    Mistake("center_bf16", "the center is kept in bfloat16", "center",
            ("center_dtype", "bfloat16"), slack=BF16_STEP, also=(("center_dtype", "bfloat16_ops"),),
            grid="bfloat16"),
    Mistake("updates_overwrite", "a second update_center before apply drops the first "
            "batch", "center", ("updates_accumulate", False)),
    Mistake("center_ema_per_micro_batch", "the center's EMA steps at every update_center (every "
            "micro-batch), not once per optimizer step", "center", ("center_ema_per", "update")),
    Mistake("center_mean_of_micro_batch_means", "the step's batch center is the mean of "
            "per-micro-batch means (wrong on unequal micro-batches)", "center",
            ("center_updates_combine", "mean_of_means")),
    Mistake("sinkhorn_rows_not_reduced", "Sinkhorn's prototype (row) sums are not all-reduced",
            "sinkhorn", ("sinkhorn_row_all_reduce", False)),
    Mistake("sinkhorn_local_count", "Sinkhorn divides by a rank-local sample count B (Q /= B "
            "with B = n_local or n_local x W: wrong on uneven shards)", "sinkhorn",
            ("sinkhorn_sample_mass", "local_count")),
    Mistake("sinkhorn_no_shift", "Sinkhorn exponentiates without a max shift (float32 "
            "overflow to inf, then NaN)", "sinkhorn", ("sinkhorn_shift", "none")),
    Mistake("sinkhorn_per_sample_shift", "Sinkhorn shifts each sample by its own max and drops "
            "the factor (inexact at finite iterations)", "sinkhorn",
            ("sinkhorn_shift", "per_sample"), also=(("sinkhorn_shift", "per_sample_raw"),)),
    Mistake("sinkhorn_one_iteration_short", "Sinkhorn runs one iteration fewer than asked",
            "sinkhorn", ("sinkhorn_iterations_delta", -1)),
    Mistake("sinkhorn_per_micro_batch", "the teacher's Sinkhorn normalises each micro-batch "
            "alone, not the optimizer step's whole batch", "sinkhorn",
            ("sinkhorn_scope", "micro_batch")),
    Mistake("diagonal_not_excluded", "the CLS loss pairs each view with its own crop too "
            "(s == t not excluded)", "loss", ("cls_pairs", "all")),
    Mistake("loss_local_batch", "the CLS loss is normalised by the local batch, not scaled to "
            "the global one (wrong on uneven shards)", "loss",
            ("cls_normalisation", "local_batch")),
    Mistake("loss_mean_of_micro_batch_means", "each micro-batch's loss is weighed 1 / M "
            "(loss / M), not by its share of the step: the step's loss is a mean of "
            "per-micro-batch means (wrong on unequal micro-batches)", "loss",
            ("micro_batch_weights", "equal")),
    Mistake("center_count_float16", "the center's all-reduced row count is held in float16 "
            "(exact up to 2048 rows, rounded above)", "center",
            ("center_count_dtype", "float16")),
    Mistake("loss_count_float16", "the loss's all-reduced global count is held in float16 "
            "(exact up to 2048, rounded above, inf above 65504)", "loss",
            ("loss_count_dtype", "float16")),
    Mistake("world_size_of_one_node", "the loss is scaled by the ranks of one 8-GPU node "
            "(LOCAL_WORLD_SIZE) instead of the world size", "loss", ("world_size_cap", 8)),
    Mistake("collectives_over_world", "the collectives span the whole world instead of the "
            "process group the target was handed", ("center", "sinkhorn", "loss"),
            ("process_group_used", False)),
    Mistake("ibot_per_rank_mean", "the iBOT loss is the mean over this rank's masked patches "
            "(wrong on uneven counts, 0/0 on a rank with none)", "loss",
            ("ibot_normalisation", "local_mean")),
    Mistake("ibot_masked_local_images", "the masked iBOT loss is divided by this rank's image "
            "count, as DINOv2's forward_masked does (wrong on uneven images per rank, 0/0 on a "
            "rank with none)", "loss", ("ibot_masked_normalisation", "local_images")),
    Mistake("koleo_local_neighbours", "KoLeo searches each sample's nearest neighbours in "
            "its rank's own batch only, where the global batch was meant", "koleo",
            ("koleo_neighbours", "local")),
    Mistake("koleo_gather_no_grad", "KoLeo all-gathers the features without autograd: no "
            "gradient reaches a sample through the pairs it is the neighbour in", "koleo",
            ("koleo_gather_autograd", False)),
    Mistake("koleo_self_offset", "KoLeo masks each sample's self-match at rank x local batch "
            "in the gathered batch (right only on equal shards): on uneven shards a sample "
            "is its own nearest neighbour", "koleo", ("koleo_self_offset", "rank_times_local")),
    Mistake("koleo_local_mean", "the KoLeo loss is the mean over the rank's own samples, not "
            "scaled to the global batch (wrong on uneven shards, 0/0 on an empty rank)", "koleo",
            ("koleo_normalisation", "local_batch")),
    # -- the caller: a training step around correct losses (models: harness.golden.step)
    Mistake("step_center_per_micro_batch", "the step applies a center update every "
            "micro-batch instead of once per optimizer step (lightly-train issue 968)", "step",
            ("step_center_updates", "per_micro_batch")),
    Mistake("step_ema_per_micro_batch", "the step updates the teacher EMA every micro-batch "
            "instead of once per optimizer step (lightly-train issue 968)", "step",
            ("step_ema", "per_micro_batch")),
    Mistake("step_micro_mean", "the step's loss is the plain mean of its micro-batch losses "
            "(wrong on unequal micro-batches, lightly PR 2062)", "step",
            ("step_micro_weights", "mean")),
    Mistake("step_patch_center_rank_mean", "the iBOT center is handed a [1, M, K] tensor that "
            "it averages over dim 1, as DINOv2's training does (dinov2 issue 546): the center "
            "is the mean of per-rank mean tokens (wrong on uneven masked counts)", "step",
            ("step_patch_center_input", "rank_mean")),
    Mistake("step_center_after_backward", "the step issues update_center after backward: its "
            "all-reduce waits behind the gradient all-reduces and hides nothing (same numbers)",
            "step", ("step_center_timing", "after_backward")),
)
BY_NAME: dict[str, Mistake] = {m.name: m for m in MISTAKES}


def of_quantity(quantity: str) -> tuple[Mistake, ...]:
    """The mistakes that change ``quantity``, in catalogue order."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    return tuple(m for m in MISTAKES if quantity in m.quantities)


def with_switch(field: str, value: Any) -> Mistake | None:
    """The mistake a switch models (a planted fault's one flipped variation point)."""
    return next((m for m in MISTAKES if m.switch == (field, value)), None)
