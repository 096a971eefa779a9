"""The sections of a report, built once from a typed :class:`Report`.

Console, Markdown and HTML only *format* what these pure functions return: every
decision about what a report shows — which facts, which columns and in which order,
which results count as failures, how a verdict reads — is taken here, so the three
formats cannot drift apart. Section data is plain text plus a *tone* (a status, "bad",
"ok", "warn", "dim" or "") that each format maps to its own styling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.outcome import FAILURE_TEXT
from harness.results import CaseResult, Check

from .fmt import (
    STATUS_LABEL,
    STATUS_ORDER,
    check_ratio,
    devices_line,
    error_exit,
    failing_checks,
    format_duration,
    format_float,
    format_ratio,
    index_text,
    max_ratio,
    num,
    overlap_results,
    rank_errors,
    target_line,
    trim_traceback,
    worst_ratio,
)
from .metrics import Metric, metric, metric_parts
from .model import FaultOutcome, Report

SELFCHECK_TARGET = "selfcheck_target"  # a selfcheck result's extra field: "reference" or a fault
REFERENCE = "reference"


# ------------------------------------------------------------------------------ cells

@dataclass(frozen=True)
class Span:
    text: str
    tone: str = ""


@dataclass(frozen=True)
class Cell:
    """One table cell: text in styled spans, an optional interval, an optional bar."""

    spans: tuple[Span, ...] = ()
    interval: str | None = None  # "[93%–99%]", shown beside or under the value
    bar: float | None = None  # a share in [0, 1]: hidden (green) vs exposed (red)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.spans)

    @property
    def full_text(self) -> str:
        return self.text + (f" {self.interval}" if self.interval else "")


def cell(value: Any, tone: str = "") -> Cell:
    """A one-span cell; None and "" read as "—"."""
    return Cell((Span("—" if value is None or value == "" else str(value), tone),))


Row = TypeVar("Row")


@dataclass(frozen=True)
class Column(Generic[Row]):
    """A table column that owns its cells: how a row's value is read and formatted, so a
    table is its columns applied to its row objects, never a tuple kept in step."""

    name: str
    read: Callable[[Row], Cell] = field(repr=False, compare=False)
    unit: str = ""  # after the value in a one-line layout ("comm 4.2 ms")
    numeric: bool = False  # right-aligned
    short: str | None = None  # the header where space is short
    dim: bool = False
    optional: bool = False  # may be dropped where space is short
    long: bool = False  # free text: a column in Markdown, a line under the table elsewhere
    key: bool = False  # names the row beside the first column: kept whole where room allows

    @property
    def header(self) -> str:
        return f"{self.name} {self.unit}" if self.unit else self.name

    @property
    def short_header(self) -> str:
        return self.short or self.header

    @property
    def label(self) -> str:
        """The name before a value in a one-line layout."""
        return self.short or self.name

    def cell(self, row: Row) -> Cell:
        return self.read(row)


@dataclass(frozen=True)
class TableData:
    key: str  # a stable name: the HTML class, a test's handle
    title: str
    columns: tuple[Column[Any], ...]
    rows: tuple[tuple[Cell, ...], ...]  # one cell per column, made by the column
    note: str = ""  # what the numbers are, beside the title
    caption: str = ""  # under the table
    tone: str = ""  # of the title

    @classmethod
    def of(cls, key: str, title: str, columns: Sequence[Column[Row]], items: Iterable[Row],
           **kw: Any) -> TableData:
        """The table of ``items``: each row is every column's cell of one item."""
        return cls(key, title, tuple(columns),
                   tuple(tuple(c.cell(item) for c in columns) for item in items), **kw)


def text_cell(value: str | None) -> Cell:
    """Free text, empty when there is none (a long column's cell)."""
    return Cell((Span(value),)) if value else Cell()


def ratio_tone(ratio: float | None) -> str:
    if ratio is None:
        return "dim"
    if math.isnan(ratio) or ratio > 1:
        return "bad"
    return "warn" if ratio > 0.5 else "ok"


