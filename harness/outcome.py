"""What a run's results mean for its exit code: the one rule every command applies.

The command-line contract: 0 all passed · 1 a check failed (mismatch, detected fault, regression, or the
target raised) · 2 bad input (see :mod:`harness.errors`) · 3 a rank hung or crashed.

A result's ``status`` carries the severity: ``"error"`` is reserved for a rank that hung
or crashed; a target that raises inside a case is a *failed* case whose ``failure`` says
``"raised"``. ``dino-harness report`` on a saved run therefore returns the code the run
returned, from the saved statuses alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.runtime.failure import RankFailure

Failure = Literal["raised", "hang", "crash", "verify"]
# Why a case did not produce checks: "raised" the target raised on a rank; "verify" its
# outputs could not be compared (wrong shape or type); "hang" a rank never finished (or a
# collective timed out); "crash" a rank's process died.
SEVERE: frozenset[str] = frozenset({"hang", "crash"})

FAILURE_TEXT: dict[str, str] = {
    "raised": "the target raised",
    "verify": "the target's outputs could not be compared",
    "hang": "a rank hung",
    "crash": "a rank crashed",
}


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    HANG_OR_CRASH = 3
    INTERRUPTED = 130


def classify(failure: RankFailure) -> Failure:
    """A collective that timed out is a hang the process-group timeout caught first."""
    if failure.kind == "crash":
        return "crash"
    if failure.kind == "hang" or any(
        "timed out" in e.message.lower() or "timeout" in e.type.lower() for e in failure.errors
    ):
        return "hang"
    return "raised"


def status_for(failure: Failure) -> Literal["fail", "error"]:
    """``"error"`` only for what stops a rank; a raising target is a failed case."""
    return "error" if failure in SEVERE else "fail"


def exit_code(statuses: Iterable[str]) -> ExitCode:
    """The most severe status decides; skips count as passes."""
    seen = set(statuses)
    if "error" in seen:
        return ExitCode.HANG_OR_CRASH
    if "fail" in seen:
        return ExitCode.FAILED
    return ExitCode.OK


def exit_code_of(results: Iterable[object]) -> ExitCode:
    """:func:`exit_code` of typed results or of their JSON dicts alike."""
    return exit_code(r["status"] if isinstance(r, dict) else r.status  # type: ignore[attr-defined]
                     for r in results)


def rank_failure_fields(failure: RankFailure) -> dict[str, Any]:
    """The ``CaseResult`` fields of a run that failed on a rank (raised, hung or crashed)."""
    kind = classify(failure)
    extra: dict[str, Any] = {"failure": kind,
                             "outcomes": {str(r): o for r, o in failure.outcomes.items()}}
    if failure.diagnosis:
        extra["diagnosis"] = failure.diagnosis
    if failure.collectives:
        extra["collectives"] = {str(r): log for r, log in failure.collectives.items()}
    if failure.memory is not None:
        extra["memory"] = failure.memory.to_json()
    return {"status": status_for(kind),
            "error": failure.errors[0] if failure.errors else None,
            "rank_errors": list(failure.errors),
            "extra": extra}


def verify_failure_fields(exc: BaseException, what: str) -> dict[str, Any]:
    """The ``CaseResult`` fields when the ranks' outputs could not be compared: a failure of
    the target (odd shapes, wrong types), with the parent's traceback."""
    import traceback

    from harness.results import RankError

    return {"status": status_for("verify"),
            "error": RankError(rank=-1, type=type(exc).__name__, message=f"{what}: {exc}",
                               traceback="".join(traceback.format_exception(exc))),
            "extra": {"failure": "verify"}}
