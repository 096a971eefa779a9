"""Gradient accumulation: one optimizer step's batch cut into micro-batches, exact on N ranks.

Every rank cuts its shard of the step into M micro-batches and calls the loss and
``backward`` once per micro-batch; the M gradients add up. They add up to the gradient
of one process on the whole global batch only when micro-batch m's loss is weighed by its
share of the step's global count, ``G_m / G`` (G_m: micro-batch m's count on every rank):
the usual ``loss / M`` is that share only when every G_m is the same, and on a short last
micro-batch makes the step's loss a mean of per-micro-batch means. The share is per loss
term, in the term's own count -- samples (CLS), masked patches (iBOT), images (masked
iBOT) -- so one scale per micro-batch from the training loop cannot weigh DINOv2's two
terms exactly; the loss weighs each term itself::

    with loss.micro_batches([3, 1]):     # this rank's micro-batches of the step (samples)
        for s, t in zip(student.split([3, 1], dim=1), probs.split([3, 1], dim=1)):
            loss(s, t).backward()        # weighed by its share: the M losses add up to the step's

(ranks may cut differently, an empty micro-batch included, as long as every rank makes
the same number of calls.) The step's teacher is computed once, on the step's whole
batch, as DINOv2 computes it, and split; a ``sinkhorn_knopp_teacher`` inside
``micro_batches`` normalises the whole batch it is handed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from . import _dist
from .variants import REFERENCE, Variant


class MicroBatches:
    """One loss term's micro-batches of one optimizer step on this rank: their sizes, the
    global count of each (one all-reduce, on the first use), and the share of the step
    each next call is. ``variant``: the known mistakes (:mod:`.variants`)."""

    def __init__(self, sizes: Sequence[int], *, process_group: dist.ProcessGroup | None = None,
                 variant: Variant = REFERENCE) -> None:
        if (isinstance(sizes, (str, bytes)) or not len(sizes)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes)):
            raise ValueError(f"micro_batches needs a non-empty sequence of sizes (ints >= 0), "
                             f"got {sizes!r}")
        self.sizes = [int(n) for n in sizes]
        self.process_group, self.variant = process_group, variant
        self._global: list[float] | None = None
        self.calls = 0

    def share(self, count: int, device: torch.device) -> float:
        """What the next micro-batch's loss (``count`` of this rank's rows) is weighed by:
        its share of the step's global count; 0 when no rank has anything."""
        m = self.calls
        if m >= len(self.sizes):
            raise ValueError(f"micro_batches({self.sizes}) holds {len(self.sizes)} micro-batches; "
                             f"this is loss call {m + 1} inside it")
        if count != self.sizes[m]:
            raise ValueError(f"micro-batch {m} of micro_batches({self.sizes}) has "
                             f"{self.sizes[m]} rows here, the loss was handed {count}")
        self.calls += 1
        if self.variant.micro_batch_weights == "equal":
            return 1.0 / len(self.sizes)
        if self._global is None:  # every rank reaches its first call: one collective
            counts = torch.tensor(self.sizes, dtype=torch.float64, device=device)
            _dist.all_reduce(counts, group=self.process_group)
            self._global = counts.tolist()
        total = sum(self._global)
        return self._global[m] / total if total else 0.0

    def teacher(self, normalise: Callable[[torch.Tensor], torch.Tensor],
                logits: torch.Tensor) -> torch.Tensor:
        """``normalise`` (a Sinkhorn) of the step's teacher logits, micro-batches along
        dim -2: the whole step's at once; or, the planted mistake, each micro-batch alone."""
        if self.variant.sinkhorn_scope == "step":
            return normalise(logits)
        parts = torch.split(logits, self.sizes, dim=-2)
        return torch.cat([normalise(part) for part in parts], dim=-2)

    def done(self) -> None:
        if self.calls not in (0, len(self.sizes)):
            raise ValueError(f"micro_batches({self.sizes}) ended after {self.calls} of its "
                             f"{len(self.sizes)} micro-batches")


class Accumulates:
    """The ``micro_batches`` of a loss with one term (its ``process_group`` and ``variant``
    are the loss's own): calls inside are one optimizer step's micro-batches."""

    _micro: MicroBatches | None = None
    process_group: dist.ProcessGroup | None
    variant: Variant

    @contextmanager
    def micro_batches(self, sizes: Sequence[int]) -> Iterator[MicroBatches]:
        """This rank's micro-batch sizes of the step, in the count the loss is normalised
        by; every loss call inside is the next micro-batch, weighed by its share."""
        if self._micro is not None:
            raise RuntimeError("micro_batches is already open on this loss")
        micro = MicroBatches(sizes, process_group=self.process_group, variant=self.variant)
        self._micro = micro
        try:
            yield micro
        finally:
            self._micro = None
        micro.done()

    def _weighed(self, loss: torch.Tensor, count: int) -> torch.Tensor:
        """``loss`` weighed by its micro-batch's share of the step (as is outside one)."""
        return loss if self._micro is None else loss * self._micro.share(count, loss.device)

    def _teacher(self, normalise: Callable[[torch.Tensor], torch.Tensor],
                 logits: torch.Tensor) -> Any:
        return normalise(logits) if self._micro is None else self._micro.teacher(normalise, logits)
