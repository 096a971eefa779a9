"""PoolCache: one warm pool per PoolSpec, started on first use, replaced after a failure."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from harness.runtime import lifecycle
from harness.runtime.failure import RankFailure
from harness.runtime.pool import RankPool
from harness.runtime.program import Program
from harness.runtime.spec import PoolSpec


class PoolCache:
    """Lazily created pools, one per spec.

    `max_pools` bounds how many pools stay warm at once (least recently used is closed
    first); None keeps every one. With NCCL, pools of different world sizes share the
    GPUs, so a small bound keeps GPU memory in check.

    Every pool also registers itself for atexit / SIGTERM / SIGINT cleanup (lifecycle.py).
    """

    def __init__(self, *, max_pools: int | None = None, start_timeout_s: float = 120.0,
                 failure_grace_s: float = 1.0, memory_floor_mb: float | None = None) -> None:
        self.max_pools = max_pools
        self.start_timeout_s = start_timeout_s
        self.failure_grace_s = failure_grace_s
        self.memory_floor_mb = memory_floor_mb  # the pools' memory guard (memory.py)
        self.starts = 0  # pools started by this cache: reuse keeps this low
        self.failures = 0
        self._pools: OrderedDict[PoolSpec, RankPool] = OrderedDict()
        self._lock = threading.RLock()
        lifecycle.install_handlers()

    def __enter__(self) -> PoolCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close_all()

    def get(self, spec: PoolSpec) -> RankPool:
        """The live pool for spec, starting one if there is none (or the last one died)."""
        with self._lock:
            pool = self._pools.get(spec)
            if pool is not None and pool.check_health():
                self._pools.move_to_end(spec)
                return pool
            if pool is not None:
                pool.close()
                del self._pools[spec]
            self._evict_for_one_more()
            pool = RankPool(spec, start_timeout_s=self.start_timeout_s, failure_grace_s=self.failure_grace_s,
                            memory_floor_mb=self.memory_floor_mb)
            self.starts += 1
            pool.start()  # raises PoolUnavailable / RankFailure; nothing is cached then
            self._pools[spec] = pool
            return pool

    def run(self, spec: PoolSpec, program: Program, payload: Any = None, *,
            deadline_s: float) -> list[Any]:
        """pool.run on the cached pool; after a RankFailure the pool is dropped (the next
        call starts a fresh one) and the failure re-raised."""
        with self._lock:
            pool = self.get(spec)
            try:
                return pool.run(program, payload, deadline_s=deadline_s)
            except RankFailure:
                self.failures += 1
                self._drop(spec, pool)
                raise
            except BaseException:
                if not pool.alive:
                    self._drop(spec, pool)
                raise

    def pools(self) -> dict[PoolSpec, RankPool]:
        with self._lock:
            return dict(self._pools)

    def close_all(self) -> None:
        """Close every pool of this cache (idempotent)."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def _drop(self, spec: PoolSpec, pool: RankPool) -> None:
        pool.close()
        if self._pools.get(spec) is pool:
            del self._pools[spec]

    def _evict_for_one_more(self) -> None:
        if self.max_pools is None:
            return
        while len(self._pools) >= max(1, self.max_pools):
            _, oldest = self._pools.popitem(last=False)
            oldest.close()
