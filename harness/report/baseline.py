"""The baseline comparison: a new report against a baseline report (`dino-harness compare`).

Results are matched by ``(case, backend, world_size)``; an overlap result that carries
``prototypes`` (one case swept over several K) is also told apart by its K, so
``overlap[gloo-ws2] K=4096`` is compared with the baseline's K=4096, not its K=65536.

* **new failure** — the new status is fail/error and the baseline's was not (pass, skip,
  or the case was absent from the baseline).
* **fixed** — fail/error in the baseline, pass now.
* **still failing** — fail/error in both (listed, not counted as new).
* **newly skipped** — passed in the baseline, skipped now (listed: a skip can hide a
  regression, e.g. fewer GPUs than ranks; not counted in the exit code).
* **missing / added** — in only one of the two reports.
* **overlap regression** — for results with ``metrics`` in both runs, each metric the
  registry gates (:data:`harness.report.metrics.GATED`): ``hidden_fraction`` (higher is
  better) regressed when the new run's whole interval lies below the baseline's:
  ``new.high < base.low``; ``overlapped_ms`` (lower is better) regressed when
  ``new.low > base.high``. I.e. the change must be beyond BOTH runs'
  intervals, so run-to-run noise inside either run's spread is never a regression. An
  interval is ``metrics[m + "_ci_low"]``/``_ci_high`` if present (a confidence interval
  of the median), else ``_p10``/``_p90`` (the spread over iterations). A run without an
  interval for the metric uses its median alone, and then the medians must also differ
  by more than :data:`NO_INTERVAL_REL_TOL` (relative) — a guard against flagging noise
  in reports that carry no spread. The mirror-image moves are reported as improvements.
  ``hidden_fraction_paired`` (the paired headline) is gated like ``hidden_fraction``.
* **new finding** -- two ``explore`` reports: a finding whose key (quantity and likely
  cause) the baseline lacks is a regression; findings gone are listed as fixed. Their
  shrunk cases' results (``extra["finding"]``) are compared by this gate only: a shrunk
  case may land on another world size from one run to the next.
* **gated figures** -- a result may name its own gated metrics and their direction,
  ``"gated": {"first_verdict_ratio": "lower", ...}`` (the bench reports of
  benchmarks/: a figure with its floor); those replace the overlap defaults for that
  result and follow the same rule (beyond both intervals).

``Comparison.exit_code`` is 1 if there is any new failure, overlap regression or new
finding, else 0. :func:`comparison_section` is the comparison as section data (a table and
its verdict line) that the console, Markdown and HTML formats render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..outcome import ExitCode
from ..results import CaseResult
from .explore_model import FINDING
from .explore_view import FindingsGate, compare_findings
from .fmt import STATUS_LABEL, format_ratio, worst_ratio
from .metrics import GATED, metric, metric_interval
from .model import Report, as_report
from .sections import Cell, Column, Span, TableData, Verdict, cell, text_cell

Key = tuple[str, str, int, str]  # case, backend, world size, variant ("" or "K=65536")

NO_INTERVAL_REL_TOL = 0.10
_FAILING = ("fail", "error")


def result_key(r: CaseResult) -> Key:
    k = r.extra.get("prototypes")
    return (r.case, r.backend, r.world_size, f"K={k}" if k is not None else "")


def directions(r: CaseResult) -> dict[str, bool]:
    """The metrics compared for ``r`` (True: higher is better): its own ``gated`` ones
    when it names any, else the registry's."""
    gated = r.extra.get("gated")
    if not (isinstance(gated, Mapping) and gated):
        gated = GATED
    return {str(k): str(v).lower() == "higher" for k, v in gated.items()}


def key_text(key: Key | str) -> str:
    """A result's key as its test id (plus its K); a finding's key is text already."""
    if isinstance(key, str):
        return key
    return f"{key[0]}[{key[1]}-ws{key[2]}]" + (f" {key[3]}" if key[3] else "")


@dataclass(frozen=True)
class Interval:
    median: float
    low: float
    high: float
    has_interval: bool

    @classmethod
    def of(cls, metrics: Mapping[str, Any] | None, name: str) -> Interval | None:
        med, lo, hi = metric_interval(metrics, name)
        if med is None or med != med:
            return None
        if lo is None or hi is None or lo != lo or hi != hi:
            return cls(med, med, med, False)
        return cls(med, min(lo, hi), max(lo, hi), True)

    def text(self, name: str) -> str:
        """As the overlap table shows metric ``name``: "97% [93%–99%]"."""
        if not self.has_interval:
            return metric(name).text(self.median)
        return metric(name).text(self.median, self.low, self.high)


