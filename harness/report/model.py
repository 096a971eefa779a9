"""The typed report: what ``report.json`` holds (the report schema, schema 1), as objects.

Every writer builds a :class:`Report` and serialises it with :meth:`Report.to_json`;
every reader gets one back from :meth:`Report.from_json`. The summary is always derived
from the results, never trusted from a file. Top-level fields this version does not
know are kept in ``extra`` and written back, so a file from an older or newer tool keeps
them. Commands other than ``run`` add a section of their own: ``bench`` (``bench pool``
and ``bench overlap``), ``selfcheck`` and ``explore`` (``explore_model.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.outcome import ExitCode, exit_code_of
from harness.results import SCHEMA_VERSION, CaseResult, json_safe, summarise

from .explore_model import ExploreSection

TOOL = "dino-harness"


@dataclass
class BenchSection:
    """What a benchmark adds: its name, its settings, and (``pool``) one row per world size."""

    name: str  # "overlap" | "pool"
    seconds: float | None = None
    world_sizes: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # quick, ddp, targets, backend, ...

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **self.extra}
        if self.seconds is not None:
            out["seconds"] = self.seconds
        if self.world_sizes:
            out["world_sizes"] = self.world_sizes
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BenchSection:
        rows = d.get("world_sizes")
        return cls(name=str(d.get("name", "?")), seconds=d.get("seconds"),
                   world_sizes={str(k): dict(v) for k, v in rows.items() if isinstance(v, Mapping)}
                   if isinstance(rows, Mapping) else {},
                   extra={k: v for k, v in d.items() if k not in ("name", "seconds", "world_sizes")})


@dataclass
class Catch:
    """One case that failed against a planted fault, and why."""

    case: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"case": self.case, "reason": self.reason}


@dataclass
class FaultOutcome:
    """How the catalogue did against one planted fault."""

    name: str
    description: str
    caught_by: list[Catch] = field(default_factory=list)
    failed_otherwise: list[Catch] = field(default_factory=list)  # failed, but not as planted
    cases_run: int = 0
    seconds: float | None = None
    #: The known mistake a diagnosis of this fault must name (None: a hang or crash fault).
    mistake: str | None = None
    #: Each diagnosis the catching results carry, and how many carry it.
    diagnoses: dict[str, int] = field(default_factory=dict)
    #: How many catching results name ``mistake`` among their matches.
    named: int = 0

    @property
    def verdict(self) -> str:
        return "caught" if self.caught_by else "survived"

    @property
    def diagnosed(self) -> bool | None:
        """Whether a diagnosis named the fault's own mistake (None: no mistake to name)."""
        return None if self.mistake is None else self.named > 0

    def to_json(self) -> dict[str, Any]:
        out = {"description": self.description, "caught_by": [c.to_json() for c in self.caught_by],
               "failed_otherwise": [c.to_json() for c in self.failed_otherwise],
               "cases_run": self.cases_run, "seconds": self.seconds, "verdict": self.verdict,
               "diagnoses": self.diagnoses}
        if self.mistake is not None:
            out.update(mistake=self.mistake, named=self.named, diagnosed=self.diagnosed)
        return out

    @classmethod
    def from_json(cls, name: str, d: Mapping[str, Any]) -> FaultOutcome:
        def catches(key: str) -> list[Catch]:
            return [Catch(str(c.get("case", "?")), str(c.get("reason", "")))
                    for c in d.get(key) or [] if isinstance(c, Mapping)]

        return cls(name=name, description=str(d.get("description", "")),
                   caught_by=catches("caught_by"), failed_otherwise=catches("failed_otherwise"),
                   cases_run=int(d.get("cases_run") or 0), seconds=d.get("seconds"),
                   mistake=d.get("mistake"), named=int(d.get("named") or 0),
                   diagnoses={str(k): int(v) for k, v in (d.get("diagnoses") or {}).items()}
                   if isinstance(d.get("diagnoses"), Mapping) else {})


