"""What a target computes on one process, for the float64 oracle (no torch here: the
parent decides verdicts without importing the code under test)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Semantics:
    """What a style computes on one process, for the float64 oracle."""

    center_init: str = "first"  # "first": first batch center becomes the center; "zero": EMA from 0
    cls_reduction: str = "mean_off_diagonal"  # or "sum_all_pairs" (sum over pairs of sample means)
    #: The number of teacher views the style's CLS loss takes, when it is fixed (the original
    #: DINO and solo-learn always split the teacher into 2 global crops).
    teacher_views: int | None = None
    #: Where KoLeo finds a sample's neighbours. "global": among every rank's samples (or
    #: their groups), the local loss scaled by the DDP rule (the reference, DINOv3's
    #: KoLeoLossDistributed); "rank": in the rank's own batch, a mean over it (DINOv2's
    #: KoLeoLoss, by design: N ranks are N separate regularisers, not one process).
    koleo_neighbours: str = "global"
    #: Who steps the center. "caller": the training loop calls ``update_center`` (DINOv2,
    #: DINOv3, the reference): a loop accumulating micro-batches can hand it a step's rows
    #: at once. "forward": the loss's own ``forward`` does, at every call, every
    #: micro-batch too (the original DINO, lightly, solo-learn: lightly-train issue 968).
    center_update: str = "caller"
