"""The result model shared by the checks, the runtime, the CLI and the reports.

These dataclasses serialise to exactly the report schema (schema 1): fields may be added,
never renamed. ``from_json`` reads what ``to_json`` wrote, from this version or another:
non-finite floats stored as "nan"/"inf"/"-inf" come back as floats, a missing optional
field gets its default, and a field this version does not know is kept in ``extra`` and
written back unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

Status = Literal["pass", "fail", "error", "skip"]
SCHEMA_VERSION = 1
NONFINITE = ("nan", "inf", "-inf")


@dataclass
class Check:
    """One compared quantity: the worst error over every rank and element."""

    name: str
    max_abs_err: float
    max_rel_err: float
    tolerance: float
    passed: bool
    rank: int | None = None
    # Added fields (schema allows additions): where the worst error sits and its values.
    comparison: str = ""  # "dist_vs_single" | "single_vs_oracle" | "rank_agreement" | ...
    index: list[int] | None = None
    actual: float | None = None
    expected: float | None = None
    ratio: float | None = None  # worst error / tolerance
    nonfinite: int = 0  # count of NaN/inf in the actual values where the expected is finite
    detail: str = ""
    # A failed check's kind of mistake (harness.checks.closeness.CATEGORIES): "distributed"
    # (N ranks differ from one process, or ranks disagree), "numerics" (non-finite where
    # the oracle is finite), "semantics" (one process differs from its style's oracle).
    category: str | None = None
    #: How ``tolerance`` was derived (harness/cases/tolerances.py), e.g. "max(floor 1e-05,
    #: 2u·√n = 0.000546; n = 10·512·4096 = 20,971,520 at ws64) = 0.000546".
    tolerance_rule: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # fields of another version

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return _finite_json(out)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Check:
        known = _known(cls)
        values = {k: _from_json_float(v) for k, v in d.items() if k in known}
        values.setdefault("name", "?")
        for k in ("max_abs_err", "max_rel_err", "tolerance"):
            values.setdefault(k, math.nan)
        values["passed"] = bool(values.get("passed", False))
        return cls(**values, extra={k: v for k, v in d.items() if k not in known})


@dataclass
class RankError:
    """What went wrong on one rank: an exception, a crash (signal/exit code) or a hang."""

    rank: int
    type: str  # exception class, "Crash", "Hang", "Timeout"
    message: str
    traceback: str = ""
    exit_code: int | None = None
    signal: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields of another version

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RankError:
        known = _known(cls)
        values = {k: v for k, v in d.items() if k in known}
        values.setdefault("rank", -1)
        values.setdefault("type", "?")
        values.setdefault("message", "")
        return cls(**values, extra={k: v for k, v in d.items() if k not in known})


@dataclass
class CaseResult:
    case: str
    kind: str
    backend: str
    world_size: int
    status: Status
    duration_s: float
    checks: list[Check] = field(default_factory=list)
    error: RankError | None = None
    # Added fields.
    rank_errors: list[RankError] = field(default_factory=list)
    skip_reason: str | None = None
    metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def test_id(self) -> str:
        return f"{self.case}[{self.backend}-ws{self.world_size}]"

    @property
    def failure(self) -> str | None:
        """Why a case produced no checks (``harness.outcome.Failure``), if it says."""
        value = self.extra.get("failure")
        return str(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "case": self.case,
            "kind": self.kind,
            "backend": self.backend,
            "world_size": self.world_size,
            "status": self.status,
            "duration_s": round(self.duration_s, 6),
            "checks": [c.to_json() for c in self.checks],
            "error": self.error.to_json() if self.error else None,
        }
        if self.rank_errors:
            out["rank_errors"] = [e.to_json() for e in self.rank_errors]
        if self.skip_reason:
            out["skip_reason"] = self.skip_reason
        if self.metrics is not None:
            out["metrics"] = self.metrics
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CaseResult:
        known = {"case", "kind", "backend", "world_size", "status", "duration_s", "checks",
                 "error", "rank_errors", "skip_reason", "metrics"}
        metrics = d.get("metrics")
        return cls(
            case=str(d["case"]), kind=str(d.get("kind", "?")), backend=str(d.get("backend", "?")),
            world_size=_int(d.get("world_size")), status=d["status"],
            duration_s=_float(d.get("duration_s")),
            checks=[Check.from_json(c) for c in d.get("checks") or [] if isinstance(c, Mapping)],
            error=RankError.from_json(d["error"]) if isinstance(d.get("error"), Mapping) else None,
            rank_errors=[RankError.from_json(e) for e in d.get("rank_errors") or []
                         if isinstance(e, Mapping)],
            skip_reason=d.get("skip_reason"),
            metrics={k: _from_json_float(v) for k, v in metrics.items()}
            if isinstance(metrics, Mapping) else None,
            extra={k: v for k, v in d.items() if k not in known},
        )


def summarise(results: list[CaseResult]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    key = {"pass": "passed", "fail": "failed", "error": "errors", "skip": "skipped"}
    for r in results:
        counts[key.get(r.status, "errors")] += 1
    return counts


def json_safe(value: Any) -> Any:
    """Non-finite floats → "nan"/"inf"/"-inf", recursively: JSON has no inf/NaN, and every
    reader must be able to parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _known(cls: type) -> set[str]:
    return {f.name for f in fields(cls)} - {"extra"}


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _from_json_float(value: Any) -> Any:
    return float(value) if isinstance(value, str) and value in NONFINITE else value


def _finite_json(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf/NaN: write them as strings so that every reader can parse the file."""
    return {k: json_safe(v) if isinstance(v, float) else v for k, v in d.items()}