@dataclass(frozen=True)
class StatusChange:
    key: Key
    old: str | None  # None: absent from the baseline
    new: str
    ratio: float | None = None  # the new run's worst error/tolerance


@dataclass(frozen=True)
class MetricChange:
    key: Key
    metric: str
    new: Interval
    baseline: Interval
    higher_is_better: bool


@dataclass
class Comparison:
    new_failures: list[StatusChange] = field(default_factory=list)
    fixed: list[StatusChange] = field(default_factory=list)
    still_failing: list[StatusChange] = field(default_factory=list)
    newly_skipped: list[StatusChange] = field(default_factory=list)
    missing: list[Key] = field(default_factory=list)
    added: list[Key] = field(default_factory=list)
    regressions: list[MetricChange] = field(default_factory=list)
    improvements: list[MetricChange] = field(default_factory=list)
    matched: int = 0
    findings: FindingsGate | None = None  # two explore reports: their findings by key

    @property
    def new_findings(self) -> list[str]:
        return self.findings.new if self.findings else []

    @property
    def exit_code(self) -> int:
        regressed = self.new_failures or self.regressions or self.new_findings
        return ExitCode.FAILED if regressed else ExitCode.OK

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        def k(key: Key) -> dict[str, Any]:
            return {"case": key[0], "backend": key[1], "world_size": key[2], "variant": key[3]}

        def sc(c: StatusChange) -> dict[str, Any]:
            return {**k(c.key), "baseline": c.old, "new": c.new}

        def mc(c: MetricChange) -> dict[str, Any]:
            return {**k(c.key), "metric": c.metric, "new": c.new.__dict__,
                    "baseline": c.baseline.__dict__}

        return {"new_failures": [sc(c) for c in self.new_failures],
                "fixed": [sc(c) for c in self.fixed],
                "still_failing": [sc(c) for c in self.still_failing],
                "newly_skipped": [sc(c) for c in self.newly_skipped],
                "missing": [k(x) for x in self.missing], "added": [k(x) for x in self.added],
                "regressions": [mc(c) for c in self.regressions],
                "improvements": [mc(c) for c in self.improvements],
                "matched": self.matched, "exit_code": self.exit_code,
                **({"findings": self.findings.__dict__} if self.findings else {})}


def _index(report: Report) -> dict[Key, CaseResult]:
    # A repeated key: the last result wins. A finding's shrunk case: the findings gate's.
    return {result_key(r): r for r in report.results if FINDING not in r.extra}


def _metric_change(new: Interval, base: Interval, higher_is_better: bool) -> int:
    """-1 regression, +1 improvement, 0 within noise (see the module docstring)."""
    if higher_is_better:
        worse, better = new.high < base.low, new.low > base.high
    else:
        worse, better = new.low > base.high, new.high < base.low
    if not (worse or better):
        return 0
    if not (new.has_interval and base.has_interval):
        scale = max(abs(base.median), abs(new.median), 1e-12)
        if abs(new.median - base.median) / scale <= NO_INTERVAL_REL_TOL:
            return 0
    return -1 if worse else 1


def compare_reports(new: Report | Mapping[str, Any],
                    baseline: Report | Mapping[str, Any]) -> Comparison:
    """``new`` against ``baseline``, typed reports or their JSON objects."""
    new, baseline = as_report(new), as_report(baseline)
    cmp = Comparison(findings=compare_findings(new, baseline))
    new_idx, base_idx = _index(new), _index(baseline)
    for key, r in new_idx.items():
        status = r.status
        b = base_idx.get(key)
        if b is None:
            cmp.added.append(key)
            if status in _FAILING:
                cmp.new_failures.append(StatusChange(key, None, status, worst_ratio(r)))
            continue
        cmp.matched += 1
        old = b.status
        if status in _FAILING and old not in _FAILING:
            cmp.new_failures.append(StatusChange(key, old, status, worst_ratio(r)))
        elif status in _FAILING:
            cmp.still_failing.append(StatusChange(key, old, status, worst_ratio(r)))
        elif old in _FAILING and status == "pass":
            cmp.fixed.append(StatusChange(key, old, status, worst_ratio(r)))
        elif old == "pass" and status == "skip":
            cmp.newly_skipped.append(StatusChange(key, old, status))
        nm, bm = r.metrics, b.metrics
        if nm and bm:
            for name, higher in directions(r).items():
                ni, bi = Interval.of(nm, name), Interval.of(bm, name)
                if ni is None or bi is None:
                    continue
                change = _metric_change(ni, bi, higher)
                if change < 0:
                    cmp.regressions.append(MetricChange(key, name, ni, bi, higher))
                elif change > 0:
                    cmp.improvements.append(MetricChange(key, name, ni, bi, higher))
    cmp.missing = [k for k in base_idx if k not in new_idx]
    return cmp


