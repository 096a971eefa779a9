"""RankFailure: one exception for every way a multi-rank run can go wrong.

A failed run always reports every rank's outcome, not only the first rank that failed:
in a collective, the rank that crashed is the cause and the ranks that then raised
"connection closed" are the consequence, and the reader needs to see both.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.results import RankError
from harness.runtime.collective_log import Desync
from harness.runtime.memory import OUT_OF_MEMORY, MemoryFigures
from harness.runtime.stacks import where

# Failure kinds, most severe first: a crash usually *causes* errors on the other ranks
# (their collectives lose a peer), and an error usually leaves the others waiting.
KIND_CRASH = "crash"
KIND_ERROR = "error"
KIND_HANG = "hang"
KINDS = (KIND_CRASH, KIND_ERROR, KIND_HANG)

# Per-rank outcomes.
OK = "ok"
RAISED = "raised"  # the program raised; the rank sent its traceback
CRASHED = "crashed"  # the process died (exit code or signal)
HUNG = "hung"  # still running when the deadline passed, and nothing else failed
KILLED = "killed"  # still running after another rank failed: killed with the pool
OUTCOMES = (OK, RAISED, CRASHED, HUNG, KILLED)
_SEVERITY = {CRASHED: 0, RAISED: 1, HUNG: 2}
_CAUSES = ("Desync", OUT_OF_MEMORY)  # listed first: what the other ranks' failures follow from


class RankFailure(Exception):
    """A run (or a pool start) failed on at least one rank. The pool is dead afterwards.

    kind:     "crash" if any rank died, else "error" if any rank raised, else "hang".
    errors:   one RankError per failed rank (crashed, raised or hung), causes first.
    outcomes: every rank's outcome: "ok" | "raised" | "crashed" | "hung" | "killed".
    stacks:   the Python stacks (faulthandler dumps) of every rank that was still running
              when the pool was killed, hung or killed alike.
    memory:   the run's memory as the parent sampled it (peak private MB per rank, ...).
    """

    def __init__(
        self,
        kind: str,
        errors: list[RankError],
        outcomes: dict[int, str],
        *,
        program: str = "",
        label: str = "",
        stacks: dict[int, str] | None = None,
        elapsed_s: float | None = None,
        diagnosis: str = "",
        collectives: dict[int, list[dict[str, Any]]] | None = None,
        memory: MemoryFigures | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        self.kind = kind
        self.errors = list(errors)
        self.outcomes = dict(sorted(outcomes.items()))
        self.program = program
        self.label = label
        self.stacks = dict(stacks or {})
        self.elapsed_s = elapsed_s
        self.diagnosis = diagnosis  # what broke, named (a desync: the culprit and collective)
        self.collectives = dict(collectives or {})  # each rank's collective log, JSON-able
        self.memory = memory
        super().__init__(self.summary())

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle their args by default; ours has keyword state too.
        return (
            _rebuild_rank_failure,
            (self.kind, self.errors, self.outcomes, self.program, self.label, self.stacks,
             self.elapsed_s, self.diagnosis, self.collectives, self.memory),
        )

    @property
    def ranks(self) -> list[int]:
        """The ranks that failed (have a RankError), causes first."""
        return [e.rank for e in self.errors]

    @property
    def first_error(self) -> RankError | None:
        return self.errors[0] if self.errors else None

    def summary(self) -> str:
        """One line: what failed, where, and every rank's outcome."""
        where = f" in {self.program}" if self.program else ""
        on = f" on {self.label}" if self.label else ""
        outcomes = " ".join(f"{r}={o}" for r, o in self.outcomes.items())
        first = self.errors[0] if self.errors else None
        cause = f": rank {first.rank} {first.type}: {first.message}" if first else ""
        return f"rank {self.kind}{where}{on}{cause} [outcomes {outcomes}]"

    def __str__(self) -> str:
        lines = [self.summary()]
        for err in self.errors:
            lines.append(f"--- rank {err.rank}: {err.type}: {err.message}")
            if err.traceback:
                lines.append(_tail(err.traceback.rstrip(), 4000))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "program": self.program,
            "label": self.label,
            "outcomes": {str(r): o for r, o in self.outcomes.items()},
            "errors": [e.to_json() for e in self.errors],
            "elapsed_s": self.elapsed_s,
            "diagnosis": self.diagnosis,
            "collectives": {str(r): log for r, log in self.collectives.items()},
            "memory": self.memory.to_json() if self.memory is not None else None,
        }


def _rebuild_rank_failure(
    kind: str,
    errors: list[RankError],
    outcomes: dict[int, str],
    program: str,
    label: str,
    stacks: dict[int, str],
    elapsed_s: float | None,
    diagnosis: str = "",
    collectives: dict[int, list[dict[str, Any]]] | None = None,
    memory: MemoryFigures | None = None,
) -> RankFailure:
    return RankFailure(kind, errors, outcomes, program=program, label=label, stacks=stacks,
                       elapsed_s=elapsed_s, diagnosis=diagnosis, collectives=collectives,
                       memory=memory)


