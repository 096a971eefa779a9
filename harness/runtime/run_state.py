"""What the parent knows of one run in flight, and one handler per event that updates it.

The pool's gather loop waits on the ranks' pipes and exit sentinels and hands each event
here: an answer (Ready to the pool's start, Ok to a run), an Error, a Collective log
event, or a rank's death. No process and no I/O: the tests drive it with plain messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.results import RankError
from harness.runtime.collective_log import RankLog
from harness.runtime.failure import CRASHED, OK, RAISED
from harness.runtime.protocol import Collective, Error, Message, Ok, ProtocolError, Ready


@dataclass
class RunState:
    """Each rank's answer, error or death so far, and its collective log."""

    run_id: int
    world_size: int
    pending: set[int] = field(default_factory=set)  # ranks that neither answered nor died
    results: dict[int, Any] = field(default_factory=dict)
    outcomes: dict[int, str] = field(default_factory=dict)  # OK, RAISED or CRASHED
    errors: dict[int, RankError] = field(default_factory=dict)
    logs: dict[int, RankLog] = field(default_factory=dict)
    first_failure: float | None = None  # when the first rank raised or died (monotonic)

    def __post_init__(self) -> None:
        self.pending = set(range(self.world_size))
        self.logs = {r: RankLog() for r in range(self.world_size)}

    # ---------------------------------------------------------------- the handlers

    def on_message(self, rank: int, message: Message, now: float) -> None:
        """Route one message to its handler. An answer to an earlier run (another run_id)
        is ignored on purpose: a rank killed mid-run may have sent it just before."""
        if not isinstance(message, (Ready, Ok, Error, Collective)):
            raise ProtocolError(f"rank {rank} sent {message!r}, which only a worker receives")
        if message.run_id != self.run_id:
            return
        if isinstance(message, Collective):
            self.logs[rank].record(message.event)
        elif isinstance(message, Error):
            self.raised(rank, message.error, now)
        else:
            self.answered(rank, message.result if isinstance(message, Ok) else message)

    def answered(self, rank: int, value: Any) -> None:
        self.results[rank] = value
        self._finished(rank, OK)

    def raised(self, rank: int, error: RankError, now: float) -> None:
        self.errors[rank] = error
        self._finished(rank, RAISED)
        self._failed(now)

    def died(self, rank: int, error: RankError, now: float) -> None:
        """The rank's process is gone before it answered (see failure.crash_error)."""
        if rank not in self.pending:
            return  # it answered first: a rank that answered and then exited has answered
        self.errors[rank] = error
        self.outcomes[rank] = CRASHED
        self.pending.discard(rank)
        self._failed(now)

    # ---------------------------------------------------------------- what the loop asks

    def limit(self, deadline: float, grace_s: float) -> float:
        """When to stop waiting: the deadline, or the grace the other ranks get to report
        after the first failure (a peer's crash usually makes them raise at once)."""
        return deadline if self.first_failure is None else min(deadline, self.first_failure + grace_s)

    @property
    def succeeded(self) -> bool:
        return not self.pending and not self.errors

    def results_in_order(self) -> list[Any]:
        return [self.results[r] for r in range(self.world_size)]

    def waiting(self) -> dict[int, str]:
        """Rank -> the collective its log says it waits in, for the ranks still running."""
        return {r: entry.describe() for r in sorted(self.pending)
                if (entry := self.logs[r].waiting) is not None}

    def collectives(self, tail: int) -> dict[int, list[dict[str, Any]]]:
        """The last ``tail`` collectives of every rank that issued any, JSON-able."""
        return {r: [e.to_json() for e in log.entries[-tail:]]
                for r, log in self.logs.items() if log.entries}

    def _finished(self, rank: int, outcome: str) -> None:
        self.outcomes[rank] = outcome
        self.logs[rank].finished = True
        self.pending.discard(rank)

    def _failed(self, now: float) -> None:
        self.first_failure = self.first_failure or now
