"""What every rank needs to run one case: the case, the world size, the target, the mode.

Ranks rebuild their data from the case seed themselves (deterministic), so only this small
description crosses the pipe, never the data. A rank builds its own rows only
(:meth:`Job.shard`); the global batch (:meth:`Job.data`) is the parent's, for the oracle.
"""

from __future__ import annotations

import functools
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
    case: Case
    world_size: int
    target: TargetSpec
    #: "dist": this rank's shard; "single": the whole global batch on one rank.
    mode: Literal["dist", "single"] = "dist"

    def target_api(self) -> Target:
        return load_target(self.target.impl, self.target.api, self.target.adapter)

    def data(self) -> dict[str, np.ndarray]:
        """The global batch (read-only: every tensor handed to a target is a copy). The
        parent's, for the oracle: a rank asks for its :meth:`shard` only."""
        return _global_data(self.case, self.world_size)

    def tolerance(self, quantity: str) -> float:
        """The case's tolerance of ``quantity`` at this job's world size, with its rule."""
        return self.case.tolerance(quantity, self.world_size)

    def shard(self, tensor: str, rank: int) -> np.ndarray:
        """This rank's rows of ``tensor`` (single mode: the whole batch), generated alone."""
        sizes, index = self.sizes(self.case.shard_sizes(tensor, self.world_size), rank)
        return _rows(self.case, self.world_size, tensor, shard_range(sizes, index))

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