def ratio_cell(ratio: float | None) -> Cell:
    return cell(format_ratio(ratio), ratio_tone(ratio))


def status_cell(parts: Sequence[tuple[str, str]], mixed: bool) -> Cell:
    """"FAIL ws4 · PASS ws2": a status per group of world sizes."""
    spans: list[Span] = []
    for i, (status, sizes) in enumerate(parts):
        if i:
            spans.append(Span(" · "))
        spans.append(Span(STATUS_LABEL.get(status, status.upper()), status))
        if mixed:
            spans.append(Span(f" ws{sizes}", "dim"))
    return Cell(tuple(spans))


# ------------------------------------------------------------------------------ header

@dataclass(frozen=True)
class Verdict:
    text: str
    status: str  # pass | fail | error | skip: the colour of the whole report


@dataclass(frozen=True)
class Header:
    title: str
    target: str
    facts: tuple[tuple[str, str | None], ...]
    warnings: tuple[str, ...]  # an incomplete run first
    verdict: Verdict
    summary: Mapping[str, int]
    footer: str


def shown_results(report: Report) -> list[CaseResult]:
    """The results the tables show: a selfcheck's fault runs are summed up by its own
    table (their failures are the point), so only the reference's are listed."""
    if report.selfcheck is None:
        return list(report.results)
    return [r for r in report.results if r.extra.get(SELFCHECK_TARGET, REFERENCE) == REFERENCE]


def run_verdict(results: Sequence[CaseResult]) -> Verdict:
    s = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    key = {"pass": "passed", "fail": "failed", "error": "errors", "skip": "skipped"}
    for r in results:
        s[key.get(r.status, "errors")] += 1
    total_s = sum(num(r.duration_s) or 0.0 for r in results)
    n_err = s["errors"]
    counts = (f"{s['passed']} passed, {s['failed']} failed, "
              f"{n_err} error{'' if n_err == 1 else 's'}, {s['skipped']} skipped "
              f"in {format_duration(total_s)}")
    if s["errors"]:
        return Verdict(f"ERROR — a rank hung or crashed: {counts}", "error")
    if s["failed"]:
        return Verdict(f"FAILED — {counts}", "fail")
    if not s["passed"]:
        return Verdict(f"NOTHING RAN — {counts}", "skip")
    return Verdict(f"PASSED — {counts}", "pass")


def verdict(report: Report) -> Verdict:
    """A selfcheck or explore report is judged by its own section; any other by its results."""
    if report.explore is not None:
        from . import explore_view  # it builds on the cells of this module

        return explore_view.verdict(report)
    sc = report.selfcheck
    if sc is None:
        return run_verdict(report.results)
    n = len(sc.faults)
    numeric = [f for f in sc.faults if f.mistake is not None]
    named = sum(bool(f.diagnosed) for f in numeric)
    text = (f"selfcheck: {n - len(sc.survived)}/{n} faults caught, {named}/{len(numeric)} "
            f"numeric faults diagnosed as their own mistake, {len(sc.false_alarms)} "
            f"false alarm(s) on the reference, "
            + ("overlap controls skipped" if sc.overlap_controls.get("skipped") else
               "overlap metric tells fake from real async" if sc.controls_ok else
               "overlap metric CANNOT tell fake from real async"))
    return Verdict(("PASSED — " if sc.ok else "FAILED — ") + text, "pass" if sc.ok else "fail")


