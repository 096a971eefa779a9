"""How much memory a case needs at a world size, before anything runs.

A run refuses (exit 2, with the estimate) a case this machine cannot hold, rather than let
the kernel's OOM killer pick a victim halfway through (harness/commands/common.py); the
runtime's guard (harness/runtime/memory.py) stops a pool that outgrows it anyway.

The data dominate at production sizes: the case's tensors over the whole world,
``data`` bytes in float64. Measured (benchmarks/bench_world_sizes.py, PSS of the whole
process tree), they are held several times over, and never all at once in one process:

* every rank its own rows, as float64 data, the tensors handed to the target and what it
  returns: ~``RANK_COPIES`` x its share, plus ``RANK_MB`` of its own (a warm rank after its
  first case: 15-25 MB private, measured);
* the one-process run, the whole batch the same way: ~``SINGLE_COPIES`` x data;
* the parent, the global batch for the oracle, its float64 copies and temporaries (the
  log-domain Sinkhorn oracle holds several), and every rank's and the one-process run's
  outputs: ~``PARENT_COPIES`` x data;
* ``BASE_MB``: the parent and the zygote, torch imported.

Measured (``python benchmarks/bench_world_sizes.py``, 2 cores, 24 GiB): at W = 64 a
centering case (K = 4096, 8 samples per rank, 6 steps) peaked at 3.2 GB, estimated 5.7;
a 10-view CLS loss (K = 4096) 3.5 GB, estimated 5.7; a Sinkhorn at K = 65536, 16 samples
per rank (data 0.5 GB), 8.8 GB, estimated 10.5 -- the data held ~12 times over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import kind as kinds

MB = 2**20
BASE_MB = 800.0
RANK_MB = 40.0
RANK_COPIES = 3.0
SINGLE_COPIES = 3.0
PARENT_COPIES = 8.0


@dataclass(frozen=True)
class Footprint:
    """A case's memory at one world size, in MB, by where it is held."""

    data_mb: float  # the case's tensors over the whole world, float64
    ranks_mb: float
    single_mb: float
    parent_mb: float

    @property
    def total_mb(self) -> float:
        return BASE_MB + self.ranks_mb + self.single_mb + self.parent_mb

    def to_json(self) -> dict[str, float]:
        return {"estimate_mb": round(self.total_mb), "data_mb": round(self.data_mb, 1)}


def data_bytes(case: Any, world_size: int) -> int:
    """Every tensor of the case over the whole world, as the float64 the data are made in."""
    return sum(8 * math.prod(spec.lead(case)) * case.global_count(name, world_size) * case.K
               for name, spec in kinds.get(case.kind).tensors.items())


def footprint(case: Any, world_size: int) -> Footprint:
    data = data_bytes(case, world_size) / MB
    groups = len(case.groups(world_size))  # one one-process run per process group, in turn
    return Footprint(data_mb=data, ranks_mb=world_size * RANK_MB + RANK_COPIES * data,
                     single_mb=SINGLE_COPIES * data / groups, parent_mb=PARENT_COPIES * data)
