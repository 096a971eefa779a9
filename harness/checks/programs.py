"""The SPMD entry point every rank runs for a case: its kind's rank program."""

from __future__ import annotations

from typing import Any

from ..cases import kind as kinds
from ..runtime import RankContext
from .job import Job

PROGRAM = "harness.checks.programs:run"


def run(ctx: RankContext, job: Job) -> dict[str, Any]:
    """Run the case's kind program; an expected exception is a result, not a failure."""
    program = kinds.get(job.case.kind).rank_program
    if not job.case.expect_error:
        return program(ctx, job)
    try:
        program(ctx, job)
    except Exception as exc:  # noqa: BLE001 - the case names what it expects
        return {"raised": type(exc).__name__, "message": str(exc)}
    return {"raised": None, "message": "returned normally"}
