"""What ``dino-harness explore`` adds to a report: the search and its findings, typed.

The report's ``results`` hold each finding's shrunk case as ``run`` judged it from its
case file (tagged ``extra["finding"]`` with the finding's key), so the exit code, the
failure panels with their diagnosis and rerun line, Markdown and HTML all come as for a
run. The ``explore`` section says what was searched and found: the configurations tried,
the time spent, the assumptions, and per finding its key, likely cause, the number of
failing configurations and the case file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: A result's extra field: the key of the finding whose shrunk case it is.
FINDING = "finding"


@dataclass
class FindingRecord:
    """One finding: one mistake, however many configurations showed it."""

    key: str  # stable across runs: "quantity:cause" (the compare gate matches on it)
    quantity: str
    cause: list[str]  # named mistakes, or ["unknown", category], or what happened
    likely_cause: str  # in words (the diagnosis, or what happened)
    examples: int  # distinct configurations that failed this way
    first_seen_s: float
    case: str  # the shrunk case's name (its result is in the report's results)
    kind: str
    world_size: int
    file: str | None = None
    reproduced: bool | None = None  # run on the file failed the same way
    table: dict[str, Any] = field(default_factory=dict)  # the case as the file holds it

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FindingRecord:
        known = {f.name for f in fields(cls)}
        defaults = {"key": "?", "quantity": "?", "cause": [], "likely_cause": "", "examples": 0,
                    "first_seen_s": 0.0, "case": "?", "kind": "?", "world_size": 0}
        return cls(**{**defaults, **{k: v for k, v in d.items() if k in known}})


@dataclass
class ExploreSection:
    """The search: what it covered, how long, and what it found."""

    seconds: float = 0.0
    budget_s: float | None = None
    seed: int | None = None
    configurations: int = 0  # distinct configurations judged (passed, failed or errored)
    skipped: int = 0  # configurations the target cannot be asked (run would skip them)
    invalid: int = 0  # drawn tables that are not valid cases
    rounds: int = 0
    stopped: str = ""  # budget | max-examples | max-findings | exhausted
    time_to_first_failure_s: float | None = None
    max_world_size: int = 0
    kinds: list[str] = field(default_factory=list)
    unsearched: dict[str, str] = field(default_factory=dict)  # kind -> why not drawn
    assumptions: list[list[str]] = field(default_factory=list)  # [word, what it promises]
    findings: list[FindingRecord] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "findings"}
        out["findings"] = [f.to_json() for f in self.findings]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ExploreSection:
        known = {f.name for f in fields(cls)} - {"findings"}
        values = {k: v for k, v in d.items() if k in known}
        return cls(**values, findings=[FindingRecord.from_json(f) for f in d.get("findings") or []
                                       if isinstance(f, Mapping)])
