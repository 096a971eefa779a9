"""KoLeo regulariser over the global batch: every rank's samples are every sample's
candidate neighbours, and the gradient of each pair reaches both samples' owners."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn as nn
import torch.nn.functional as F

from . import _dist, _validate
from .variants import REFERENCE, Variant


class KoLeoLoss(nn.Module):
    """``-log(d + eps)`` of each sample's distance to its ``topk`` nearest neighbours,
    averaged over the global batch (DINOv2/DINOv3's KoLeo, definitions as theirs:
    ``F.normalize``, the largest inner product, ``PairwiseDistance(2, eps)``).

    Neighbours come from every rank's samples, or from the sample's group of
    ``group_size`` consecutive global samples (ranks in rank order; the last group may be
    shorter). The normalised features are all-gathered with autograd, padded to the
    largest local batch, so uneven local batches and ranks with no sample are exact (they
    join every collective). Local loss = ``W * sum(local terms) / (N * topk)``: the mean
    over ranks is the single-process loss and, since a rank's gradient is that of every
    rank's loss through the gather, ``grad / W`` is the single-process gradient (DDP).
    ``variant``: see :mod:`harness.losses.variants`.
    """

    variant: ClassVar[Variant] = REFERENCE

    def __init__(self, topk: int = 1, group_size: int | None = None, *,
                 process_group: dist.ProcessGroup | None = None,
                 variant: Variant | None = None) -> None:
        super().__init__()
        if variant is not None:
            self.variant = variant  # type: ignore[misc]
        _int_at_least("topk", topk, 1)
        if group_size is not None:
            _int_at_least("group_size", group_size, 2)  # a group of one has no neighbour
        self.topk, self.group_size = topk, group_size
        self.process_group = process_group

    def forward(self, student_output: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        _validate.tensor_ndim("student_output", student_output, (2,))
        v, k = self.variant, self.topk
        x = F.normalize(student_output.float(), p=2, dim=-1, eps=eps)
        n = x.shape[0]
        counts = self._counts(n, x.device)
        total, world = sum(counts), len(counts)
        self._check_sets(total)
        rank = dist.get_rank(self.process_group) if world > 1 else 0
        start = sum(counts[:rank])
        queries = torch.arange(start, start + n, device=x.device)
        if world > 1 and v.koleo_neighbours == "global":
            candidates = self._gather(x, counts)
            columns = torch.arange(total, device=x.device)
            own = rank * n if v.koleo_self_offset == "rank_times_local" else start
        else:  # one process, or the fault: the rank's own batch only
            candidates, columns, own = x, queries, 0
        with torch.no_grad():
            dots = x @ candidates.t()
            if self.group_size:
                apart = (queries[:, None] // self.group_size) != (columns[None, :] // self.group_size)
                dots.masked_fill_(apart, float("-inf"))
            rows = torch.arange(n, device=x.device)
            inside = own + rows < len(columns)  # a column past the batch masks nothing
            dots[rows[inside], own + rows[inside]] = float("-inf")
            index = dots.topk(k, dim=1).indices if n else rows.new_zeros((0, k))
        neighbours = candidates[index]  # [n, k, D]
        distances = F.pairwise_distance(x.unsqueeze(1).expand_as(neighbours), neighbours, eps=eps)
        terms = -torch.log(distances + eps).sum()
        if v.koleo_normalisation == "local_batch":
            return terms / (n * k)  # 0/0 on an empty rank, as that mistake gives
        return terms * (world / (total * k))

    def _counts(self, n: int, device: torch.device) -> list[int]:
        """Every rank's local batch, in rank order (one collective)."""
        if not _dist.is_distributed(self.process_group):
            return [n]
        world = _dist.world_size(self.process_group)
        mine = torch.tensor([n], dtype=torch.int64, device=device)
        counts = [torch.zeros_like(mine) for _ in range(world)]
        dist.all_gather(counts, mine, group=self.process_group)
        return [int(c.item()) for c in counts]

    def _check_sets(self, total: int) -> None:
        """Every neighbour set needs topk samples besides each of its own (the same
        answer on every rank: it depends on the global count only)."""
        size = self.group_size or max(total, 1)
        smallest = min((min(size, total - s) for s in range(0, total, size)), default=0)
        if smallest < self.topk + 1:
            raise ValueError(
                f"KoLeo needs topk + 1 = {self.topk + 1} samples in every neighbour set, got a "
                f"set of {smallest} (global batch {total}, group_size {self.group_size})")

    def _gather(self, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """``[N, D]``: every rank's rows in rank order, padded to one shape for the
        collective; with autograd unless the variant drops it."""
        padded = F.pad(x, (0, 0, 0, max(counts) - x.shape[0]))
        if self.variant.koleo_gather_autograd:
            parts = dist_fn.all_gather(padded, group=self.process_group or dist.group.WORLD)
        else:
            parts = [torch.empty_like(padded) for _ in counts]
            dist.all_gather(parts, padded.detach(), group=self.process_group)
        return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])


def _int_at_least(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
