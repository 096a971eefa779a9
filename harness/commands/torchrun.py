"""`dino-harness run` launched by torchrun (one node or many, env:// rendezvous).

Every rank walks the same plan. The distributed job of each case runs in-process on all
torchrun ranks (InlineExecutor); rank 0 also runs the single-process job on a local
one-rank pool, verifies, and writes the report. The other ranks only take part in the
collectives, in the same order, and exit with rank 0's verdict left to rank 0.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cases import Case
from ..checks.job import Job
from ..checks.programs import PROGRAM
from ..checks.runner import skip_reason
from ..results import RankError
from ..runtime import InlineExecutor, PoolCache, PoolSpec, RankFailure
from ..targets import Target
from .run import execute, plan_cases


class TorchrunExecutor:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.inline = InlineExecutor(backend)
        self.inline.start()
        self.rank, self.world_size = self.inline.rank, self.inline.world_size
        self.local = PoolCache() if self.rank == 0 else None

    def unavailable_reason(self, backend: str, world_size: int) -> str | None:
        if backend != self.backend:
            return f"launched by torchrun with --backend {self.backend}"
        if world_size != self.world_size:
            return f"launched by torchrun with {self.world_size} ranks"
        return None

    def run(self, backend: str, world_size: int, program: str, payload: Job,
            deadline_s: float) -> list[Any]:
        if payload.mode == "single":  # rank 0 only: the same target on one local rank
            assert self.local is not None
            return self.local.run(PoolSpec(backend, 1), program, payload, deadline_s=deadline_s)
        if not self.inline.alive:
            error = RankError(rank=-1, type="GroupUnusable",
                              message="an earlier case failed under torchrun; its process "
                                      "group cannot be trusted, so this case did not run")
            raise RankFailure("error", [error], {}, program=program, label="torchrun")
        return self.inline.run(program, payload, deadline_s=deadline_s)

    def close(self) -> None:
        if self.local is not None:
            self.local.close_all()
        self.inline.close()


def run_under_torchrun(args: argparse.Namespace, target: Target, cases: list[Case]) -> int:
    executor = TorchrunExecutor(args.backend)
    try:
        plan = plan_cases(cases, args.backend, [executor.world_size], args.filter)
        if executor.rank == 0:
            return execute(plan, executor, target, args)
        for case, backend, world_size in plan:
            if skip_reason(case, target) or executor.unavailable_reason(backend, world_size):
                continue
            deadline = args.timeout if args.timeout is not None else case.deadline_s
            try:
                executor.run(backend, world_size, PROGRAM,
                             Job(case, world_size, target.spec, "dist"), deadline)
            except RankFailure:
                continue
        return 0
    finally:
        executor.close()