def header(report: Report) -> Header:
    env, target = report.environment, report.target
    cpu = env.get("cpu")
    if env.get("cpu_count"):
        cpu = f"{cpu or '?'} ({env['cpu_count']} cores)"

    def s(v: Any) -> str | None:
        return None if v is None or v == "" else str(v)

    facts: list[tuple[str, str | None]] = [
        ("Target", target_line(target)), ("Backend", s(env.get("backend"))),
        ("Torch", s(env.get("torch"))), ("NCCL", s(env.get("nccl"))),
        ("Python", s(env.get("python"))),
        ("GPUs" if env.get("backend") == "nccl" else "Devices", devices_line(env)),
        ("Host", s(env.get("hostname"))), ("CPU", s(cpu)),
        ("Platform", s(env.get("platform"))), ("Created", s(report.created))]
    if target.get("path"):
        facts.append(("Target file", s(target.get("path"))))
    if report.run_id:
        facts.append(("Run", report.run_id))
    warnings = list(report.warnings)
    if report.complete is False:
        warnings.insert(0, "INCOMPLETE RUN" + (" — rebuilt from results.jsonl"
                                               if report.recovered else ""))
    return Header(title="dino-harness report", target=target_line(target), facts=tuple(facts),
                  warnings=tuple(warnings), verdict=verdict(report), summary=report.summary,
                  footer=f"schema {report.schema} · {report.tool} · created {report.created or '—'}")


# ------------------------------------------------------------------------ kind tables

def _grouped(results: Iterable[CaseResult]) -> list[list[CaseResult]]:
    """Results per (case, backend), in order of first appearance, by world size."""
    rows: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        rows.setdefault((r.case, r.backend), []).append(r)
    return [sorted(rs, key=lambda r: r.world_size) for rs in rows.values()]


def _status_parts(runs: Sequence[CaseResult]) -> list[tuple[str, str]]:
    by: dict[str, list[str]] = {}
    for r in runs:
        sizes = by.setdefault(r.status, [])
        if str(r.world_size) not in sizes:
            sizes.append(str(r.world_size))
    return [(s, ",".join(by[s])) for s in STATUS_ORDER if s in by] + \
        [(s, ",".join(v)) for s, v in by.items() if s not in STATUS_ORDER]


def _sizes(runs: Sequence[CaseResult]) -> str:
    return ",".join(dict.fromkeys(str(r.world_size) for r in runs))


# A row is one (case, backend) over its world sizes: a verdict per world size when they
# differ, the worst ratio over them, their total time.
KIND_COLUMNS: tuple[Column[Sequence[CaseResult]], ...] = (
    Column("case", lambda runs: cell(runs[0].case)),
    Column("world sizes", lambda runs: cell(_sizes(runs)), short="ws", numeric=True),
    Column("backend", lambda runs: cell(runs[0].backend)),
    Column("verdict", lambda runs: status_cell(_status_parts(runs),
                                               len({r.status for r in runs}) > 1)),
    Column("worst err/tol", lambda runs: ratio_cell(max_ratio(worst_ratio(r) for r in runs)),
           short="err/tol", numeric=True),
    Column("time", lambda runs: cell(format_duration(sum(num(r.duration_s) or 0.0
                                                         for r in runs)), "dim"),
           numeric=True, dim=True, optional=True))


def kind_tables(report: Report) -> list[TableData]:
    by_kind: dict[str, list[CaseResult]] = {}
    for r in shown_results(report):
        by_kind.setdefault(r.kind, []).append(r)
    return [TableData.of("results", kind, KIND_COLUMNS, _grouped(rs))
            for kind, rs in by_kind.items()]


# --------------------------------------------------------------------------- failures

def _nonfinite(c: Check) -> Cell:
    n = int(num(c.nonfinite) or 0)
    return cell(n, "bad" if n else "dim")


CHECK_COLUMNS: tuple[Column[Check], ...] = (
    Column("check", lambda c: cell(c.name, "strong")),
    Column("category", lambda c: cell(c.category or "", "bad" if c.category else "dim")),
    Column("comparison", lambda c: cell(c.comparison)),
    Column("rank", lambda c: cell("all" if c.rank is None else c.rank), numeric=True),
    Column("index", lambda c: cell(index_text(c.index))),
    Column("actual", lambda c: cell(format_float(c.actual, 6)), numeric=True),
    Column("expected", lambda c: cell(format_float(c.expected, 6)), numeric=True),
    Column("abs err", lambda c: cell(format_float(c.max_abs_err)), numeric=True),
    Column("rel err", lambda c: cell(format_float(c.max_rel_err)), numeric=True),
    Column("tol", lambda c: cell(format_float(c.tolerance)), numeric=True),
    Column("err/tol", lambda c: ratio_cell(check_ratio(c)), numeric=True),
    Column("non-finite", _nonfinite, numeric=True),
    Column("detail", lambda c: text_cell(c.detail), long=True))


