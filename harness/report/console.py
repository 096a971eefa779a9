"""The rich console view of a report: it formats :mod:`harness.report.sections`, nothing more.

Wide tables adapt to the width they get (a table on a wide terminal, one line of
``label value`` pairs per row on an 80-column one), so nothing is cut off. Every string
from a report is put in a :class:`~rich.text.Text`, never parsed as rich markup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from . import sections as sec
from .baseline import Comparison, ComparisonSection, comparison_section
from .fmt import STATUS_STYLE
from .model import Report, as_report

BAR_WIDTH = 16
WIDE_KINDS = 100  # below this many columns, kind tables get short headers and no time
WIDE_CHECKS = 130  # below this, failing checks are listed, not tabulated
WIDE_OVERLAP = 150  # below this, overlap results are listed, not tabulated
INLINE_INTERVALS = 170  # from this width on, intervals sit beside their median
WIDE_TABLE = 120  # below this, the bench and DDP tables are listed
TONE_STYLE = {**STATUS_STYLE, "bad": "bold red", "ok": "green", "warn": "yellow", "dim": "dim",
              "strong": "bold", "info": "cyan", "": ""}


class ByWidth:
    """A renderable built for the width it is given (wide table or compact list)."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        yield self.build(options.max_width)


def T(value: Any, style: str = "") -> Text:  # noqa: N802 - a tiny constructor
    """Report data as literal text (never rich markup)."""
    return Text("—" if value is None or value == "" else str(value), style=style)


def spans_text(spans: Sequence[sec.Span]) -> Text:
    return Text.assemble(*((s.text, TONE_STYLE.get(s.tone, "")) for s in spans))


def bar_text(share: float, label: str, width: int = BAR_WIDTH) -> Text:
    """Green: the share of the all-reduce hidden behind backward; red: exposed."""
    hidden = round(share * width)
    return Text.assemble(("█" * hidden, "green"), ("█" * (width - hidden), "red"), f" {label}")


def cell_text(cell: sec.Cell, *, stacked: bool = False, bar_width: int = BAR_WIDTH) -> Text:
    if cell.bar is not None:
        return bar_text(cell.bar, cell.text, bar_width)
    text = spans_text(cell.spans) if cell.spans else Text("")
    if cell.interval:
        text.append("\n" if stacked else " ")
        text.append(cell.interval, style="dim")
    return text


def _title(data: sec.TableData) -> Text:
    title = Text(data.title, style="bold " + TONE_STYLE.get(data.tone, ""))
    if data.note:
        title.append(f"  {data.note}")
    return title


def table(data: sec.TableData, *, short: bool = False, drop_optional: bool = False,
          stacked: bool = False, first_min: int = 40) -> Table:
    """A section table; long free-text columns are left to :func:`long_lines`."""
    keep = sec.visible(data.columns, lambda c: not c.long and not (drop_optional and c.optional))
    t = Table(title=_title(data), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
              caption=Text(data.caption, style="dim") if data.caption else None,
              caption_justify="left")
    for n, i in enumerate(keep):
        c = data.columns[i]
        longest = max((len(row[i].text) for row in data.rows), default=4)
        t.add_column(c.short_header if short else c.header,
                     justify="right" if c.numeric else "left",
                     style="dim" if c.dim else None, overflow="fold",
                     no_wrap=n > 0 and c.numeric,
                     min_width=min(longest, first_min) if n == 0 or c.key else None)
    for row in data.rows:
        t.add_row(*(cell_text(row[i], stacked=stacked) for i in keep))
    return t


def long_lines(data: sec.TableData) -> list[Text]:
    """"name: text" for every long free-text cell (a check's detail)."""
    out = []
    for row in data.rows:
        for i, c in enumerate(data.columns):
            if c.long and row[i].text:
                out.append(Text.assemble((f"{row[0].text}: ", "bold"), row[i].text))
    return out


def records(data: sec.TableData, width: int, *, title: bool = True) -> Group:
    """Each row as its first cell, then ``label value`` pairs packed into lines that fit."""
    parts: list[RenderableType] = [_title(data)] if title else []
    room = max(width - 2, 20)
    for row in data.rows:
        head = cell_text(row[0])
        head.stylize("bold")
        parts.append(head)
        pairs: list[Text] = []
        for c, value in zip(data.columns[1:], row[1:], strict=True):
            if c.long or not (value.text or value.bar is not None):
                continue
            pair = Text(c.label + " ", style="dim")
            pair.append_text(cell_text(value, bar_width=12))
            if c.unit:
                pair.append(f" {c.unit}", style="dim")
            pairs.append(pair)
        line = Text("")
        for pair in pairs:
            if line.cell_len and line.cell_len + 2 + pair.cell_len > room:
                parts.append(Padding(line, (0, 0, 0, 2)))
                line = Text("")
            if line.cell_len:
                line.append("  ")
            line.append_text(pair)
        if line.cell_len:
            parts.append(Padding(line, (0, 0, 0, 2)))
    if title and data.caption:
        parts.append(Text(data.caption, style="dim"))
    return Group(*parts)


def adaptive(data: sec.TableData, wide: int, **table_kw: Any) -> ByWidth:
    """A table from ``wide`` columns on, records below."""
    return ByWidth(lambda width: table(data, **table_kw) if width >= wide else records(data, width))


# ------------------------------------------------------------------------------ header

def _facts_grid(facts: Sequence[tuple[str, str | None]], width: int) -> Table:
    """Label/value pairs, two pairs a line when there is room."""
    per_line = 2 if width >= 110 else 1
    grid = Table.grid(padding=(0, 2))
    for _ in range(per_line):
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column(overflow="fold")
    for i in range(0, len(facts), per_line):
        cells: list[RenderableType] = []
        for label, value in facts[i:i + per_line]:
            cells += [label, T(value)]
        grid.add_row(*cells)
    return grid