@dataclass
class SelfcheckSection:
    """``selfcheck``'s verdicts: the reference must pass, every fault must be caught, and the
    overlap metric must tell a fake-async update from the reference."""

    reference_cases: int = 0
    false_alarms: list[str] = field(default_factory=list)
    reference_seconds: float | None = None
    faults: list[FaultOutcome] = field(default_factory=list)
    overlap_controls: dict[str, Any] = field(default_factory=dict)  # skipped, passed, text, ...

    @property
    def survived(self) -> list[str]:
        return [f.name for f in self.faults if not f.caught_by]

    @property
    def undiagnosed(self) -> list[str]:
        """Caught faults whose own mistake no diagnosis named (a model or a match is off)."""
        return [f.name for f in self.faults if f.caught_by and f.diagnosed is False]

    @property
    def controls_ok(self) -> bool:
        c = self.overlap_controls
        return bool(c.get("passed") or c.get("skipped"))

    @property
    def ok(self) -> bool:
        return (not self.survived and not self.false_alarms and not self.undiagnosed
                and self.controls_ok)

    @property
    def exit_code(self) -> ExitCode:
        """A survived or undiagnosed fault, a false alarm or controls not told apart is a
        failed check."""
        return ExitCode.OK if self.ok else ExitCode.FAILED

    def to_json(self) -> dict[str, Any]:
        return {"reference": {"cases": self.reference_cases, "false_alarms": self.false_alarms,
                              "seconds": self.reference_seconds},
                "faults": {f.name: f.to_json() for f in self.faults},
                "overlap_controls": self.overlap_controls}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SelfcheckSection:
        ref = d.get("reference") if isinstance(d.get("reference"), Mapping) else {}
        faults = d.get("faults") if isinstance(d.get("faults"), Mapping) else {}
        controls = d.get("overlap_controls")
        return cls(reference_cases=int(ref.get("cases") or 0),
                   false_alarms=[str(x) for x in ref.get("false_alarms") or []],
                   reference_seconds=ref.get("seconds"),
                   faults=[FaultOutcome.from_json(str(n), f) for n, f in faults.items()
                           if isinstance(f, Mapping)],
                   overlap_controls=dict(controls) if isinstance(controls, Mapping) else {})


_KNOWN = ("schema", "tool", "created", "environment", "target", "results", "summary", "run_id",
          "finished", "complete", "recovered", "warnings", "bench", "selfcheck", "explore")


@dataclass
class Report:
    """One run's report. ``complete`` is False for a run that did not finish, ``recovered``
    True when it was rebuilt from its ``results.jsonl``."""

    results: list[CaseResult] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    schema: int = SCHEMA_VERSION
    tool: str = TOOL
    run_id: str | None = None
    finished: str | None = None
    complete: bool | None = None
    recovered: bool = False
    warnings: list[str] = field(default_factory=list)
    bench: BenchSection | None = None
    selfcheck: SelfcheckSection | None = None
    explore: ExploreSection | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # top-level fields of another version

    @property
    def summary(self) -> dict[str, int]:
        return summarise(self.results)

    @property
    def exit_code(self) -> ExitCode:
        """The code the command that wrote this report returned: selfcheck's own verdict,
        else the results' (``harness.outcome``)."""
        if self.selfcheck is not None:
            return self.selfcheck.exit_code
        return exit_code_of(self.results)

    def to_json(self) -> dict[str, Any]:
        """The report as strict JSON (non-finite floats as strings)."""
        out: dict[str, Any] = {**self.extra, "schema": self.schema, "tool": self.tool,
                               "created": self.created, "environment": self.environment,
                               "target": self.target,
                               "results": [r.to_json() for r in self.results],
                               "summary": self.summary}
        optional = {"run_id": self.run_id, "finished": self.finished, "complete": self.complete,
                    "recovered": self.recovered or None, "warnings": self.warnings or None,
                    "bench": self.bench.to_json() if self.bench else None,
                    "selfcheck": self.selfcheck.to_json() if self.selfcheck else None,
                    "explore": self.explore.to_json() if self.explore else None}
        out.update({k: v for k, v in optional.items() if v is not None})
        return json_safe(out)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Report:
        """A report from its JSON object. Results must already be result objects (the
        loader drops the others, with a warning)."""
        bench, selfcheck, explore = d.get("bench"), d.get("selfcheck"), d.get("explore")
        env, target = d.get("environment"), d.get("target")
        return cls(
            results=[r if isinstance(r, CaseResult) else CaseResult.from_json(r)
                     for r in d.get("results") or []],
            environment=dict(env) if isinstance(env, Mapping) else {},
            target=dict(target) if isinstance(target, Mapping) else {},
            created=d.get("created"), schema=int(d.get("schema", SCHEMA_VERSION)),
            tool=str(d.get("tool", TOOL)), run_id=d.get("run_id"), finished=d.get("finished"),
            complete=d.get("complete"), recovered=bool(d.get("recovered", False)),
            warnings=[str(w) for w in d.get("warnings") or []],
            bench=BenchSection.from_json(bench) if isinstance(bench, Mapping) else None,
            selfcheck=SelfcheckSection.from_json(selfcheck) if isinstance(selfcheck, Mapping) else None,
            explore=ExploreSection.from_json(explore) if isinstance(explore, Mapping) else None,
            extra={k: v for k, v in d.items() if k not in _KNOWN},
        )


def as_report(report: Report | Mapping[str, Any]) -> Report:
    """A typed report from a typed one or from its JSON object (a saved file, a sample)."""
    return report if isinstance(report, Report) else Report.from_json(report)