def checks_table(checks: Sequence[Check]) -> TableData:
    return TableData.of("checks", "failing checks", CHECK_COLUMNS, checks)


@dataclass(frozen=True)
class ErrorItem:
    rank: str
    type: str
    exit: str  # "signal SIGKILL", "exit code 1" or ""
    message: str
    traceback: str  # trimmed to its innermost frames


@dataclass(frozen=True)
class FailureItem:
    status: str  # fail | error
    id: str
    kind: str
    duration: str
    reason: str | None  # what happened when no check says it (the target raised, a rank hung)
    reason_tone: str
    checks: TableData | None
    passed_note: str | None  # "2 other checks passed"
    errors: tuple[ErrorItem, ...]
    diagnosis: str | None = None
    repro: str | None = None


def error_items(result: CaseResult, max_lines: int = 30) -> tuple[ErrorItem, ...]:
    return tuple(ErrorItem(str(e.rank), e.type or "?", error_exit(e), e.message or "",
                           trim_traceback(e.traceback or "", max_lines))
                 for e in rank_errors(result))


def failure_item(result: CaseResult) -> FailureItem:
    bad = failing_checks(result)
    errors = error_items(result)
    reason, tone = None, "bad"
    if not bad and result.failure in FAILURE_TEXT:
        reason = FAILURE_TEXT[result.failure]
    elif not bad and not errors:
        what = "failing check" if result.status == "fail" else "rank error"
        reason, tone = f"status is {result.status.upper()} but no {what} was recorded", "warn"
    n_ok = len(result.checks) - len(bad)
    extra = result.extra
    return FailureItem(
        status=result.status, id=result.test_id, kind=result.kind,
        duration=format_duration(result.duration_s), reason=reason, reason_tone=tone,
        checks=checks_table(bad) if bad else None,
        passed_note=f"{n_ok} other check{'s' if n_ok != 1 else ''} passed" if n_ok else None,
        errors=errors,
        diagnosis=str(extra["diagnosis"]) if extra.get("diagnosis") else None,
        repro=str(extra["repro"]) if extra.get("repro") else None)


def failures(report: Report) -> list[FailureItem]:
    """Every failed result, then every errored one (a hung or crashed rank)."""
    shown = shown_results(report)
    return [failure_item(r) for status in ("fail", "error") for r in shown if r.status == status]


def folded_ids(results: Sequence[CaseResult]) -> str:
    """Test ids with a case's world sizes folded into one: ``cls[gloo-ws1,2,3]``."""
    return ", ".join(f"{g[0].case}[{g[0].backend}-ws{_sizes(g)}]" for g in _grouped(results))


SkipGroup = tuple[str, Sequence[CaseResult]]  # a reason and the results skipped for it

SKIP_COLUMNS: tuple[Column[SkipGroup], ...] = (
    Column("reason", lambda g: cell(g[0])),
    Column("count", lambda g: cell(len(g[1])), numeric=True),
    Column("cases", lambda g: cell(folded_ids(g[1]))))


def skips(report: Report) -> TableData | None:
    """One row per distinct reason: how many cases it skipped, and which."""
    by_reason: dict[str, list[CaseResult]] = {}
    for r in shown_results(report):
        if r.status == "skip":
            by_reason.setdefault(r.skip_reason or "", []).append(r)
    if not by_reason:
        return None
    n = sum(len(rs) for rs in by_reason.values())
    return TableData.of("skipped", "skipped", SKIP_COLUMNS, by_reason.items(),
                        note=f"{n} case{'s' if n != 1 else ''}, by reason", tone="skip")


# ---------------------------------------------------------------------------- overlap

def metric_cell(metrics: Mapping[str, Any] | None, name: str) -> Cell:
    med, interval = metric_parts(metrics, name)
    return cell(None, "dim") if med is None else Cell((Span(med),), interval)


