"""The result model shared by the checks, the runtime, the CLI and the reports.

These dataclasses serialise to exactly the report schema of DESIGN.md §4 (schema 1):
fields may be added, never renamed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "error", "skip"]
SCHEMA_VERSION = 1


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

    def to_json(self) -> dict[str, Any]:
        return _finite_json(asdict(self))


@dataclass
class RankError:
    """What went wrong on one rank: an exception, a crash (signal/exit code) or a hang."""

    rank: int
    type: str  # exception class, "Crash", "Hang", "Timeout"
    message: str
    traceback: str = ""
    exit_code: int | None = None
    signal: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
    def from_json(cls, d: dict[str, Any]) -> CaseResult:
        known = {"case", "kind", "backend", "world_size", "status", "duration_s", "checks",
                 "error", "rank_errors", "skip_reason", "metrics"}
        check_fields = Check.__dataclass_fields__
        error_fields = RankError.__dataclass_fields__

        def error(e: dict[str, Any]) -> RankError:
            return RankError(**{k: v for k, v in e.items() if k in error_fields})

        return cls(
            case=d["case"], kind=d["kind"], backend=d["backend"],
            world_size=int(d["world_size"]), status=d["status"],
            duration_s=float(d.get("duration_s", 0.0)),
            checks=[Check(**{k: _from_json_float(v) for k, v in c.items() if k in check_fields})
                    for c in d.get("checks", [])],
            error=error(d["error"]) if d.get("error") else None,
            rank_errors=[error(e) for e in d.get("rank_errors", [])],
            skip_reason=d.get("skip_reason"),
            metrics=d.get("metrics"),
            extra={k: v for k, v in d.items() if k not in known},
        )


def summarise(results: list[CaseResult]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    key = {"pass": "passed", "fail": "failed", "error": "errors", "skip": "skipped"}
    for r in results:
        counts[key[r.status]] += 1
    return counts


def _from_json_float(value: Any) -> Any:
    return float(value) if value in ("nan", "inf", "-inf") else value


def _finite_json(d: dict[str, Any]) -> dict[str, Any]:
    """JSON has no inf/NaN: write them as strings so that every reader can parse the file."""
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            out[k] = "nan" if v != v else ("inf" if v > 0 else "-inf")
        else:
            out[k] = v
    return out
