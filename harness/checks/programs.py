"""The SPMD entry point every rank runs for a case, and each kind's verifier."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..runtime import RankContext
from . import centering, comms, losses, sinkhorn
from .job import Job

KINDS: dict[str, ModuleType] = {
    "centering": centering,
    "sinkhorn": sinkhorn,
    "cls": losses,
    "ibot": losses,
    "dinov2": losses,
    "comms": comms,
}
PROGRAM = "harness.checks.programs:run"


def run(ctx: RankContext, job: Job) -> dict[str, Any]:
    """Run the case's kind program; an expected exception is a result, not a failure."""
    program = KINDS[job.case.kind].rank_program
    if not job.case.expect_error:
        return program(ctx, job)
    try:
        program(ctx, job)
    except Exception as exc:  # noqa: BLE001 - the case names what it expects
        return {"raised": type(exc).__name__, "message": str(exc)}
    return {"raised": None, "message": "returned normally"}