def bar_cell(metrics: Mapping[str, Any] | None) -> Cell:
    med, _ = metric_parts(metrics, "hidden_fraction")
    frac = num((metrics or {}).get("hidden_fraction"))
    if frac is None or math.isnan(frac):
        return cell(None, "dim")
    return Cell((Span(med or ""),), bar=min(max(frac, 0.0), 1.0))


def metric_column(m: Metric, read: Callable[[Row], Cell]) -> Column[Row]:
    """A metric's column: its label, unit and short header from the registry."""
    return Column(m.label, read, unit=m.unit, numeric=True, short=m.short)


def _overlap_metric(name: str) -> Column[CaseResult]:
    return metric_column(metric(name), lambda r: metric_cell(r.metrics, name))


OVERLAP_COLUMNS: tuple[Column[CaseResult], ...] = (
    Column("case", lambda r: cell(f"{r.case}[{r.backend}]")),
    Column("ws", lambda r: cell(r.world_size), numeric=True),
    Column("K", lambda r: cell(format_float(r.extra.get("prototypes"))), numeric=True),
    *(_overlap_metric(name) for name in ("comm_ms", "bwd_ms", "exposed_ms", "hidden_fraction",
                                         "interference", "efficiency")),
    Column("hidden vs exposed", lambda r: bar_cell(r.metrics)))
OVERLAP_NOTE = "median [95 % CI, else p10–p90]"


def overlap_table(results: Sequence[CaseResult]) -> TableData | None:
    shown = overlap_results(results)
    if not shown:
        return None
    return TableData.of("overlap", "Overlap", OVERLAP_COLUMNS, shown, note=OVERLAP_NOTE,
                        caption="bar: hidden (green) / exposed (red) share of the center "
                                "all-reduce")


@dataclass(frozen=True)
class Note:
    """A line under a table: one overlap result's verdict and flags, or one remark."""

    text: str
    tone: str = ""
    indent: int = 0


def overlap_notes(results: Sequence[CaseResult]) -> list[Note]:
    """Each overlap result's verdict (inconclusive, comm longer than backward), and the
    reasons, noisy metrics and notes the bench attached to it."""
    out: list[Note] = []
    for r in overlap_results(results):
        x = r.extra
        if not x.get("verdict") and not x.get("inconclusive_reasons") and not x.get("notes"):
            continue
        flags = ("  [INCONCLUSIVE]" if x.get("inconclusive") else "") + \
            ("  [comm > backward]" if x.get("comm_exceeds_backward") else "")
        out.append(Note(f"{r.case} ws{r.world_size}: {x.get('verdict', '')}{flags}",
                        "warn" if x.get("inconclusive") else "ok"))
        out += [Note(f"inconclusive: {reason}", "warn", 1)
                for reason in x.get("inconclusive_reasons") or []]
        noisy = [str(text).split(":", 1)[0] for text in x.get("noisy") or []]
        if noisy:
            out.append(Note(f"noisy (wide 95% interval): {', '.join(noisy)} — details in the "
                            "report's 'noisy' field", "dim", 1))
        out += [Note(f"note: {note}", "dim", 1) for note in x.get("notes") or []]
    return out


def ddp_pairs(results: Sequence[CaseResult]) -> list[tuple[CaseResult, CaseResult]]:
    """(plain, ddp) result pairs of the same case, backend and world size."""
    plain = {(r.case, r.backend, r.world_size): r for r in results
             if r.metrics and not r.extra.get("ddp")}
    pairs = []
    for r in results:
        if r.metrics and r.extra.get("ddp"):
            base = plain.get((r.case.removesuffix("-ddp"), r.backend, r.world_size))
            if base is not None:
                pairs.append((base, r))
    return pairs


DdpPair = tuple[CaseResult, CaseResult]  # (plain, ddp)


def _ddp_metric(name: str) -> Column[DdpPair]:
    m = metric(name)

    def change(pair: DdpPair) -> Cell:
        plain, ddp = ((r.metrics or {}).get(name) for r in pair)
        return cell(f"{m.format(plain)} → {m.format(ddp)}")

    return metric_column(m, change)


