"""The rich console summary of a report: header, a table per kind, every failure and
error expanded, skips, the overlap table, and a one-line verdict.

Each piece is a function returning a rich renderable so that other views (the live
view, ``compare``) can reuse them; :func:`render_report` composes and prints them.
Wide tables (failing checks, overlap) adapt to the width they get: a table on a wide
terminal, a compact layout on an 80-column one. Every string from a report is put in a
:class:`~rich.text.Text`, never parsed as rich markup.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from ..outcome import FAILURE_TEXT
from .fmt import (
    OVERLAP_METRICS,
    STATUS_LABEL,
    STATUS_STYLE,
    check_ratio,
    devices_line,
    error_exit,
    failing_checks,
    format_duration,
    format_float,
    format_percent,
    format_ratio,
    group_by_kind,
    group_rows,
    metric_interval,
    num,
    overlap_results,
    rank_errors,
    target_line,
    test_id,
    trim_traceback,
    verdict_parts,
    verdict_text,
)

BAR_WIDTH = 16
WIDE_CHECKS = 130  # below this many columns, failing checks are listed, not tabulated
WIDE_OVERLAP = 150  # below this, overlap results are listed, not tabulated
METRIC_HEADERS = {"comm_ms": "comm ms", "bwd_ms": "bwd ms", "exposed_ms": "exposed ms",
                  "hidden_fraction": "hidden", "interference": "interf.", "efficiency": "effic."}


class ByWidth:
    """A renderable built for the width it is given (wide table or compact list)."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        yield self.build(options.max_width)


def T(value: Any, style: str = "") -> Text:  # noqa: N802 - a tiny constructor
    """Report data as literal text (never rich markup)."""
    return Text("—" if value is None or value == "" else str(value), style=style)


def status_text(status: str) -> Text:
    return Text(STATUS_LABEL.get(status, status.upper()), style=STATUS_STYLE.get(status, "bold"))


def ratio_style(ratio: float | None) -> str:
    if ratio is None:
        return "dim"
    if math.isnan(ratio) or ratio > 1:
        return "bold red"
    return "yellow" if ratio > 0.5 else "green"


def ratio_text(ratio: float | None) -> Text:
    return Text(format_ratio(ratio), style=ratio_style(ratio))


# ------------------------------------------------------------------------------ header

def _facts_grid(facts: Sequence[tuple[str, Text]], width: int) -> Table:
    """Label/value pairs, two pairs a line when there is room."""
    per_line = 2 if width >= 110 else 1
    grid = Table.grid(padding=(0, 2))
    for _ in range(per_line):
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column(overflow="fold")
    for i in range(0, len(facts), per_line):
        cells: list[RenderableType] = []
        for label, value in facts[i:i + per_line]:
            cells += [label, value]
        grid.add_row(*cells)
    return grid


def header_panel(report: Mapping[str, Any]) -> Panel:
    env: Mapping[str, Any] = report.get("environment") or {}
    target: Mapping[str, Any] = report.get("target") or {}
    cpu = env.get("cpu")
    if env.get("cpu_count"):
        cpu = f"{cpu or '?'} ({env['cpu_count']} cores)"
    facts = [("Target", T(target_line(target))), ("Backend", T(env.get("backend"))),
             ("Torch", T(env.get("torch"))), ("NCCL", T(env.get("nccl"))),
             ("Python", T(env.get("python"))),
             ("GPUs" if env.get("backend") == "nccl" else "Devices", T(devices_line(env))),
             ("Host", T(env.get("hostname"))), ("CPU", T(cpu)),
             ("Platform", T(env.get("platform"))), ("Created", T(report.get("created")))]
    if target.get("path") or report.get("run_id"):
        facts += [("Target file", T(target.get("path"))), ("Run", T(report.get("run_id")))]
    parts: list[RenderableType] = [ByWidth(lambda width: _facts_grid(facts, width))]
    if report.get("complete") is False:
        parts.append(Text("⚠ INCOMPLETE RUN" + (" — rebuilt from results.jsonl"
                                                if report.get("recovered") else ""),
                          style="bold yellow"))
    for w in report.get("warnings") or []:
        parts.append(Text(f"⚠ {w}", style="yellow"))
    return Panel(Group(*parts), title="[bold]dino-harness report[/]", title_align="left",
                 border_style="cyan")