def header_panel(h: sec.Header) -> Panel:
    parts: list[RenderableType] = [ByWidth(lambda width: _facts_grid(h.facts, width))]
    parts += [Text(f"⚠ {w}", style="yellow") for w in h.warnings]
    return Panel(Group(*parts), title=f"[bold]{h.title}[/]", title_align="left",
                 border_style="cyan")


def kind_table(data: sec.TableData) -> ByWidth:
    """Short headers and no time column on narrow consoles."""
    return ByWidth(lambda width: table(data, short=width < WIDE_KINDS,
                                       drop_optional=width < WIDE_KINDS,
                                       first_min=30 if width < WIDE_KINDS else 40))


# ---------------------------------------------------------------------------- failures

def errors_group(items: Sequence[sec.ErrorItem]) -> Group:
    """Each rank's error: rank, type, signal/exit code, message, and its trimmed stack."""
    parts: list[RenderableType] = []
    for e in items:
        head = Text.assemble(("rank ", "bold"), (e.rank, "bold"), "  ", (e.type, "bold magenta"))
        if e.exit:
            head.append(f"  ({e.exit})", style="magenta")
        if e.message:
            head.append(": ")
            head.append(e.message)
        parts.append(head)
        if e.traceback:
            parts.append(Padding(Text(e.traceback, style="dim"), (0, 0, 0, 4)))
    return Group(*parts)


def failure_panel(item: sec.FailureItem) -> Panel:
    label, style = ("FAIL", "red") if item.status == "fail" else ("ERROR", "magenta")
    parts: list[RenderableType] = []
    if item.reason:
        parts.append(Text(item.reason, style=TONE_STYLE[item.reason_tone]))
    if item.checks is not None:
        checks = item.checks
        parts.append(ByWidth(lambda width: table(checks, first_min=12) if width >= WIDE_CHECKS
                             else records(checks, width, title=False)))
        parts += long_lines(checks)
    if item.diagnosis:
        parts.append(Text.assemble(("likely cause: ", "bold"), item.diagnosis))
    if item.passed_note:
        parts.append(Text(item.passed_note, style="dim"))
    if item.errors:
        parts.append(errors_group(item.errors))
    if item.repro:
        parts.append(Text.assemble(("rerun: ", "bold"), item.repro))
    title = Text.assemble((label + " ", f"bold {style}"), item.id,
                          (f"  {item.kind} · {item.duration}", "dim"))
    return Panel(Group(*parts), title=title, title_align="left", border_style=style)


# ------------------------------------------------------------------------------- notes

def note_lines(notes: Sequence[sec.Note]) -> Group:
    return Group(*(Text("  " * (n.indent + 1) + n.text, style=TONE_STYLE.get(n.tone, ""))
                   for n in notes))


def verdict_line(v: sec.Verdict) -> Text:
    mark = {"pass": "✔", "fail": "✘", "error": "✘", "skip": "○"}[v.status]
    return Text(f"{mark} {v.text}", style=STATUS_STYLE[v.status])


def document_renderable(doc: sec.Document) -> Group:
    parts: list[RenderableType] = [header_panel(doc.header)]
    for data in (doc.selfcheck, doc.pool, *doc.explore):
        if data is not None:
            parts.append(adaptive(data, WIDE_TABLE))
            parts += long_lines(data)  # free text (a fault's diagnosis) under its table
    parts += [kind_table(t) for t in doc.kind_tables]
    if doc.failures:
        n_fail = sum(f.status == "fail" for f in doc.failures)
        n_err = len(doc.failures) - n_fail
        parts.append(Rule(Text(f"{n_fail} failed, {n_err} error{'' if n_err == 1 else 's'}",
                               style="bold red"), style="red"))
        parts += [failure_panel(f) for f in doc.failures]
    if doc.skips is not None:
        parts.append(adaptive(doc.skips, WIDE_TABLE))
    if doc.overlap is not None:
        overlap = doc.overlap
        parts.append(ByWidth(lambda width: table(
            overlap, short=True, stacked=width < INLINE_INTERVALS, first_min=32)
            if width >= WIDE_OVERLAP else records(overlap, width)))
    if doc.overlap_notes:
        parts.append(note_lines(doc.overlap_notes))
    if doc.ddp is not None:
        parts.append(adaptive(doc.ddp, WIDE_TABLE))
    parts.append(verdict_line(doc.header.verdict))
    return Group(*parts)


def comparison_renderable(section: ComparisonSection) -> Group:
    """``compare``: what changed (a table, left out when nothing did), then the verdict."""
    parts: list[RenderableType] = []
    if section.table is not None:
        parts.append(table(section.table, first_min=48))
    return Group(*parts, verdict_line(section.verdict))


def render_comparison(cmp: Comparison, console: Console) -> None:
    console.print(comparison_renderable(comparison_section(cmp)))


def report_renderable(report: Report | Mapping[str, Any]) -> Group:
    return document_renderable(sec.document(as_report(report)))


def render_report(report: Report | Mapping[str, Any], console: Console) -> None:
    """Print the whole report (a typed one, or its JSON object) on ``console``."""
    console.print(report_renderable(report))


__all__ = ["render_report", "report_renderable", "document_renderable", "header_panel",
           "kind_table", "failure_panel", "errors_group", "table", "records", "adaptive",
           "verdict_line", "ByWidth", "cell_text", "bar_text", "comparison_renderable",
           "render_comparison"]
