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
from typing import Any

from harness.outcome import FAILURE_TEXT
from harness.results import CaseResult, Check

from .fmt import (
    OVERLAP_METRICS,
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
    metric_parts,
    num,
    overlap_results,
    rank_errors,
    target_line,
    trim_traceback,
    worst_ratio,
)
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


@dataclass(frozen=True)
class Column:
    name: str
    unit: str = ""  # after the value in a one-line layout ("comm 4.2 ms")
    numeric: bool = False  # right-aligned
    short: str | None = None  # the header where space is short
    dim: bool = False
    optional: bool = False  # may be dropped where space is short
    long: bool = False  # free text: a column in Markdown, a line under the table elsewhere

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


@dataclass(frozen=True)
class TableData:
    key: str  # a stable name: the HTML class, a test's handle
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""  # what the numbers are, beside the title
    caption: str = ""  # under the table
    tone: str = ""  # of the title


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

KIND_COLUMNS = (Column("case"), Column("world sizes", short="ws", numeric=True),
                Column("backend"), Column("verdict"),
                Column("worst err/tol", short="err/tol", numeric=True),
                Column("time", numeric=True, dim=True, optional=True))


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


def kind_row(runs: Sequence[CaseResult]) -> tuple[Cell, ...]:
    """One (case, backend) over its world sizes: a verdict per world size when they
    differ, the worst ratio over them, their total time."""
    sizes = ",".join(dict.fromkeys(str(r.world_size) for r in runs))
    mixed = len({r.status for r in runs}) > 1
    return (cell(runs[0].case), cell(sizes), cell(runs[0].backend),
            status_cell(_status_parts(runs), mixed),
            ratio_cell(max_ratio(worst_ratio(r) for r in runs)),
            cell(format_duration(sum(num(r.duration_s) or 0.0 for r in runs)), "dim"))


def kind_tables(report: Report) -> list[TableData]:
    by_kind: dict[str, list[CaseResult]] = {}
    for r in shown_results(report):
        by_kind.setdefault(r.kind, []).append(r)
    return [TableData("results", kind, KIND_COLUMNS, tuple(kind_row(g) for g in _grouped(rs)))
            for kind, rs in by_kind.items()]


# --------------------------------------------------------------------------- failures

CHECK_COLUMNS = (Column("check"), Column("category"), Column("comparison"),
                 Column("rank", numeric=True),
                 Column("index"), Column("actual", numeric=True),
                 Column("expected", numeric=True), Column("abs err", numeric=True),
                 Column("rel err", numeric=True), Column("tol", numeric=True),
                 Column("err/tol", numeric=True), Column("non-finite", numeric=True),
                 Column("detail", long=True))


def check_row(c: Check) -> tuple[Cell, ...]:
    nonfinite = int(num(c.nonfinite) or 0)
    return (cell(c.name, "strong"), cell(c.category or "", "bad" if c.category else "dim"),
            cell(c.comparison), cell("all" if c.rank is None else c.rank),
            cell(index_text(c.index)), cell(format_float(c.actual, 6)),
            cell(format_float(c.expected, 6)), cell(format_float(c.max_abs_err)),
            cell(format_float(c.max_rel_err)), cell(format_float(c.tolerance)),
            ratio_cell(check_ratio(c)), cell(nonfinite, "bad" if nonfinite else "dim"),
            Cell((Span(c.detail),)) if c.detail else Cell())


def checks_table(checks: Sequence[Check]) -> TableData:
    return TableData("checks", "failing checks", CHECK_COLUMNS, tuple(check_row(c) for c in checks))


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


def skips(report: Report) -> TableData | None:
    rows = tuple((cell(r.test_id), cell(r.skip_reason)) for r in shown_results(report)
                 if r.status == "skip")
    if not rows:
        return None
    return TableData("skipped", "skipped", (Column("case"), Column("reason")), rows,
                     tone="skip")


# ---------------------------------------------------------------------------- overlap

def _metric_column(name: str) -> Column:
    base = {"comm_ms": ("comm", "ms", None), "bwd_ms": ("bwd", "ms", None),
            "exposed_ms": ("exposed", "ms", None), "hidden_fraction": ("hidden", "", None),
            "interference": ("interference", "", "interf."),
            "efficiency": ("efficiency", "", "effic.")}[name]
    return Column(base[0], unit=base[1], numeric=True, short=base[2])


OVERLAP_COLUMNS = (Column("case"), Column("ws", numeric=True), Column("K", numeric=True),
                   *(_metric_column(m) for m in OVERLAP_METRICS), Column("hidden vs exposed"))
OVERLAP_NOTE = "median [95 % CI, else p10–p90]"


def metric_cell(metrics: Mapping[str, Any] | None, name: str) -> Cell:
    med, interval = metric_parts(metrics, name)
    return cell(None, "dim") if med is None else Cell((Span(med),), interval)


def bar_cell(metrics: Mapping[str, Any] | None) -> Cell:
    med, _ = metric_parts(metrics, "hidden_fraction")
    frac = num((metrics or {}).get("hidden_fraction"))
    if frac is None or math.isnan(frac):
        return cell(None, "dim")
    return Cell((Span(med or ""),), bar=min(max(frac, 0.0), 1.0))


