"""Planted faults: the reference with exactly one variation point flipped each.

`dino-harness selfcheck` runs the catalogue against every one and fails if any survives:
the proof that the checks can fail. Each is a normal target (`--impl harness.faults.NAME`),
a three-line module that builds the seed API around its entry here. The variation points
are the reference's own (:mod:`harness.losses.variants`), so a fault cannot drift from the
system under test. ``harness.faults.fake_async`` is the overlap bench's negative control.
"""

from __future__ import annotations

from dataclasses import fields
from typing import NamedTuple

from ..golden.mistakes import Mistake, with_switch
from ..losses.variants import REFERENCE, Variant


class Fault(NamedTuple):
    description: str
    kinds: tuple[str, ...]  # the case kinds that exercise the faulty code (selfcheck runs these)
    variant: Variant  # the one switch this fault flips
    # How the fault shows: "check" a failing check; "hang" / "crash" the rank failure it is
    # designed to cause. Any other outcome (the fault raising, say) does not count as caught.
    caught_by: str = "check"
    #: The catalogue family whose cases catch it: "scale" faults are right at 1-4 ranks
    #: (selfcheck --family scale runs them on cases/scale/ at its world sizes).
    family: str = "correctness"


FAULTS: dict[str, Fault] = {
    "center_not_all_reduced": Fault(
        "The batch center is never all-reduced: each rank centers on its own shard.",
        ("centering", "patch_centering", "comms"),
        Variant(center_all_reduce=False),
    ),
    "center_divisor_no_world": Fault(
        "The all-reduced sum is divided by the local row count: the world size is missing.",
        ("centering", "patch_centering", "comms"),
        Variant(center_divisor="local_rows"),
    ),
    "center_mean_of_means": Fault(
        "The center is the mean of per-rank means: wrong whenever shards are uneven.",
        ("centering", "patch_centering", "comms"),
        Variant(center_divisor="mean_of_means"),
    ),
    "ema_weights_swapped": Fault(
        "The EMA weights are swapped: center = (1 - m) * center + m * batch_center.",
        ("centering", "patch_centering", "comms"),
        Variant(center_ema="swapped"),
    ),
    "center_bf16": Fault(
        "The center is kept in bfloat16.",
        ("centering", "patch_centering", "comms"),
        Variant(center_dtype="bfloat16"),
    ),
    "updates_overwrite": Fault(
        "A second update_center before apply drops the first batch instead of combining both.",
        ("centering", "comms"),
        Variant(updates_accumulate=False),
    ),
    "center_ema_per_micro_batch": Fault(
        "The center's EMA steps at every update_center (every micro-batch), not once per optimizer step.",
        ("centering", "patch_centering"),
        Variant(center_ema_per="update"),
    ),
    "center_mean_of_micro_batch_means": Fault(
        "The step's batch center is the mean of per-micro-batch means: wrong on unequal micro-batches.",
        ("centering", "patch_centering"),
        Variant(center_updates_combine="mean_of_means"),
    ),
    "sinkhorn_rows_not_reduced": Fault(
        "Sinkhorn's prototype (row) sums are not all-reduced.",
        ("sinkhorn", "comms"),
        Variant(sinkhorn_row_all_reduce=False),
    ),
    "sinkhorn_local_count": Fault(
        "Sinkhorn divides by the rank-local sample count B: exact only when B is equal on every rank.",
        ("sinkhorn", "comms"),
        Variant(sinkhorn_sample_mass="local_count"),
    ),
    "sinkhorn_no_shift": Fault(
        "Sinkhorn takes exp(logits / temp) without a shift: overflow to inf, then NaN.",
        ("sinkhorn", "comms"),
        Variant(sinkhorn_shift="none"),
    ),
    "sinkhorn_per_sample_shift": Fault(
        "Sinkhorn shifts each sample by its own max and forgets the factor: inexact at finite iterations.",
        ("sinkhorn", "comms"),
        Variant(sinkhorn_shift="per_sample"),
    ),
    "sinkhorn_one_iteration_short": Fault(
        "Sinkhorn runs n_iterations - 1 iterations.",
        ("sinkhorn", "comms"),
        Variant(sinkhorn_iterations_delta=-1),
    ),
    "sinkhorn_empty_rank_returns_early": Fault(
        "Sinkhorn returns at once on a rank with no samples: the other ranks hang in its collectives.",
        ("sinkhorn",),
        Variant(sinkhorn_empty_rank_skips=True),
        caught_by="hang",
    ),
    "diagonal_not_excluded": Fault(
        "The CLS loss pairs each view with itself too (s == t not excluded).",
        ("cls", "dinov2"),
        Variant(cls_pairs="all"),
    ),
    "loss_local_batch": Fault(
        "The CLS loss is normalised by the local batch, not scaled to the global one.",
        ("cls", "dinov2"),
        Variant(cls_normalisation="local_batch"),
    ),
    "ibot_per_rank_mean": Fault(
        "The iBOT loss is the mean over this rank's masked patches.",
        ("ibot", "dinov2"),
        Variant(ibot_normalisation="local_mean"),
    ),
    "ibot_masked_local_images": Fault(
        "The masked iBOT loss is divided by this rank's image count, as DINOv2's forward_masked does.",
        ("ibot_masked",),
        Variant(ibot_masked_normalisation="local_images"),
    ),
    "loss_mean_of_micro_batch_means": Fault(
        "Each micro-batch's loss is weighed 1 / M, not by its share of the step: a mean of "
        "per-micro-batch means.",
        ("cls", "ibot", "dinov2", "ibot_masked"),
        Variant(micro_batch_weights="equal"),
    ),
    "sinkhorn_per_micro_batch": Fault(
        "The teacher's Sinkhorn normalises each micro-batch alone, not the step's whole batch.",
        ("cls", "ibot", "dinov2"),
        Variant(sinkhorn_scope="micro_batch"),
    ),
    "koleo_local_neighbours": Fault(
        "KoLeo searches each sample's nearest neighbours in its rank's own batch only.",
        ("koleo",),
        Variant(koleo_neighbours="local"),
    ),
    "koleo_gather_no_grad": Fault(
        "KoLeo all-gathers the features without autograd: the neighbours' gradients are lost.",
        ("koleo",),
        Variant(koleo_gather_autograd=False),
    ),
    "koleo_self_offset": Fault(
        "KoLeo masks each sample's self-match at rank x local batch: wrong on uneven shards.",
        ("koleo",),
        Variant(koleo_self_offset="rank_times_local"),
    ),
    "koleo_local_mean": Fault(
        "The KoLeo loss is the mean over the rank's own samples, not scaled to the global batch.",
        ("koleo",),
        Variant(koleo_normalisation="local_batch"),
    ),
    # -- the caller: the reference step around the reference losses, one mistake each
    "step_patch_center_rank_mean": Fault(
        "The step hands the iBOT center a [1, M, K] tensor averaged over dim 1 (DINOv2's "
        "center): the rank's mean token.",
        ("step",), Variant(step_patch_center_input="rank_mean"),
    ),
    "step_center_after_backward": Fault(
        "The step issues update_center after backward: the same numbers, nothing hidden.",
        ("step",), Variant(step_center_timing="after_backward"),
    ),
    "step_center_per_micro_batch": Fault(
        "The step applies a center update every micro-batch, not once per optimizer step.",
        ("step",), Variant(step_center_updates="per_micro_batch"),
    ),
    "step_ema_per_micro_batch": Fault(
        "The step updates the teacher EMA every micro-batch, not once per optimizer step.",
        ("step",), Variant(step_ema="per_micro_batch"),
    ),
    "step_micro_mean": Fault(
        "The step's loss is the plain mean of its micro-batch losses, not weighed by their rows.",
        ("step",), Variant(step_micro_weights="mean"),
    ),
    # -- scale-only: right at 1-4 ranks on the correctness catalogue, wrong in the scale family
    "center_count_float16": Fault(
        "The center's all-reduced row count is held in float16: exact up to 2048 rows.",
        ("centering",), Variant(center_count_dtype="float16"), family="scale",
    ),
    "loss_count_float16": Fault(
        "The loss's all-reduced global count is held in float16: exact up to 2048, inf above 65504.",
        ("cls", "ibot", "dinov2", "ibot_masked"), Variant(loss_count_dtype="float16"),
        family="scale",
    ),
    "world_size_of_one_node": Fault(
        "The loss is scaled by the ranks of one 8-GPU node (LOCAL_WORLD_SIZE), not the world size.",
        ("cls", "ibot", "dinov2", "ibot_masked"), Variant(world_size_cap=8), family="scale",
    ),
    "collectives_over_world": Fault(
        "Every collective spans the whole world, ignoring the process group it is handed.",
        ("centering", "sinkhorn", "cls", "ibot", "dinov2"), Variant(process_group_used=False),
        family="scale",
    ),
}


