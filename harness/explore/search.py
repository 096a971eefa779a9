"""The search: Hypothesis draws case tables, the judge runs each as ``run`` would, and every
failure is an exception Hypothesis keeps and shrinks -- one per signature.

Hypothesis does the searching, the shrinking and the example database; this module
only decides when to stop, and remembers what it saw:

* **The budget** is wall time for the search and the shrinking together. A round that has
  found nothing when it runs out is ended at once (:class:`BudgetSpent`, a
  ``BaseException`` Hypothesis passes through: there is nothing to shrink). A round that
  has found something rejects every new configuration after it, so its shrinking winds
  down in milliseconds and each finding keeps the smallest example found so far; the final
  replay of each example still runs, and so does every replay of a configuration already
  judged (rejecting it now would be an inconsistent answer: Hypothesis's FlakyFailure).
* **Rounds.** Hypothesis stops generating soon after its first bug, to shrink it. While
  the budget lasts, the next round searches again with every signature found so far
  rejected (``reject()``: not interesting any more), so the budget goes to other
  mistakes. ``--seed N`` seeds each round from N (no database, as ``@seed`` does);
  without it the rounds use Hypothesis's example database, which replays the failures
  of earlier runs first.
* **Memo.** A configuration is judged once: the same table again (a shrink step that
  changes a key the kind ignores, the final replay) gets the same answer, which is also
  what Hypothesis needs to trust a failure.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, reject, seed, settings
from hypothesis.control import current_build_context
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Unsatisfiable

from ..results import CaseResult

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # Python 3.10: Hypothesis's own dependency provides it
    from exceptiongroup import BaseExceptionGroup
from .findings import Example, Finding, FoundMistake, Signature, exception_for, signature_of
from .space import Space, tables

#: Judges one case table as ``run`` does; None when the table is not a valid case.
Judge = Callable[[dict[str, Any]], CaseResult | None]
#: Hypothesis's max_examples when only the budget bounds the search.
UNBOUNDED = 10**9


class BudgetSpent(BaseException):  # noqa: N818 - a signal, not an error
    """Ends a round with nothing to shrink when the budget is spent."""


@dataclass
class Limits:
    """When the search stops: the first limit reached."""

    budget_s: float
    max_examples: int | None = None  # configurations generated (shrinking comes on top)
    max_findings: int | None = None  # stop after the round that reached this many
    seed: int | None = None  # deterministic rounds; None: random, with the database
    database: Path | None = None  # Hypothesis's example database (unused with a seed)


@dataclass
class Progress:
    """What the search saw, counted once per distinct configuration."""

    configurations: int = 0  # judged: passed, failed or errored
    skipped: int = 0  # the target cannot be asked this case (run would skip it)
    invalid: int = 0  # not a valid case (a rule between keys)
    generated: int = 0  # valid examples Hypothesis ran (repeats included)
    rounds: int = 0
    first_failure_s: float | None = None
    stopped: str = ""
    seconds: float = 0.0
    examples: dict[Signature, int] = field(default_factory=dict)
    first_seen: dict[Signature, float] = field(default_factory=dict)


class Search:
    """One exploration: rounds of Hypothesis over ``space``, judged by ``judge``."""

    def __init__(self, space: Space, judge: Judge, limits: Limits, *,
                 on_failure: Callable[[Signature, Example], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.space, self.judge, self.limits = space, judge, limits
        self.on_failure = on_failure
        self.clock = clock
        self.progress = Progress()
        self._memo: dict[str, CaseResult | None] = {}
        self._known: set[Signature] = set()  # found in an earlier round
        self._round_found = False
        self._start = self._deadline = 0.0

    # -------------------------------------------------------------------------- driver
    def run(self) -> list[Finding]:
        """Search until a limit is reached; every finding with its smallest example."""
        self._start = self.clock()
        self._deadline = self._start + self.limits.budget_s
        findings: list[Finding] = []
        while True:
            found, stopped = self._round(self.progress.rounds)
            self.progress.rounds += 1
            findings += found
            self._known |= {f.signatures[0] for f in found}
            stopped = stopped or self._limit_reached(len(findings)) or ("" if found else "exhausted")
            if stopped:
                self.progress.stopped = stopped
                break
        self.progress.seconds = self.clock() - self._start
        for finding in findings:  # every configuration of the search, later rounds' too
            finding.examples = self.progress.examples.get(finding.signatures[0], finding.examples)
        return findings

    def _limit_reached(self, n_findings: int) -> str:
        if self.clock() >= self._deadline:
            return "budget"
        if self.limits.max_examples is not None and self.progress.generated >= self.limits.max_examples:
            return "max-examples"
        if self.limits.max_findings is not None and n_findings >= self.limits.max_findings:
            return "max-findings"
        return ""

    def _round(self, index: int) -> tuple[list[Finding], str]:
        """One Hypothesis run: its findings (shrunk), and why it ended early, if it did."""
        self._round_found = False
        left = (UNBOUNDED if self.limits.max_examples is None
                else max(1, self.limits.max_examples - self.progress.generated))
        db = None
        if self.limits.database is not None and self.limits.seed is None:
            db = DirectoryBasedExampleDatabase(str(self.limits.database))
        test = given(tables(self.space))(self._probe_fn())
        test = settings(max_examples=left, deadline=None, database=db,
                        phases=(Phase.reuse, Phase.generate, Phase.shrink),
                        report_multiple_bugs=True, suppress_health_check=list(HealthCheck),
                        verbosity=Verbosity.quiet, print_blob=False)(test)
        if self.limits.seed is not None:
            test = seed(round_seed(self.limits.seed, index))(test)
        try:
            test()
        except BudgetSpent:
            return [], "budget"
        except Unsatisfiable:
            return [], "exhausted"  # every configuration left was skipped or found before
        except FoundMistake as found:
            return [self._finding(found)], ""
        except BaseExceptionGroup as group:
            mistakes, others = group.split(FoundMistake)
            if others is not None:
                raise others from None
            return [self._finding(e) for e in _leaves(mistakes)], ""
        return [], ""

    def _probe_fn(self) -> Callable[[dict[str, Any]], None]:
        def probe(table: dict[str, Any]) -> None:
            self._probe(table)
        return probe

    def _finding(self, found: FoundMistake) -> Finding:
        sig = found.signature
        return Finding([sig], found.example, examples=self.progress.examples.get(sig, 1),
                       first_seen_s=self.progress.first_seen.get(sig, found.example.seconds))

    # ----------------------------------------------------------------------- test body
    def _probe(self, table: dict[str, Any]) -> None:
        final = current_build_context().is_final
        if not final and _key(table) not in self._memo:  # a judged table keeps its answer
            self._gate()
        result = self._judged(table)
        if result is None or result.status == "skip":
            reject()
        if not final:
            self.progress.generated += 1
        sig = signature_of(result)
        if sig is None:
            return
        if sig in self._known and not final:
            reject()  # found in an earlier round: look elsewhere
        self._round_found = True
        raise exception_for(sig)(Example(table, result, self._elapsed()))

    def _gate(self) -> None:
        """Past the budget: end a round with nothing to shrink, or wind a shrink down."""
        if self.clock() < self._deadline:
            return
        if self._round_found:
            reject()
        raise BudgetSpent

    def _judged(self, table: dict[str, Any]) -> CaseResult | None:
        key = _key(table)
        if key in self._memo:
            return self._memo[key]
        result = self._memo[key] = self.judge(table)
        p = self.progress
        if result is None:
            p.invalid += 1
        elif result.status == "skip":
            p.skipped += 1
        else:
            p.configurations += 1
            sig = signature_of(result)
            if sig is not None:
                now = self._elapsed()
                if p.first_failure_s is None:
                    p.first_failure_s = now
                p.examples[sig] = p.examples.get(sig, 0) + 1
                if sig not in p.first_seen:
                    p.first_seen[sig] = now
                    if self.on_failure is not None:
                        self.on_failure(sig, Example(table, result, now))
        return result

    def _elapsed(self) -> float:
        return self.clock() - self._start


def _key(table: dict[str, Any]) -> str:
    """The memo's key of a table: the same configuration, the same key."""
    return json.dumps(table, sort_keys=True)


def round_seed(base: int, index: int) -> int:
    """Round ``index``'s Hypothesis seed from ``--seed``: the first round uses it as given."""
    if index == 0:
        return base
    digest = hashlib.sha256(f"dino-harness/explore/{base}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _leaves(group: BaseExceptionGroup | None) -> list[FoundMistake]:
    if group is None:
        return []
    out: list[FoundMistake] = []
    for exc in group.exceptions:
        out += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]  # type: ignore[list-item]
    return out