def overlap_table(results: Sequence[CaseResult]) -> TableData | None:
    rows = tuple((cell(f"{r.case}[{r.backend}]"), cell(r.world_size),
                  cell(format_float(r.extra.get("prototypes"))),
                  *(metric_cell(r.metrics, m) for m in OVERLAP_METRICS), bar_cell(r.metrics))
                 for r in overlap_results(results))
    if not rows:
        return None
    return TableData("overlap", "Overlap", OVERLAP_COLUMNS, rows, note=OVERLAP_NOTE,
                     caption="bar: hidden (green) / exposed (red) share of the center all-reduce")


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


DDP_METRICS = (("bwd_ms", "bwd ms", False), ("comm_ms", "comm ms", False),
               ("exposed_ms", "exposed ms", False), ("hidden_fraction", "hidden", True),
               ("interference", "interference", True), ("efficiency", "efficiency", True))


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


def _change(a: CaseResult, b: CaseResult, key: str, pct: bool) -> str:
    def f(v: float | None) -> str:
        if v is None or math.isnan(v):
            return "—"
        return f"{v:.0%}" if pct else f"{v:.3g}"

    return f"{f(num((a.metrics or {}).get(key)))} → {f(num((b.metrics or {}).get(key)))}"


def ddp_table(results: Sequence[CaseResult]) -> TableData | None:
    """Plain → DDP, per case and world size: what sharing the group with the gradient
    buckets does to backward, the all-reduce, and how much of it hides."""
    pairs = ddp_pairs(results)
    if not pairs:
        return None
    columns = (Column("case"), Column("ws", numeric=True),
               *(Column(header, numeric=True) for _, header, _ in DDP_METRICS))
    rows = tuple((cell(base.case), cell(base.world_size),
                  *(cell(_change(base, d, key, pct)) for key, _, pct in DDP_METRICS))
                 for base, d in pairs)
    return TableData("ddp", "DDP vs plain (plain → ddp)", columns, rows,
                     note="the center all-reduce sharing the group with the gradient buckets")


# ------------------------------------------------------------------------- bench pool

POOL_COLUMNS = (Column("ws", numeric=True), Column("pool start s", numeric=True),
                Column("cold start s", numeric=True), Column("warm case ms", numeric=True),
                Column("spawn case ms", numeric=True), Column("ratio", numeric=True),
                Column("targets", numeric=True))


def _g(v: Any) -> str:
    x = num(v)
    if x is None or math.isnan(x):
        return "—"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _spread(row: Mapping[str, Any], prefix: str) -> str:
    return f"{_g(row.get(prefix + '_median'))} [{_g(row.get(prefix + '_p10'))}–{_g(row.get(prefix + '_p90'))}]"


def pool_table(report: Report) -> TableData | None:
    """``bench pool``: per world size, pool start, warm case vs spawn-per-case, the targets."""
    bench = report.bench
    if bench is None or bench.name != "pool":
        return None
    info = bench.extra
    targets = info.get("targets") or {}
    rows = []
    for ws, row in bench.world_sizes.items():
        if "skipped" in row:
            rows.append((cell(ws), cell(f"skipped: {row['skipped']}", "warn"),
                         *(Cell() for _ in range(5))))
            continue
        ok = row.get("meets_targets")
        rows.append((cell(ws), cell(_g(row.get("pool_start_s"))),
                     cell(_g(row.get("pool_start_cold_s"))), cell(_spread(row, "warm_case_ms")),
                     cell(_spread(row, "spawn_case_ms")),
                     cell(f"{_g(row.get('spawn_over_warm_ratio'))}×"),
                     cell("met" if ok else "missed", "ok" if ok else "bad")))
    return TableData(
        "pool", f"warm pool vs spawn-per-case ({info.get('backend', 'gloo')}); zygote boot "
        f"{info.get('zygote_boot_measured_s', '?')} s", POOL_COLUMNS, tuple(rows),
        caption=f"targets: warm case ≤ {targets.get('warm_case_ms_median_max', '?')} ms, "
                f"ratio ≥ {targets.get('spawn_over_warm_ratio_min', '?')}× at 2 ranks")


# -------------------------------------------------------------------------- selfcheck

SELFCHECK_COLUMNS = (Column("target"), Column("bug"), Column("verdict"),
                     Column("caught by (first cases)"), Column("diagnosis", long=True))


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
    rows = [(cell(REFERENCE), cell("must pass"),
             cell("FALSE ALARM", "bad") if alarms else cell("PASS", "ok"),
             cell(", ".join(alarms[:6]) or f"{sc.reference_cases} cases passed"), Cell())]
    for f in sc.faults:
        caught = [c.case for c in f.caught_by]
        verdict_ = cell(f"caught by {len(caught)}/{f.cases_run}", "ok") if caught \
            else cell("SURVIVED", "bad")
        where = ", ".join(caught[:4]) + (" ..." if len(caught) > 4 else "")
        if f.failed_otherwise:
            where += ("; " if where else "") + f"failed otherwise: {len(f.failed_otherwise)}"
        rows.append((cell(f.name), cell(f.description), verdict_, cell(where), diagnosis_cell(f)))
    c = sc.overlap_controls
    if c:
        text = "skipped" if c.get("skipped") else "told apart" if c.get("passed") else "NOT TOLD APART"
        tone = "dim" if c.get("skipped") else "ok" if c.get("passed") else "bad"
        rows.append((cell("overlap controls"), cell("fake-async update_center vs the reference"),
                     cell(text, tone), cell(c.get("text")), Cell()))
    return TableData("selfcheck", "selfcheck: every planted fault must be caught",
                     SELFCHECK_COLUMNS, tuple(rows))


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