FAKE_ASYNC = Variant(center_async=False)
"""The overlap bench's negative control (not a correctness fault: every check passes)."""


def switch_of(fault: Fault) -> tuple[str, object]:
    """The one variation point ``fault`` flips, as (field, value)."""
    flipped = [(f.name, getattr(fault.variant, f.name)) for f in fields(Variant)
               if getattr(fault.variant, f.name) != getattr(REFERENCE, f.name)]
    if len(flipped) != 1:
        raise ValueError(f"a planted fault flips exactly one variation point, this one {flipped}")
    return flipped[0]


def mistake_of(fault: Fault) -> Mistake | None:
    """The known mistake (``harness.golden.mistakes``) whose model is this fault's switch:
    what a diagnosis of the fault's failures must name. None for a fault that shows as a
    hang or crash, which no model of numbers explains."""
    return with_switch(*switch_of(fault)) if fault.caught_by == "check" else None


def module_name(fault: str) -> str:
    return f"{__name__}.{fault}"


def catches(fault: Fault, status: str, failure: str | None, failing_checks: int) -> bool:
    """Whether one result catches ``fault``: by a failing check, or by exactly the hang or
    crash it was planted to cause -- never by an unrelated error."""
    if fault.caught_by == "check":
        return status == "fail" and failing_checks > 0
    return status == "error" and failure == fault.caught_by
