"""What every rank needs to run one case: the case, the world size, the target, the mode.

Ranks rebuild their data from the case seed themselves (deterministic), so only this small
description crosses the pipe, never the data. A rank builds its own rows only
(:meth:`Job.shard`); the global batch (:meth:`Job.data`) is the parent's, for the oracle.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..cases import Case, shard
from ..cases.sharding import shard_range
from ..targets import Target, TargetSpec, load_target

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Job:
    """One run of a case: ``world_size`` ranks on their shards ("dist"), or one rank on the
    whole batch ("single"). A case with ``group_size`` splits the world into process groups,
    each its own world for the golden: ``group`` j scopes a job to the ranks of group j (the
    single run of that group's batch, and the verifier's view of that group's ranks)."""

    case: Case
    world_size: int
    target: TargetSpec
    #: "dist": this rank's shard; "single": the whole batch of the scope on one rank.
    mode: Literal["dist", "single"] = "dist"
    group: int | None = None

    def target_api(self) -> Target:
        return load_target(self.target.impl, self.target.api, self.target.adapter,
                           self.target.step)

    # -- the scope: the whole world, or one process group ---------------------------------
    @property
    def ranks(self) -> range:
        """The world ranks this job is about."""
        if self.group is None:
            return range(self.world_size)
        size = self.case.group_size
        return range(self.group * size, (self.group + 1) * size)

    @property
    def size(self) -> int:
        """The world size the loss sees: the scope's ranks (a group's, when grouped)."""
        return len(self.ranks)

    def groups(self) -> list[Job]:
        """One view per process group (``[self]`` when the case has none)."""
        if self.case.group_size is None:
            return [self]
        return [Job(self.case, self.world_size, self.target, self.mode, group=j)
                for j in range(self.world_size // self.case.group_size)]

    def counts(self, tensor: str) -> list[int]:
        """Per-rank rows of ``tensor`` over the scope's ranks."""
        sizes = self.case.shard_sizes(tensor, self.world_size)
        return [sizes[r] for r in self.ranks]

    def world_counts(self, tensor: str, rank: int) -> list[int]:
        """Per-rank rows of ``tensor`` over the world rank ``rank`` computes in: its
        process group's ranks on a grouped dist run, else the scope's."""
        group = self.case.group_size
        if self.mode == "single" or group is None:
            return self.counts(tensor)
        sizes = self.case.shard_sizes(tensor, self.world_size)
        return sizes[rank - rank % group:rank - rank % group + group]

    def _scope_rows(self, tensor: str) -> range:
        sizes = self.case.shard_sizes(tensor, self.world_size)
        start = sum(sizes[:self.ranks.start])
        return range(start, start + sum(sizes[r] for r in self.ranks))

    # -- data ----------------------------------------------------------------------------
    def data(self) -> dict[str, np.ndarray]:
        """The scope's global batch (read-only: every tensor handed to a target is a copy).
        The parent's, for the oracle: a rank asks for its :meth:`shard` only."""
        if self.group is None:
            return _global_data(self.case, self.world_size)
        return {name: _rows(self.case, self.world_size, name, self._scope_rows(name))
                for name in self.case.tensor_names()}

    def tolerance(self, quantity: str) -> float:
        """The case's tolerance of ``quantity`` at this job's world size, with its rule."""
        return self.case.tolerance(quantity, self.world_size)

    def shard(self, tensor: str, rank: int) -> np.ndarray:
        """This rank's rows of ``tensor`` (single mode: the scope's whole batch), generated
        alone."""
        if self.mode == "single":
            return _rows(self.case, self.world_size, tensor, self._scope_rows(tensor))
        sizes = self.case.shard_sizes(tensor, self.world_size)
        return _rows(self.case, self.world_size, tensor, shard_range(sizes, rank))

    def sizes(self, counts: list[int], rank: int) -> tuple[list[int], int]:
        """Shard sizes and the index of this rank's shard (single mode: one shard of all)."""
        if self.mode == "single":
            return [sum(counts)], 0
        return counts, rank

    def local(self, array: np.ndarray, counts: list[int], rank: int, axis: int) -> np.ndarray:
        sizes, index = self.sizes(counts, rank)
        return shard(array, sizes, index, axis)


@functools.lru_cache(maxsize=8)
def _rows(case: Case, world_size: int, tensor: str, rows: range) -> np.ndarray:
    array = case.rows(tensor, world_size, rows)
    array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=4)
def _global_data(case: Case, world_size: int) -> dict[str, np.ndarray]:
    data = case.global_data(world_size)
    for array in data.values():
        array.flags.writeable = False
    return data


def to_torch(array: np.ndarray, dtype: str, device: torch.device) -> torch.Tensor:
    """A fresh copy of the case's data in the case's dtype on the rank's device: a target
    that modifies its input in place cannot corrupt the data of a later call."""
    return torch.tensor(array, dtype=DTYPES[dtype], device=device)


def quantised(array: np.ndarray, dtype: str) -> np.ndarray:
    """The float64 values the target actually sees after the cast to ``dtype``."""
    return torch.tensor(array).to(DTYPES[dtype]).double().numpy()


def num_samples_arg(convention: str, local_rows: int, global_rows: int,
                    device: torch.device) -> int | torch.Tensor | None:
    """The ways callers pass Sinkhorn's sample count (the ``num_samples`` key); a correct
    target gives the same answer. ``local_int`` is what stable-pretraining's iBOT, DINOv2
    and DINOv3 methods pass: a plain int of the rank's own count."""
    if convention == "global_int":
        return global_rows
    if convention == "local_tensor":
        return torch.tensor(local_rows, device=device)
    if convention == "local_int":
        return local_rows
    return None


def to_host(value: Any) -> Any:
    """Detach to CPU float64 numpy for the trip back through the pipe (None passes)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return value


# ------------------------------------------------------------------ the rank's process group
_GROUP: ContextVar[Any] = ContextVar("dino_harness_process_group", default=None)


@contextmanager
def process_groups(job: Job) -> Iterator[None]:
    """On every rank of a grouped dist run: split the world into the case's process groups
    (every rank takes part in making every group), hand this rank's to the target through
    :func:`group_kwargs`, and destroy it after the case (a warm pool runs many cases)."""
    if job.mode != "dist" or job.case.group_size is None or job.world_size == 1:
        yield
        return
    import torch.distributed as dist

    mine, _ = dist.new_subgroups(job.case.group_size)
    token = _GROUP.set(mine)
    try:
        yield
    finally:
        _GROUP.reset(token)
        dist.destroy_process_group(mine)


def group_kwargs() -> dict[str, Any]:
    """``{"process_group": pg}`` for the constructors and calls of a grouped case's target
    (the seed API's keyword), ``{}`` otherwise: an ungrouped target is called as before."""
    group = _GROUP.get()
    return {} if group is None else {"process_group": group}