DDP_COLUMNS: tuple[Column[DdpPair], ...] = (
    Column("case", lambda pair: cell(pair[0].case)),
    Column("ws", lambda pair: cell(pair[0].world_size), numeric=True),
    *(_ddp_metric(name) for name in ("bwd_ms", "comm_ms", "exposed_ms", "hidden_fraction",
                                     "interference", "efficiency")))


def ddp_table(results: Sequence[CaseResult]) -> TableData | None:
    """Plain → DDP, per case and world size: what sharing the group with the gradient
    buckets does to backward, the all-reduce, and how much of it hides."""
    pairs = ddp_pairs(results)
    if not pairs:
        return None
    return TableData.of("ddp", "DDP vs plain (plain → ddp)", DDP_COLUMNS, pairs,
                        note="the center all-reduce sharing the group with the gradient "
                             "buckets")


# ------------------------------------------------------------------------- bench pool

def _g(v: Any) -> str:
    x = num(v)
    if x is None or math.isnan(x):
        return "—"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _spread(row: Mapping[str, Any], prefix: str) -> str:
    return f"{_g(row.get(prefix + '_median'))} [{_g(row.get(prefix + '_p10'))}–{_g(row.get(prefix + '_p90'))}]"


PoolRow = tuple[Any, Mapping[str, Any]]  # a world size and what the bench measured at it


def _measured(read: Callable[[Mapping[str, Any]], Cell]) -> Callable[[PoolRow], Cell]:
    """A figure of a world size the bench ran; empty where it was skipped."""
    return lambda wr: Cell() if "skipped" in wr[1] else read(wr[1])


def _pool_start(wr: PoolRow) -> Cell:
    """The first figure, or why the world size was skipped."""
    if "skipped" in wr[1]:
        return cell(f"skipped: {wr[1]['skipped']}", "warn")
    return cell(_g(wr[1].get("pool_start_s")))


def _met(row: Mapping[str, Any]) -> Cell:
    ok = row.get("meets_targets")
    return cell("met" if ok else "missed", "ok" if ok else "bad")


POOL_COLUMNS: tuple[Column[PoolRow], ...] = (
    Column("ws", lambda wr: cell(wr[0]), numeric=True),
    Column("pool start s", _pool_start, numeric=True),
    Column("cold start s", _measured(lambda row: cell(_g(row.get("pool_start_cold_s")))),
           numeric=True),
    Column("warm case ms", _measured(lambda row: cell(_spread(row, "warm_case_ms"))),
           numeric=True),
    Column("spawn case ms", _measured(lambda row: cell(_spread(row, "spawn_case_ms"))),
           numeric=True),
    Column("ratio", _measured(lambda row: cell(f"{_g(row.get('spawn_over_warm_ratio'))}×")),
           numeric=True),
    Column("targets", _measured(_met), numeric=True))


def pool_table(report: Report) -> TableData | None:
    """``bench pool``: per world size, pool start, warm case vs spawn-per-case, the targets."""
    bench = report.bench
    if bench is None or bench.name != "pool":
        return None
    info = bench.extra
    targets = info.get("targets") or {}
    return TableData.of(
        "pool", f"warm pool vs spawn-per-case ({info.get('backend', 'gloo')}); zygote boot "
        f"{info.get('zygote_boot_measured_s', '?')} s", POOL_COLUMNS, bench.world_sizes.items(),
        caption=f"targets: warm case ≤ {targets.get('warm_case_ms_median_max', '?')} ms, "
                f"ratio ≥ {targets.get('spawn_over_warm_ratio_min', '?')}× at 2 ranks")


# -------------------------------------------------------------------------- selfcheck

@dataclass(frozen=True)
class SelfcheckRow:
    """The reference, one planted fault, or the overlap controls."""

    target: Cell
    bug: Cell
    verdict: Cell
    where: Cell
    diagnosis: Cell = Cell()


