"""A report as GitHub-flavoured Markdown, for a pull-request comment: it formats
:mod:`harness.report.sections`, nothing more.

Every string that came from a case, a target or an error is escaped: in table cells
``|``, backticks, ``*_[]<>#`` and friends are backslash-escaped or turned into entities
and newlines become ``<br>``; tracebacks go in a code fence longer than any run of
backticks they contain. Numbers the report formatted itself (intervals) are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import sections as sec
from .baseline import ComparisonSection
from .fmt import STATUS_LABEL
from .model import Report, as_report

STATUS_EMOJI = {"pass": "✅", "fail": "❌", "error": "💥", "skip": "⏭️"}
BAR_CELLS = 10
# Inline Markdown syntax; `$` is GitHub math. Line-start syntax (#, -, 1.) never occurs:
# escaped strings are only placed after other text.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def md_escape(value: Any) -> str:
    """Text safe inside a Markdown paragraph or table cell."""
    s = str(value)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("@", "&#64;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def md_code_block(text: str, lang: str = "") -> str:
    """A fenced block that no backtick run inside ``text`` can close early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def status(s: str) -> str:
    return f"{STATUS_EMOJI.get(s, '')} {STATUS_LABEL.get(s, md_escape(s.upper()))}".strip()


def span(s: sec.Span) -> str:
    """A status span gets its emoji: "❌ FAIL"."""
    emoji = STATUS_EMOJI.get(s.tone)
    return f"{emoji} {md_escape(s.text)}" if emoji else md_escape(s.text)


def cell(c: sec.Cell) -> str:
    if c.bar is not None:
        n = round(c.bar * BAR_CELLS)
        return f"{'🟩' * n}{'🟥' * (BAR_CELLS - n)} {md_escape(c.text)}".strip()
    text = "".join(span(s) for s in c.spans)
    return f"{text} {c.interval}" if c.interval else text


def table(data: sec.TableData) -> str:
    """A section table, long free-text columns included (a table cell takes them)."""
    sep = ["---:" if c.numeric else "---" for c in data.columns]
    lines = ["| " + " | ".join(md_escape(c.header) for c in data.columns) + " |",
             "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in data.rows]
    return "\n".join(lines)


def titled(data: sec.TableData, level: str = "###") -> list[str]:
    title = md_escape(data.title) + (f" ({data.note})" if data.note else "")
    out = ["", f"{level} {title}", "", table(data)]
    return out + (["", f"_{md_escape(data.caption)}_"] if data.caption else [])


def _header(h: sec.Header) -> list[str]:
    out = [f"## {STATUS_EMOJI.get(h.verdict.status, '')} dino-harness: {md_escape(h.verdict.text)}", ""]
    out.append(" · ".join(f"**{k}** {md_escape(v)}" for k, v in h.facts if v not in (None, "", "—")))
    return out + [x for w in h.warnings for x in ("", f"> ⚠️ {md_escape(w)}")]


def _errors(items: Sequence[sec.ErrorItem]) -> list[str]:
    out: list[str] = []
    for e in items:
        line = f"- **rank {md_escape(e.rank)}** {md_escape(e.type)}"
        if e.exit:
            line += f" ({md_escape(e.exit)})"
        if e.message:
            line += f": {md_escape(e.message)}"
        out.append(line)
        if e.traceback:
            out += ["", md_code_block(e.traceback, "text"), ""]
    return out


def _failure(f: sec.FailureItem) -> list[str]:
    out = ["", f"#### {status(f.status)} {md_escape(f.id)} ({md_escape(f.kind)}, {f.duration})", ""]
    if f.reason:
        out += [f"**{md_escape(f.reason)}**", ""]
    if f.checks is not None:
        out += [table(f.checks), ""]
    if f.diagnosis:
        out += [f"**likely cause:** {md_escape(f.diagnosis)}", ""]
    if f.passed_note:
        out += [f"_{md_escape(f.passed_note)}_", ""]
    out += _errors(f.errors)
    if f.repro:
        out += ["", "rerun:", "", md_code_block(f.repro, "sh")]
    return out


def _notes(notes: Sequence[sec.Note]) -> list[str]:
    return [""] + [f"{'  ' * n.indent}- {md_escape(n.text)}" for n in notes]


def document_markdown(doc: sec.Document) -> str:
    parts = _header(doc.header)
    for data in (doc.selfcheck, doc.pool, *doc.explore):
        if data is not None:
            parts += titled(data)
    for t in doc.kind_tables:
        parts += titled(t)
    if doc.failures:
        parts += ["", "### Failures and errors"]
        for f in doc.failures:
            parts += _failure(f)
    if doc.skips is not None:
        parts += ["", f"<details><summary>Skipped ({md_escape(doc.skips.note)})</summary>", "",
                  table(doc.skips), "", "</details>"]
    if doc.overlap is not None:
        parts += titled(doc.overlap)
    if doc.overlap_notes:
        parts += _notes(doc.overlap_notes)
    if doc.ddp is not None:
        parts += titled(doc.ddp)
    return "\n".join(parts).rstrip() + "\n"


def comparison_markdown(section: ComparisonSection) -> str:
    """``compare --format md``: the verdict as the heading, then what changed."""
    v = section.verdict
    parts = [f"## {STATUS_EMOJI.get(v.status, '')} dino-harness compare: {md_escape(v.text)}"]
    if section.table is not None:
        parts += titled(section.table)
    return "\n".join(parts) + "\n"


def to_markdown(report: Report | Mapping[str, Any]) -> str:
    """The report (a typed one, or its JSON object) as Markdown."""
    return document_markdown(sec.document(as_report(report)))