# ----------------------------------------------------------------------------- section

@dataclass(frozen=True)
class Row:
    """One line of the comparison table."""

    change: Span  # "NEW FAILURE", in its tone
    key: Key | str  # a finding's key is its text
    baseline: Cell
    new: Cell
    detail: str = ""


COLUMNS: tuple[Column[Row], ...] = (
    Column("change", lambda row: Cell((row.change,))),
    Column("case", lambda row: cell(key_text(row.key)), key=True),
    Column("baseline", lambda row: row.baseline),
    Column("new", lambda row: row.new),
    Column("detail", lambda row: text_cell(row.detail)))


@dataclass(frozen=True)
class ComparisonSection:
    table: TableData | None  # None: nothing changed
    verdict: Verdict


def _status(s: str | None) -> Cell:
    if s is None:
        return cell("absent", "dim")
    return cell(STATUS_LABEL.get(s, s.upper()), s)


def rows(cmp: Comparison) -> list[Row]:
    """What changed, the gate's concerns first: new failures, regressions, then what was
    fixed or improved, what still fails or is now skipped, missing and added cases. Two
    explore reports compare their findings first."""
    gate = cmp.findings
    out = [Row(Span("NEW FINDING", "bad"), key, _status(None), cell("found"))
           for key in cmp.new_findings]
    out += [Row(Span("FIXED", "pass"), key, cell("found"), cell("not found"), "finding")
            for key in (gate.gone if gate else [])]
    out += [Row(Span("still found", "warn"), key, cell("found"), cell("found"), "finding")
            for key in (gate.still if gate else [])]
    out += [Row(Span("NEW FAILURE", "bad"), c.key, _status(c.old), _status(c.new),
                f"worst {format_ratio(c.ratio)}" if c.ratio is not None else "")
            for c in cmp.new_failures]
    out += [Row(Span("REGRESSION", "bad"), m.key, cell(m.baseline.text(m.metric)),
                cell(m.new.text(m.metric)),
                f"{m.metric} {'lower' if m.higher_is_better else 'higher'}, beyond both intervals")
            for m in cmp.regressions]
    out += [Row(Span("FIXED", "pass"), c.key, _status(c.old), _status(c.new)) for c in cmp.fixed]
    out += [Row(Span("IMPROVED", "ok"), m.key, cell(m.baseline.text(m.metric)),
                cell(m.new.text(m.metric)), m.metric) for m in cmp.improvements]
    out += [Row(Span("still failing", "warn"), c.key, _status(c.old), _status(c.new))
            for c in cmp.still_failing]
    out += [Row(Span("now skipped", "warn"), c.key, _status(c.old), _status(c.new))
            for c in cmp.newly_skipped]
    out += [Row(Span("missing", "warn"), k, cell("present"), _status(None),
                "not in the new report") for k in cmp.missing]
    failed = {c.key for c in cmp.new_failures}  # an added case that fails is listed above
    out += [Row(Span("added", "info"), k, _status(None), cell("present"))
            for k in cmp.added if k not in failed]
    return out


def comparison_section(cmp: Comparison) -> ComparisonSection:
    """The comparison as every format shows it: its table, then its verdict line."""
    changed = rows(cmp)
    table = TableData.of("comparison", "compared with the baseline", COLUMNS, changed) \
        if changed else None
    found = (f"{len(cmp.new_findings)} new findings, {len(gate.gone)} fixed findings, "
             f"{len(gate.still)} still found, " if (gate := cmp.findings) else "")
    counts = (found + f"{len(cmp.new_failures)} new failures, {len(cmp.regressions)} overlap regressions, "
              f"{len(cmp.fixed)} fixed, {len(cmp.still_failing)} still failing, "
              f"{len(cmp.newly_skipped)} now skipped, "
              f"{len(cmp.missing)} missing, {len(cmp.added)} added, {cmp.matched} matched")
    verdict = Verdict(f"REGRESSED — {counts}", "fail") if cmp.exit_code \
        else Verdict(f"NO REGRESSION — {counts}", "pass")
    return ComparisonSection(table, verdict)


__all__ = ["Comparison", "ComparisonSection", "StatusChange", "MetricChange", "Interval",
           "compare_reports", "comparison_section", "result_key", "directions",
           "NO_INTERVAL_REL_TOL"]