SELFCHECK_COLUMNS: tuple[Column[SelfcheckRow], ...] = (
    Column("target", lambda r: r.target), Column("bug", lambda r: r.bug),
    Column("verdict", lambda r: r.verdict), Column("caught by (first cases)", lambda r: r.where),
    Column("diagnosis", lambda r: r.diagnosis, long=True))


def diagnosis_cell(f: FaultOutcome) -> Cell:
    """What the catching results said the cause is: the commonest diagnosis with its count,
    marked by whether it named the fault's own mistake."""
    if not f.diagnoses:
        return cell("no diagnosis" if f.caught_by else "", "bad" if f.diagnosed is False else "dim")
    text, count = next(iter(f.diagnoses.items()))
    others = len(f.diagnoses) - 1
    head = {True: f"named in {f.named}/{len(f.caught_by)}: ", False: "NOT NAMED: ",
            None: ""}[f.diagnosed]
    tail = f" ({count}/{len(f.caught_by)})" + (f"; {others} other diagnosis(es)" if others else "")
    tone = {True: "ok", False: "bad", None: ""}[f.diagnosed]
    return Cell((Span(head, tone), Span(text), Span(tail, "dim")))


def selfcheck_table(report: Report) -> TableData | None:
    """The reference must pass, each fault must be caught, the overlap controls told apart."""
    sc = report.selfcheck
    if sc is None:
        return None
    alarms = sc.false_alarms
    rows = [SelfcheckRow(cell(REFERENCE), cell("must pass"),
                         cell("FALSE ALARM", "bad") if alarms else cell("PASS", "ok"),
                         cell(", ".join(alarms[:6]) or f"{sc.reference_cases} cases passed"))]
    for f in sc.faults:
        caught = [c.case for c in f.caught_by]
        verdict_ = cell(f"caught by {len(caught)}/{f.cases_run}", "ok") if caught \
            else cell("SURVIVED", "bad")
        where = ", ".join(caught[:4]) + (" ..." if len(caught) > 4 else "")
        if f.failed_otherwise:
            where += ("; " if where else "") + f"failed otherwise: {len(f.failed_otherwise)}"
        rows.append(SelfcheckRow(cell(f.name), cell(f.description), verdict_, cell(where),
                                 diagnosis_cell(f)))
    c = sc.overlap_controls
    if c:
        text = "skipped" if c.get("skipped") else "told apart" if c.get("passed") else "NOT TOLD APART"
        tone = "dim" if c.get("skipped") else "ok" if c.get("passed") else "bad"
        rows.append(SelfcheckRow(cell("overlap controls"),
                                 cell("fake-async update_center vs the reference"),
                                 cell(text, tone), cell(c.get("text"))))
    return TableData.of("selfcheck", "selfcheck: every planted fault must be caught",
                        SELFCHECK_COLUMNS, rows)


# ---------------------------------------------------------------------------- document

@dataclass(frozen=True)
class Document:
    """Everything a format shows, in the order it shows it."""

    header: Header
    selfcheck: TableData | None
    pool: TableData | None
    kind_tables: tuple[TableData, ...]
    failures: tuple[FailureItem, ...]
    skips: TableData | None
    overlap: TableData | None
    overlap_notes: tuple[Note, ...]
    ddp: TableData | None
    results: tuple[CaseResult, ...] = field(default=())  # what the pictures draw
    explore: tuple[TableData, ...] = ()  # the search and its findings (explore_view.py)


def document(report: Report) -> Document:
    from . import explore_view  # it builds on the cells of this module

    shown = shown_results(report)
    return Document(header=header(report), selfcheck=selfcheck_table(report),
                    pool=pool_table(report), kind_tables=tuple(kind_tables(report)),
                    failures=tuple(failures(report)), skips=skips(report),
                    overlap=overlap_table(shown), overlap_notes=tuple(overlap_notes(shown)),
                    ddp=ddp_table(shown), results=tuple(shown),
                    explore=tuple(explore_view.tables(report)))


def visible(columns: Sequence[Column], keep: Callable[[Column], bool]) -> list[int]:
    """Indexes of the columns a layout keeps."""
    return [i for i, c in enumerate(columns) if keep(c)]
