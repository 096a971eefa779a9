"""A benchmark's figures as schema-1 results, so that ``dino-harness compare`` gates them.

A *figure* is one number measured over several runs (e.g. the first verdict in seconds,
or the paired hidden fraction of the fake-async control), with the direction in which
it may not move (``better``), an optional target, and, for a time, the floor it is
measured against in the same runs (the ratio is then a figure of its own: the floor's
noise cancels in it). :func:`figure_result` turns figures into one
:class:`~harness.results.CaseResult`:

* ``metrics``: per figure ``name`` (the median over runs), ``name_ci_low``/``_ci_high``
  (bootstrap 95 % interval of that median, harness.overlap.stats) and ``name_p10``/
  ``_p90``; the runs themselves under ``extra["runs"]``;
* ``extra["gated"]``: ``{name: "lower" | "higher"}`` -- what compare checks, with its usual
  rule (a regression lies beyond both runs' intervals, report/baseline.py);
* one check per target (``target:<name>``), and ``status`` "fail" when a target is missed.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..overlap.stats import metric_fields
from ..results import CaseResult, Check

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Figure:
    name: str  # the metric name in the report
    runs: Sequence[float]  # one value per run
    better: str = "lower"  # "lower" | "higher": the direction compare gates
    target: tuple[str, float] | None = None  # (">=" | "<=", bound) on the median, or None
    gated: bool = True

    @property
    def median(self) -> float:
        return float(metric_fields(self.name, list(self.runs))[self.name])

    def met(self) -> bool | None:
        if self.target is None:
            return None
        op, bound = self.target
        return bool(_OPS[op](self.median, bound))


def figure_result(case: str, figures: Sequence[Figure], *, backend: str, world_size: int,
                  duration_s: float, extra: dict[str, Any] | None = None) -> CaseResult:
    """One result carrying ``figures`` (module docstring)."""
    metrics: dict[str, Any] = {}
    checks: list[Check] = []
    for f in figures:
        metrics.update(metric_fields(f.name, list(f.runs)))
        if f.target is not None:
            op, bound = f.target
            value = metrics[f.name]
            checks.append(Check(name=f"target:{f.name}", max_abs_err=value, max_rel_err=0.0,
                                tolerance=bound, passed=bool(f.met()), comparison=f"median {op} bound",
                                ratio=value / bound if bound else None))
    status = "pass" if all(c.passed for c in checks) else "fail"
    info = {"gated": {f.name: f.better for f in figures if f.gated},
            "runs": {f.name: [round(float(v), 6) for v in f.runs] for f in figures},
            "targets": {f.name: f"{f.target[0]} {f.target[1]}" for f in figures if f.target},
            **(extra or {})}
    return CaseResult(case, "bench", backend, world_size, status, duration_s, checks=checks,
                      metrics=metrics, extra=info)
