"""Micro-batches (the ``micro_batches`` key): what the kinds that have them share.

A rank cuts its shard of one optimizer step into M micro-batches (``Case.micro_sizes``)
and calls the target once per micro-batch; the single-process run is the golden, one
step on the whole batch in one call. What must hold is that the M calls add up to that
step: the centering kinds' M ``update_center`` calls before one apply give one EMA step
over every micro-batch's rows; the loss kinds' M backward passes accumulate the
single-process gradient when each micro-batch's loss is weighed by its share of the
step's global count, ``G_m / G`` (G_m: micro-batch m's count on every rank of the process
group), which is the usual ``loss / M`` only when every G_m is the same.

Who weighs: a loss that has ``micro_batches(...)`` (the reference) is called inside it
and weighs each of its terms itself -- the only way DINOv2's two terms, whose shares
differ (samples, masked patches), can each get their own; otherwise the loop (the rank
program) multiplies each micro-batch's loss by its share (:func:`shares`), which is
exact for a one-term loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..golden import sharded

if TYPE_CHECKING:
    from ..checks.job import Job

#: The names the kinds give the counts their micro-batches cut (``Kind.micro_counts``).
SAMPLES, MASKED, IMAGES = "samples", "masked patches", "images"


def active(job: Job) -> bool:
    """Whether this run cuts its step into micro-batches: the N-rank run of a case with
    them (the single-process run is the golden: the whole step in one call)."""
    return job.mode == "dist" and job.case.micro_batches != 1


def sizes(job: Job, what: str) -> list[list[int]]:
    """Every world rank's micro-batch sizes of the count ``what`` (one micro-batch each
    without the key)."""
    case = job.case
    return case.micro_sizes(case.micro_counts(job.world_size)[what])


def scope_sizes(job: Job, what: str) -> list[list[int]]:
    """The micro-batch sizes of the scope's ranks (a process group's, or the world's); in
    the single-process run one micro-batch, the scope's whole count."""
    if job.mode == "single":
        counts = job.case.micro_counts(job.world_size)[what]
        return [[sum(counts[r] for r in job.ranks)]]
    every = sizes(job, what)
    return [every[r] for r in job.ranks]


def group_of(job: Job, rank: int) -> range:
    """The world ranks of ``rank``'s process group (the world when ungrouped)."""
    size = job.case.group_size or job.world_size
    first = rank - rank % size
    return range(first, first + size)


def shares(job: Job, what: str, rank: int) -> list[float]:
    """What the loop weighs ``rank``'s micro-batches by: each one's share of its process
    group's step, ``G_m / G`` (the golden's weights, ``sharded.micro_weights``)."""
    every = sizes(job, what)
    return sharded.micro_weights([every[r] for r in group_of(job, rank)])


def cut(value: Any, counts: Sequence[int], axis: int) -> list[Any]:
    """``value`` (an array or tensor) cut into consecutive pieces of ``counts`` along
    ``axis``: a micro-batch each."""
    out, start = [], 0
    for n in counts:
        index = [slice(None)] * value.ndim
        index[axis] = slice(start, start + n)
        out.append(value[tuple(index)])
        start += n
    return out


def target_weighs(loss: Any) -> bool:
    """Whether a loss object weighs its own micro-batches (has ``micro_batches``)."""
    return callable(getattr(loss, "micro_batches", None))