# ----------------------------------------------------------------------------- results

def kind_table(kind: str, results: Sequence[Mapping[str, Any]], width: int = 200) -> Table:
    """One row per (case, backend): world sizes, verdict (per world size when mixed),
    worst error/tolerance ratio over them, time. Narrow consoles get shorter headers
    and no time column."""
    rows = group_rows(results)
    narrow = width < 100
    longest = max((len(r["case"]) for r in rows), default=4)
    t = Table(title=Text(kind, style="bold"), title_justify="left", box=box.SIMPLE_HEAD,
              show_edge=False)
    t.add_column("case", min_width=min(longest, 30 if narrow else 40), overflow="fold")
    t.add_column("ws" if narrow else "world sizes", justify="right", no_wrap=True)
    t.add_column("backend", no_wrap=True)
    t.add_column("verdict")
    t.add_column("err/tol" if narrow else "worst err/tol", justify="right", no_wrap=True)
    if not narrow:
        t.add_column("time", justify="right", style="dim", no_wrap=True)
    for row in rows:
        verdict = Text()
        for i, (status, sizes) in enumerate(verdict_parts(row)):
            if i:
                verdict.append(" · ")
            verdict.append_text(status_text(status))
            if row["mixed"]:
                verdict.append(f" ws{sizes}", style="dim")
        cells: list[RenderableType] = [
            T(row["case"]), T(",".join(str(w) for w in row["world_sizes"])), T(row["backend"]),
            verdict, ratio_text(row["worst_ratio"])]
        if not narrow:
            cells.append(T(format_duration(row["duration_s"])))
        t.add_row(*cells)
    return t


def _index_text(index: Any) -> str:
    if index is None:
        return "—"
    if isinstance(index, (list, tuple)):
        return "[" + ", ".join(str(i) for i in index) + "]"
    return str(index)


def _rank_text(check: Mapping[str, Any]) -> str:
    return "all" if check.get("rank") is None else str(check.get("rank"))


def checks_table(checks: Sequence[Mapping[str, Any]]) -> Table:
    """Failing checks as a table (wide consoles)."""
    t = Table(box=box.SIMPLE, show_edge=False, padding=(0, 1))
    for name in ("check", "comparison", "rank", "index", "actual", "expected", "abs err",
                 "rel err", "tol", "err/tol", "non-finite"):
        right = name not in ("check", "comparison", "index")
        t.add_column(name, justify="right" if right else "left",
                     no_wrap=name not in ("check", "index"), overflow="fold")
    for c in checks:
        nonfinite = int(num(c.get("nonfinite")) or 0)
        t.add_row(T(c.get("name", "?"), "bold"), T(c.get("comparison")), T(_rank_text(c)),
                  T(_index_text(c.get("index"))), T(format_float(c.get("actual"), 6)),
                  T(format_float(c.get("expected"), 6)), T(format_float(c.get("max_abs_err"))),
                  T(format_float(c.get("max_rel_err"))), T(format_float(c.get("tolerance"))),
                  ratio_text(check_ratio(c)),
                  T(nonfinite, "bold red" if nonfinite else "dim"))
    return t


def checks_list(checks: Sequence[Mapping[str, Any]]) -> Group:
    """Failing checks as labelled lines (narrow consoles); nothing is cut off."""
    parts: list[RenderableType] = []
    for c in checks:
        nonfinite = int(num(c.get("nonfinite")) or 0)
        ratio = check_ratio(c)
        parts.append(Text.assemble(
            (str(c.get("name", "?")), "bold"), "  ", (str(c.get("comparison") or "—"), "cyan"),
            "  rank ", _rank_text(c), "  index ", _index_text(c.get("index")),
            "  err/tol ", (format_ratio(ratio), ratio_style(ratio))))
        parts.append(Padding(Text.assemble(
            ("actual ", "dim"), format_float(c.get("actual"), 6),
            ("  expected ", "dim"), format_float(c.get("expected"), 6),
            ("  abs err ", "dim"), format_float(c.get("max_abs_err")),
            ("  rel err ", "dim"), format_float(c.get("max_rel_err")),
            ("  tol ", "dim"), format_float(c.get("tolerance")),
            ("  non-finite ", "dim"), (str(nonfinite), "bold red" if nonfinite else "")),
            (0, 0, 0, 2)))
    return Group(*parts)


