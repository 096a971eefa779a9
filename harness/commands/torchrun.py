"""`dino-harness run` under torchrun: every rank joins each case's distributed run.

Rank 0 plans, verifies and reports exactly as a plain run does (its executor is a
:class:`~harness.runtime.executor.TorchrunExecutor`); the other ranks only follow the
same plan, taking part in each multi-rank run and skipping what rank 0 skips.
"""

from __future__ import annotations

from ..cases import Case
from ..checks.job import Job
from ..checks.runner import PROGRAM, skip_reason
from ..runtime import RankFailure
from ..runtime.executor import TorchrunExecutor
from ..targets import Target


def follow(plan: list[tuple[Case, str, int]], executor: TorchrunExecutor, target: Target,
           timeout_s: float | None) -> int:
    """A non-zero rank's part of the plan: the same dist runs, in the same order."""
    for case, backend, world_size in plan:
        if skip_reason(case, target) or executor.unavailable_reason(backend, world_size):
            continue
        deadline = timeout_s if timeout_s is not None else case.deadline_s
        try:
            executor.run(backend, world_size, PROGRAM,
                         Job(case, world_size, target.spec, "dist"), deadline)
        except RankFailure:
            continue  # rank 0 reports it; the next run fails fast as GroupUnusable
    return 0
