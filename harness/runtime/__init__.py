"""Warm rank pools: start once, run many SPMD programs, never hang, never leak.

    from harness.runtime import PoolCache, PoolSpec
    with PoolCache() as pools:
        results = pools.run(PoolSpec("gloo", 2), "pkg.module:program", payload, deadline_s=60)

See pool.py for the life of a pool, failure.py for what a failed run reports, inline.py
for runs launched by torchrun. Importing this package does not import torch.
"""

from harness.runtime.cache import PoolCache
from harness.runtime.failure import RankFailure
from harness.runtime.inline import InlineExecutor, launched_by_torchrun
from harness.runtime.pool import PoolKilled, PoolUnavailable, RankPool
from harness.runtime.spec import (
    PoolSpec,
    RankContext,
    auto_world_sizes,
    parse_world_sizes,
    pg_timeout_for,
    threads_per_rank,
    visible_gpu_count,
)

__all__ = [
    "InlineExecutor",
    "PoolCache",
    "PoolKilled",
    "PoolSpec",
    "PoolUnavailable",
    "RankContext",
    "RankFailure",
    "RankPool",
    "auto_world_sizes",
    "launched_by_torchrun",
    "parse_world_sizes",
    "pg_timeout_for",
    "threads_per_rank",
    "visible_gpu_count",
]