def failing_checks_renderable(checks: Sequence[Mapping[str, Any]]) -> ByWidth:
    return ByWidth(lambda width: checks_table(checks) if width >= WIDE_CHECKS
                   else checks_list(checks))


def failure_panel(result: Mapping[str, Any]) -> Panel:
    bad = failing_checks(result)
    n_ok = len(result.get("checks") or []) - len(bad)
    parts: list[RenderableType] = []
    if bad:
        parts.append(failing_checks_renderable(bad))
        for c in bad:
            if c.get("detail"):
                parts.append(Text.assemble((f"{c.get('name')}: ", "bold"), str(c["detail"])))
    elif result.get("failure") in FAILURE_TEXT:
        parts.append(Text(FAILURE_TEXT[result["failure"]], style="bold red"))
    else:
        parts.append(Text("status is FAIL but no failing check was recorded", style="yellow"))
    if n_ok:
        parts.append(Text(f"{n_ok} other check{'s' if n_ok != 1 else ''} passed", style="dim"))
    if rank_errors(result):
        parts.append(errors_group(result))
    return Panel(Group(*parts), title=_panel_title("FAIL", "bold red", result),
                 title_align="left", border_style="red")


def _panel_title(label: str, style: str, result: Mapping[str, Any]) -> Text:
    return Text.assemble((label + " ", style), test_id(result),
                         (f"  {result.get('kind', '')} · {format_duration(result.get('duration_s'))}",
                          "dim"))


def errors_group(result: Mapping[str, Any], max_lines: int = 30) -> Group:
    """Each rank's error: rank, type, signal/exit code, message, and its trimmed stack."""
    parts: list[RenderableType] = []
    for e in rank_errors(result):
        head = Text.assemble(("rank ", "bold"), (str(e.get("rank", "?")), "bold"), "  ",
                             (str(e.get("type", "?")), "bold magenta"))
        exit_ = error_exit(e)
        if exit_:
            head.append(f"  ({exit_})", style="magenta")
        if e.get("message"):
            head.append(": ")
            head.append(str(e["message"]))
        parts.append(head)
        if e.get("traceback"):
            parts.append(Padding(Text(trim_traceback(str(e["traceback"]), max_lines), style="dim"),
                                 (0, 0, 0, 4)))
    return Group(*parts)


def error_panel(result: Mapping[str, Any]) -> Panel:
    parts: list[RenderableType] = []
    if rank_errors(result):
        parts.append(errors_group(result))
    else:
        parts.append(Text("status is ERROR but no rank error was recorded", style="yellow"))
    bad = failing_checks(result)
    if bad:
        parts.append(failing_checks_renderable(bad))
    return Panel(Group(*parts), title=_panel_title("ERROR", "bold magenta", result),
                 title_align="left", border_style="magenta")


def skipped_table(results: Sequence[Mapping[str, Any]]) -> Table:
    t = Table(title=Text("skipped", style="bold yellow"), title_justify="left",
              box=box.SIMPLE_HEAD, show_edge=False)
    t.add_column("case", no_wrap=True)
    t.add_column("reason", overflow="fold")
    for r in results:
        t.add_row(T(test_id(r)), T(r.get("skip_reason")))
    return t


# ----------------------------------------------------------------------------- overlap

def hidden_bar(metrics: Mapping[str, Any], width: int = BAR_WIDTH) -> Text:
    """Green: the share of the all-reduce hidden behind backward; red: exposed."""
    frac = num(metrics.get("hidden_fraction"))
    if frac is None or math.isnan(frac):
        return Text("—", style="dim")
    frac = min(max(frac, 0.0), 1.0)
    hidden = round(frac * width)
    return Text.assemble(("█" * hidden, "green"), ("█" * (width - hidden), "red"),
                         f" {format_percent(frac)}")


def _metric_cell(metrics: Mapping[str, Any], name: str, layout: str) -> Text:
    med, lo, hi = metric_interval(metrics, name)
    f = format_percent if name in ("hidden_fraction", "efficiency") else format_float
    if med is None:
        return Text("—", style="dim")
    text = Text(f(med))
    if lo is not None and hi is not None and layout != "median":
        text.append(" " if layout == "inline" else "\n")
        text.append(f"[{f(lo)}–{f(hi)}]", style="dim")
    return text