def failure_kind(outcomes: dict[int, str]) -> str:
    """The kind of a failed run from its outcomes (see RankFailure)."""
    values = set(outcomes.values())
    if CRASHED in values:
        return KIND_CRASH
    if RAISED in values:
        return KIND_ERROR
    return KIND_HANG


@dataclass
class RunEnd:
    """What the parent knows when a run ends badly, in plain data: :func:`classify`'s input."""

    program: str
    label: str
    deadline_s: float
    outcomes: Mapping[int, str]  # the ranks that finished: OK, RAISED or CRASHED
    errors: Mapping[int, RankError]  # of the ranks that raised or crashed
    running: list[int]  # the ranks still running when the pool was stopped
    stacks: dict[int, str] = field(default_factory=dict)  # of the running ranks
    waiting: Mapping[int, str] = field(default_factory=dict)  # rank -> the collective it waits in
    desync: Desync | None = None  # the collective logs diverged: the run was stopped for it
    failed_first: bool = False  # a rank raised or died before the deadline passed
    out_of_memory: RankError | None = None  # the memory guard stopped the run: on this rank
    elapsed_s: float | None = None
    collectives: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    memory: MemoryFigures | None = None


def classify(end: RunEnd) -> RankFailure:
    """The RankFailure of a run that ended badly: every rank's outcome, causes first.

    Ranks still running are "hung" when nothing else failed before the deadline, "killed"
    when another rank failed first (they were waiting for it). A desync names its culprit
    ("Desync", "hung" if it still ran) and every other running rank as "Waiting" in the
    collective its log shows ("killed"); the run is a hang, whatever finished meanwhile.
    The memory guard's stop is a crash of the rank it names; every other running rank was
    "killed" with the pool.
    """
    outcomes = dict(end.outcomes)
    errors = dict(end.errors)
    desync = end.desync
    if end.out_of_memory is not None:
        stopped = end.out_of_memory.rank
        errors[stopped] = end.out_of_memory
        outcomes.update({rank: KILLED for rank in end.running})
        outcomes[stopped] = CRASHED
    elif desync is not None:
        errors[desync.culprit] = RankError(
            rank=desync.culprit, type="Desync", message=desync.message,
            traceback=end.stacks.get(desync.culprit, "")
            or "(this rank had finished its program: no live stack)")
        for rank in end.running:
            if rank != desync.culprit:
                waiting = end.waiting.get(rank)
                errors[rank] = RankError(
                    rank=rank, type="Waiting",
                    message=(f"rank {rank} waits in {waiting}" if waiting else
                             f"rank {rank} was still running {end.program}"),
                    traceback=end.stacks.get(rank, ""))
            outcomes[rank] = HUNG if rank == desync.culprit else KILLED
    elif end.failed_first:
        outcomes.update({rank: KILLED for rank in end.running})
    else:
        for rank in end.running:
            stack = end.stacks.get(rank, "")
            outcomes[rank] = HUNG
            errors[rank] = RankError(
                rank=rank, type="Hang",
                message=(f"rank {rank} still running {end.program} after the {end.deadline_s:g} s "
                         f"deadline, in {where(stack)}"),
                traceback=stack)
    # Causes first: the rank that broke the collective order or ran out of memory, then
    # by severity.
    ordered = sorted(errors.values(), key=lambda e: (
        e.type not in _CAUSES, _SEVERITY.get(outcomes[e.rank], 3), e.rank))
    return RankFailure(
        KIND_HANG if desync is not None else failure_kind(outcomes), ordered, outcomes,
        program=end.program, label=end.label, stacks=end.stacks, elapsed_s=end.elapsed_s,
        diagnosis=desync.message if desync is not None else "", collectives=end.collectives,
        memory=end.memory)


def signal_name(signum: int) -> str:
    """'SIGSEGV' for 11; 'signal 77' for numbers this platform has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def crash_error(rank: int, returncode: int | None, log_tail: str) -> RankError:
    """The RankError of a rank whose process died.

    returncode follows subprocess: >= 0 is an exit status, < 0 a signal. None means the
    status could not be read (the process that reaps the workers died first).
    exit_code is set for exits, signal for deaths by signal.
    """
    if returncode is None:
        return RankError(rank=rank, type="Crash", message=f"rank {rank} died (exit status unknown)",
                         traceback=log_tail)
    if returncode < 0:
        name = signal_name(-returncode)
        return RankError(rank=rank, type="Crash", message=f"rank {rank} was killed by {name}",
                         traceback=log_tail, signal=name)
    return RankError(rank=rank, type="Crash", message=f"rank {rank} exited with code {returncode}",
                     traceback=log_tail, exit_code=returncode)


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return "[...]\n" + text[-limit:]
