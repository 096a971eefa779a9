"""The one way the rest of the harness runs an SPMD program: an :class:`Executor`.

Checks and the overlap bench name a backend, a world size, a program and its payload;
the executor decides where the ranks live: warm pools of this process
(:class:`PoolExecutor`), or the ranks torchrun launched (:class:`TorchrunExecutor`).
Both raise :class:`~harness.runtime.failure.RankFailure` when a rank raises, hangs or
crashes, and both say up front why a (backend, world size) cannot run here.
"""

from __future__ import annotations

from typing import Any, Protocol

from harness.results import RankError
from harness.runtime.cache import PoolCache
from harness.runtime.failure import RankFailure
from harness.runtime.inline import InlineExecutor
from harness.runtime.spec import PoolSpec


class Executor(Protocol):
    def run(self, backend: str, world_size: int, program: str, payload: Any,
            deadline_s: float) -> list[Any]:
        """``program(ctx, payload)`` on every rank; the ranks' results in rank order."""
        ...

    def unavailable_reason(self, backend: str, world_size: int) -> str | None:
        """Why this (backend, world size) cannot run here (a skip, not a failure), or None."""
        ...

    def last_memory(self, backend: str, world_size: int) -> dict[str, Any] | None:
        """What the ranks of the last run at (backend, world size) held, as sampled (None:
        not sampled), and which kind of ranks they were (``ranks``)."""
        ...

    def close(self) -> None: ...


#: What a result's ``memory.ranks`` says ran the ranks: one process each, forked from the
#: zygote (measured to hold 64 ranks of production-size cases on 2 cores and 24 GiB,
#: README "Production scale"), or the processes torchrun launched.
RANKS_POOL = "processes"
RANKS_TORCHRUN = "torchrun processes"


class PoolExecutor:
    """Warm rank pools of this process, one per (backend, world size)."""

    def __init__(self, cache: PoolCache | None = None, *, pg_timeout_s: float = 30.0,
                 max_pools: int | None = None) -> None:
        self.cache = cache or PoolCache(max_pools=max_pools)
        self.pg_timeout_s = pg_timeout_s

    def spec(self, backend: str, world_size: int) -> PoolSpec:
        return PoolSpec(backend, world_size, pg_timeout_s=self.pg_timeout_s)

    def run(self, backend: str, world_size: int, program: str, payload: Any,
            deadline_s: float) -> list[Any]:
        return self.cache.run(self.spec(backend, world_size), program, payload,
                              deadline_s=deadline_s)

    def unavailable_reason(self, backend: str, world_size: int) -> str | None:
        return self.spec(backend, world_size).unavailable_reason()

    def last_memory(self, backend: str, world_size: int) -> dict[str, Any] | None:
        pool = self.cache.pools().get(self.spec(backend, world_size))
        figures = pool.last_memory if pool is not None else None
        return {"ranks": RANKS_POOL, **(figures.to_json() if figures else {})}

    def close(self) -> None:
        self.cache.close_all()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TorchrunExecutor:
    """The ranks torchrun launched run every multi-rank program together, inline; a
    one-rank program (the single-process reference run) runs on rank 0's own warm pool.

    Under torchrun a failed run leaves the job's process group untrustworthy: every later
    run is reported as failed (``GroupUnusable``) instead of hanging on it.
    """

    def __init__(self, backend: str, *, pg_timeout_s: float = 30.0) -> None:
        self.backend = backend
        self.inline = InlineExecutor(backend, pg_timeout_s=pg_timeout_s)
        self.inline.start()
        self.rank, self.world_size = self.inline.rank, self.inline.world_size
        self.local = PoolExecutor(pg_timeout_s=pg_timeout_s) if self.rank == 0 else None

    def unavailable_reason(self, backend: str, world_size: int) -> str | None:
        if backend != self.backend:
            return f"launched by torchrun with --backend {self.backend}"
        if world_size != self.world_size:
            return f"launched by torchrun with {self.world_size} ranks"
        return None

    def last_memory(self, backend: str, world_size: int) -> dict[str, Any] | None:
        return {"ranks": RANKS_TORCHRUN}

    def run(self, backend: str, world_size: int, program: str, payload: Any,
            deadline_s: float) -> list[Any]:
        if world_size == 1 and self.world_size != 1:
            if self.local is None:
                raise RuntimeError("a one-rank run under torchrun belongs to rank 0")
            return self.local.run(backend, 1, program, payload, deadline_s)
        if not self.inline.alive:
            error = RankError(rank=-1, type="GroupUnusable",
                              message="an earlier case failed under torchrun; its process "
                                      "group cannot be trusted, so this case did not run")
            raise RankFailure("error", [error], {}, program=program, label="torchrun")
        return self.inline.run(program, payload, deadline_s=deadline_s) or []

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        self.inline.close()