def _overlap_title() -> Text:
    return Text.assemble(("overlap", "bold"), "  median [95 % CI, else p10–p90]; bar: ", ("hidden", "green"),
                         " / ", ("exposed", "red"), " share of the all-reduce")


def overlap_list(results: Sequence[Mapping[str, Any]]) -> Group:
    """The overlap metrics as two lines per result (narrow consoles)."""
    parts: list[RenderableType] = [_overlap_title()]
    for r in results:
        metrics = r.get("metrics") or {}
        head = Text.assemble((f"{r.get('case')}[{r.get('backend')}]", "bold"),
                             f"  ws {r.get('world_size', '?')}",
                             f"  K {format_float(r.get('prototypes'))}  ")
        head.append_text(hidden_bar(metrics, 12))
        body = Text()
        for i, m in enumerate(OVERLAP_METRICS):
            if i:
                body.append(" · ", style="dim")
            body.append(m.removesuffix("_ms").replace("_fraction", "") + " ", style="dim")
            body.append_text(_metric_cell(metrics, m, "inline"))
            if m.endswith("_ms"):
                body.append(" ms", style="dim")
        parts += [head, Padding(body, (0, 0, 0, 2))]
    return Group(*parts)


def overlap_table(results: Sequence[Mapping[str, Any]], width: int = 200) -> Table:
    """Overlap metrics (median [95 % CI, else p10–p90]) and a hidden-vs-exposed bar per result.
    ``width`` picks the layout: intervals inline or on a second line."""
    layout = "inline" if width >= 170 else "stacked"
    t = Table(title=_overlap_title(), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    longest = max((len(f"{r.get('case')}[{r.get('backend')}]") for r in results), default=4)
    t.add_column("case", overflow="fold", min_width=min(longest, 32))
    t.add_column("ws", justify="right", no_wrap=True)
    t.add_column("K", justify="right", no_wrap=True)
    for m in OVERLAP_METRICS:
        t.add_column(METRIC_HEADERS[m], justify="right", no_wrap=True)
    t.add_column("hidden vs exposed", no_wrap=True)
    for r in results:
        metrics = r.get("metrics") or {}
        t.add_row(T(f"{r.get('case')}[{r.get('backend')}]"), T(r.get("world_size")),
                  T(format_float(r.get("prototypes"))),
                  *[_metric_cell(metrics, m, layout) for m in OVERLAP_METRICS],
                  hidden_bar(metrics))
    return t


# ----------------------------------------------------------------------------- verdict

def verdict_line(report: Mapping[str, Any]) -> Text:
    text, status = verdict_text(report)
    mark = {"pass": "✔", "fail": "✘", "error": "✘", "skip": "○"}[status]
    return Text(f"{mark} {text}", style=STATUS_STYLE[status])


def report_renderable(report: Mapping[str, Any]) -> Group:
    results: list[Mapping[str, Any]] = list(report.get("results") or [])
    parts: list[RenderableType] = [header_panel(report)]
    for kind, rs in group_by_kind(results).items():
        parts.append(ByWidth(lambda width, kind=kind, rs=rs: kind_table(kind, rs, width)))
    fails = [r for r in results if r.get("status") == "fail"]
    errors = [r for r in results if r.get("status") == "error"]
    skips = [r for r in results if r.get("status") == "skip"]
    if fails or errors:
        parts.append(Rule(Text(f"{len(fails)} failed, {len(errors)} "
                               f"error{'' if len(errors) == 1 else 's'}", style="bold red"),
                          style="red"))
        parts.extend(failure_panel(r) for r in fails)
        parts.extend(error_panel(r) for r in errors)
    if skips:
        parts.append(skipped_table(skips))
    overlap = overlap_results(results)
    if overlap:
        parts.append(ByWidth(lambda width: overlap_table(overlap, width)
                             if width >= WIDE_OVERLAP else overlap_list(overlap)))
    parts.append(verdict_line(report))
    return Group(*parts)


def render_report(report: Mapping[str, Any], console: Console) -> None:
    """Print the whole report summary on ``console``."""
    console.print(report_renderable(report))


__all__ = ["render_report", "report_renderable", "header_panel", "kind_table", "failure_panel",
           "error_panel", "overlap_table", "hidden_bar", "verdict_line", "checks_table",
           "checks_list", "overlap_list", "skipped_table", "errors_group", "status_text", "ratio_text", "ByWidth"]
