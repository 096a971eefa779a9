"""One finding per mistake: failures grouped by the quantity that failed and its likely cause.

A failed configuration's :class:`Signature` is what makes it the same bug as another: the
known mistakes whose models reproduce its numbers (their quantity with them), or, when no
model does, the first failing quantity and its category ("unknown distributed probs"); a
target that raised, or a rank that hung or crashed, is grouped by what happened and the
kind it happened in. Hypothesis keeps one shrinking example per signature (each is its
own exception type: :func:`exception_for`), and signatures that name a common mistake
are merged afterwards (:func:`merge`): data on which two models agree must not split
one bug in two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..golden.mistakes import BY_NAME
from ..results import CaseResult

UNKNOWN = "unknown"


@dataclass(frozen=True, order=True)
class Signature:
    """What a failure is: the quantity that failed and its likely cause."""

    quantity: str
    cause: tuple[str, ...]  # named mistakes, or (UNKNOWN, category), or (what happened, ...)

    @property
    def key(self) -> str:
        """The finding's stable id: ``quantity:cause+cause`` (the compare gate's key)."""
        return f"{self.quantity}:{'+'.join(c for c in self.cause if c)}"

    @property
    def named(self) -> frozenset[str]:
        """The known mistakes it names (none for an unknown cause or a rank failure)."""
        return frozenset(c for c in self.cause if c in BY_NAME)

    @property
    def slug(self) -> str:
        """A file and case name (letters, digits, dashes): the mistakes it names, else the
        quantity and what happened."""
        words = "-".join(self.cause) if self.named else f"{self.quantity}-{'-'.join(self.cause)}"
        return re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")


def signature_of(result: CaseResult) -> Signature | None:
    """The signature of a failed or errored result; None for a pass or a skip."""
    if result.status not in ("fail", "error"):
        return None
    failure = result.failure
    if failure in ("hang", "crash"):
        return Signature(result.kind, (failure,))
    if failure in ("raised", "verify"):
        what = result.error.type if result.error is not None else "?"
        return Signature(result.kind, (f"{failure} {what}",))
    names = [str(n) for n in result.extra.get("mistakes") or () if str(n) in BY_NAME]
    if names:
        quantity = "+".join(sorted({q for n in names for q in BY_NAME[n].quantities}))
        return Signature(quantity, tuple(names))
    failing = [c for c in result.checks if not c.passed]
    first = failing[0] if failing else None
    return Signature(first.name if first else result.kind,
                     (UNKNOWN, (first.category or "") if first else ""))


@dataclass
class Example:
    """One configuration that failed: its case table and how ``run`` judged it."""

    table: dict[str, Any]
    result: CaseResult
    seconds: float  # since the search began


@dataclass
class Finding:
    """One mistake: its signature(s), the smallest example of it, how many configurations
    showed it and when the first one did."""

    signatures: list[Signature]
    example: Example
    examples: int = 1
    first_seen_s: float = 0.0
    #: The case file written for the example (and the table it holds), and whether
    #: ``run`` on it failed the same way (its result: ``reproduction``).
    file: str | None = None
    case_table: dict[str, Any] | None = None
    rerun: str | None = None  # the command line that reruns the case file
    reproduced: bool | None = None
    reproduction: CaseResult | None = None

    @property
    def signature(self) -> Signature:
        """The signature of its example (the one the shrunk case shows)."""
        return signature_of(self.example.result) or self.signatures[0]

    @property
    def key(self) -> str:
        """Stable across runs: the merged signatures' keys, sorted."""
        return " | ".join(sorted({s.key for s in self.signatures}))


def size(table: dict[str, Any]) -> tuple[Any, ...]:
    """How big a case is, for picking the smaller of two examples of one finding: ranks,
    then samples, steps, views, iterations, prototypes, then keys set."""
    def total(key: str) -> int:
        value = table.get(key, 0)
        return sum(value) if isinstance(value, list) else int(value)

    samples = total("batch_per_rank") + total("masked_per_rank") + total("images_per_rank")
    views = int(table.get("views_student", 0)) + int(table.get("views_teacher", 0))
    return (max(table.get("world_sizes", [1])), samples, int(table.get("steps", 0)), views,
            int(table.get("n_iterations", 0)), int(table.get("K", 0)), len(table))


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """Findings of one quantity whose causes name a common mistake become one: the smaller
    example, the examples added up, the earliest time (in order of first sight)."""
    out: list[Finding] = []
    for finding in sorted(findings, key=lambda f: f.first_seen_s):
        into = next((f for f in out if _same_mistake(f.signatures, finding.signatures)), None)
        if into is None:
            out.append(finding)
            continue
        into.signatures += [s for s in finding.signatures if s not in into.signatures]
        into.examples += finding.examples
        if size(finding.example.table) < size(into.example.table):
            into.example = finding.example
    return out


def _same_mistake(a: Sequence[Signature], b: Sequence[Signature]) -> bool:
    return any(x.quantity == y.quantity and x.named & y.named for x in a for y in b)


_EXCEPTIONS: dict[Signature, type[FoundMistake]] = {}


class FoundMistake(Exception):  # noqa: N818 - a finding, raised for Hypothesis to keep
    """Raised by the search's test function for a failed configuration: Hypothesis keeps
    and shrinks one example per exception *type*, so each signature gets its own."""

    signature: Signature

    def __init__(self, example: Example) -> None:
        super().__init__(self.signature.key)
        self.example = example


def exception_for(signature: Signature) -> type[FoundMistake]:
    """The exception type of ``signature`` (made once, so every raise of it is one bug)."""
    if signature not in _EXCEPTIONS:
        _EXCEPTIONS[signature] = type(f"Found[{signature.key}]", (FoundMistake,),
                                      {"signature": signature})
    return _EXCEPTIONS[signature]
