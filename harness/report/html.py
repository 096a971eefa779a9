"""A report as ONE self-contained HTML page: inline CSS, inline SVG pictures (matplotlib),
no script, no external reference. It formats :mod:`harness.report.sections`, nothing more.

A Content-Security-Policy forbids loading anything and running any script, and every
string that came from a case, a target or an error goes through :func:`html.escape` —
both, so that a hostile case name cannot do anything.
"""

from __future__ import annotations

import html as _html
from collections.abc import Mapping, Sequence
from typing import Any

from . import charts
from . import sections as sec
from .baseline import ComparisonSection
from .fmt import STATUS_LABEL, display_id, overlap_results
from .model import Report, as_report

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
:root { --pass:#2e9d4e; --fail:#d1343a; --error:#9c3fbf; --skip:#c9a227; --fg:#1d232a;
        --muted:#66707a; --line:#dde2e7; --bg:#fff; --head:#f5f7f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; max-width: 1280px; padding: 0 24px 48px; }
h1 { font-size: 20px; margin: 24px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px;
     border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.verdict { margin: 16px 0; padding: 12px 16px; border-radius: 6px; color: #fff; font-weight: 600;
           font-size: 16px; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.verdict.error { background: var(--error); } .verdict.skip { background: var(--skip); }
.warn { background: #fff7e0; border-left: 4px solid var(--skip); padding: 6px 10px; margin: 6px 0; }
dl.env { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 2px 16px;
         margin: 8px 0; }
dl.env dt { font-weight: 600; color: var(--muted); } dl.env dd { margin: 0; word-break: break-all; }
.chips span { display: inline-block; padding: 2px 10px; margin-right: 6px; border-radius: 12px;
              color: #fff; font-weight: 600; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
.status { font-weight: 700; white-space: nowrap; }
.status.pass { color: var(--pass); } .status.fail { color: var(--fail); }
.status.error { color: var(--error); } .status.skip { color: var(--skip); }
.chip-pass { background: var(--pass); } .chip-fail { background: var(--fail); }
.chip-error { background: var(--error); } .chip-skip { background: var(--skip); }
div.scroll { overflow-x: auto; } td.nowrap { white-space: nowrap; }
.interval { color: var(--muted); font-size: 12px; } p.detail { margin: 2px 0 8px; }
.bad { color: var(--fail); font-weight: 600; } .ok { color: var(--pass); }
.muted, .dim { color: var(--muted); } .warn-text { color: #a07800; }
article.failure { border: 1px solid var(--line); border-left: 5px solid var(--fail);
                  border-radius: 4px; padding: 4px 14px 8px; margin: 12px 0; }
article.failure.error { border-left-color: var(--error); }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px;
      overflow-x: auto; font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, monospace;
      white-space: pre; }
.bar { display: inline-flex; width: 120px; height: 12px; border-radius: 3px; overflow: hidden;
       vertical-align: middle; background: var(--line); }
.bar .hidden { background: var(--pass); } .bar .exposed { background: var(--fail); }
figure { margin: 12px 0 20px; } figcaption { color: var(--muted); font-size: 13px; }
figure svg { max-width: 100%; height: auto; }
code { font: 12px ui-monospace, Menlo, monospace; background: #f1f3f5; padding: 1px 4px;
       border-radius: 3px; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe inside attributes)."""
    return _html.escape("—" if value is None else str(value), quote=True)


TONE_CLASS = {"bad": "bad", "ok": "ok", "warn": "warn-text", "dim": "muted"}


def span(s: sec.Span) -> str:
    if s.tone in STATUS_LABEL:
        return f'<span class="status {s.tone}">{esc(s.text)}</span>'
    if s.tone == "strong":
        return f"<b>{esc(s.text)}</b>"
    if s.tone in TONE_CLASS:
        return f'<span class="{TONE_CLASS[s.tone]}">{esc(s.text)}</span>'
    return esc(s.text)


def bar(share: float) -> str:
    pct = 100 * share
    return (f'<span class="bar" title="{pct:.0f}% hidden"><span class="hidden" style="width:{pct:.1f}%">'
            f'</span><span class="exposed" style="width:{100 - pct:.1f}%"></span></span>')


def cell(c: sec.Cell, column: sec.Column) -> str:
    classes = " ".join(x for x in ("num" if column.numeric else "", "muted" if column.dim else "") if x)
    attr = f' class="{classes}"' if classes else ""
    if c.bar is not None:
        return f"<td{attr}>{bar(c.bar)} {esc(c.text)}</td>"
    inner = "".join(span(s) for s in c.spans)
    if c.interval:
        inner += f'<br><span class="interval">{esc(c.interval)}</span>'
    return f"<td{attr}>{inner}</td>"


def table(data: sec.TableData) -> str:
    """A section table; long free-text columns become a paragraph per row under it."""
    keep = sec.visible(data.columns, lambda c: not c.long)
    th = "".join(f'<th class="num">{esc(data.columns[i].header)}</th>' if data.columns[i].numeric
                 else f"<th>{esc(data.columns[i].header)}</th>" for i in keep)
    rows = "".join("<tr>" + "".join(cell(row[i], data.columns[i]) for i in keep) + "</tr>"
                   for row in data.rows)
    details = "".join(f'<p class="detail"><b>{esc(row[0].text)}:</b> {esc(row[i].text)}</p>'
                      for row in data.rows for i, c in enumerate(data.columns)
                      if c.long and row[i].text)
    caption = f'<p class="muted">{esc(data.caption)}</p>' if data.caption else ""
    return (f'<div class="scroll"><table class="{esc(data.key)}"><thead><tr>{th}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>{details}{caption}")


def titled(data: sec.TableData, tag: str = "h2") -> str:
    note = f'<p class="muted">{esc(data.note)}</p>' if data.note else ""
    return f"<{tag}>{esc(data.title)}</{tag}>{note}{table(data)}"


def _environment(h: sec.Header) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in h.facts)
    return f'<section id="environment"><dl class="env">{items}</dl></section>'


def _chips(summary: Mapping[str, int]) -> str:
    chips = [("passed", "pass", "passed"), ("failed", "fail", "failed"),
             ("errors", "error", "error" if summary.get("errors") == 1 else "errors"),
             ("skipped", "skip", "skipped")]
    return '<p class="chips">' + "".join(
        f'<span class="chip-{cls}">{esc(summary.get(k, 0))} {label}</span>'
        for k, cls, label in chips) + "</p>"


def _errors(items: Sequence[sec.ErrorItem]) -> str:
    out = []
    for e in items:
        out.append(f"<p><b>rank {esc(e.rank)}</b> "
                   f'<span class="status error">{esc(e.type)}</span>'
                   + (f" ({esc(e.exit)})" if e.exit else "")
                   + (f": {esc(e.message)}" if e.message else "") + "</p>")
        if e.traceback:
            out.append(f"<pre>{esc(e.traceback)}</pre>")
    return "".join(out)


def _failure(f: sec.FailureItem) -> str:
    out = [f'<article class="failure {esc(f.status)}"><h3>'
           f'<span class="status {esc(f.status)}">{esc(STATUS_LABEL.get(f.status, f.status))}</span> '
           f'{esc(f.id)} <span class="muted">{esc(f.kind)} · {esc(f.duration)}</span></h3>']
    if f.reason:
        out.append(f'<p class="{"bad" if f.reason_tone == "bad" else "warn-text"}">{esc(f.reason)}</p>')
    if f.checks is not None:
        out.append(table(f.checks))
    if f.diagnosis:
        out.append(f"<p><b>likely cause:</b> {esc(f.diagnosis)}</p>")
    if f.passed_note:
        out.append(f'<p class="muted">{esc(f.passed_note)}</p>')
    out.append(_errors(f.errors))
    if f.repro:
        out.append(f"<p><b>rerun:</b> <code>{esc(f.repro)}</code></p>")
    return "".join(out) + "</article>"


def _notes(notes: Sequence[sec.Note]) -> str:
    items = "".join(f'<li class="{TONE_CLASS.get(n.tone, "")}" style="margin-left:{n.indent * 16}px">'
                    f"{esc(n.text)}</li>" for n in notes)
    return f"<ul>{items}</ul>" if items else ""


def _figure(svg: str | None, caption: str, fig_id: str) -> str:
    if not svg:
        return ""
    return f'<figure id="{esc(fig_id)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _charts(results: Sequence[Any]) -> str:
    figs = [_figure(charts.ratio_chart(results),
                    "Worst error / tolerance per case (log scale). Right of the dashed line fails.",
                    "fig-ratio"),
            _figure(charts.hidden_fraction_chart(overlap_results(results)),
                    "Share of the center all-reduce hidden behind backward, against K and world "
                    "size (bars: 95 % CI, else p10–p90).", "fig-hidden")]
    for i, r in enumerate(results):
        if isinstance(r.extra.get("timeline"), Mapping):
            figs.append(_figure(charts.timeline_chart(r),
                                f"One iteration of {display_id(r)}: compute vs communication per rank.",
                                f"fig-timeline-{i}"))
    body = "".join(f for f in figs if f)
    return f'<section id="charts"><h2>Pictures</h2>{body}</section>' if body else ""


def document_html(doc: sec.Document) -> str:
    h = doc.header
    parts = [_environment(h), _chips(h.summary)]
    for data in (doc.selfcheck, doc.pool, *doc.explore):
        if data is not None:
            parts.append(f'<section id="{esc(data.key)}">{titled(data)}</section>')
    if doc.kind_tables:
        parts.append('<section id="results"><h2>Results</h2>'
                     + "".join(titled(t, "h3") for t in doc.kind_tables) + "</section>")
    if doc.failures:
        parts.append('<section id="failures"><h2>Failures and errors</h2>'
                     + "".join(_failure(f) for f in doc.failures) + "</section>")
    if doc.skips is not None:
        parts.append(f'<section id="skipped">{titled(doc.skips)}</section>')
    if doc.overlap is not None:
        parts.append(f'<section id="overlap">{titled(doc.overlap)}{_notes(doc.overlap_notes)}</section>')
    if doc.ddp is not None:
        parts.append(f'<section id="ddp">{titled(doc.ddp)}</section>')
    parts.append(_charts(doc.results))
    warn_html = "".join(f'<p class="warn">⚠ {esc(w)}</p>' for w in h.warnings)
    return _page(h.verdict, f"{esc(h.title)} <span class=\"muted\">{esc(h.target)}</span>",
                 warn_html + "".join(parts) + f"<footer>{esc(h.footer)}</footer>")


def _page(verdict: sec.Verdict, heading: str, body: str) -> str:
    """One self-contained page: the heading (HTML), the verdict bar, then ``body``."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dino-harness — {esc(verdict.text)}</title><style>{CSS}</style></head><body>"
        f"<h1>{heading}</h1>"
        f'<div class="verdict {esc(verdict.status)}">{esc(verdict.text)}</div>'
        f"{body}</body></html>\n"
    )


def comparison_html(section: ComparisonSection) -> str:
    """``compare --format html``: one page, the verdict, then what changed."""
    body = f'<section id="comparison">{titled(section.table)}</section>' \
        if section.table is not None else ""
    return _page(section.verdict, "dino-harness compare", body)


def to_html(report: Report | Mapping[str, Any]) -> str:
    """The report (a typed one, or its JSON object) as one HTML page."""
    return document_html(sec.document(as_report(report)))
