"""A report as ONE self-contained HTML page: inline CSS, inline SVG pictures (matplotlib),
no script, no external reference. A Content-Security-Policy forbids loading anything and
running any script, and every string that came from a case, a target or an error goes
through :func:`html.escape` — both, so that a hostile case name cannot do anything.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import charts
from .fmt import (
    OVERLAP_METRICS,
    STATUS_LABEL,
    check_ratio,
    devices_line,
    display_id,
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
.muted { color: var(--muted); }
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


def _status(status: str) -> str:
    cls = status if status in STATUS_LABEL else "error"
    return f'<span class="status {cls}">{esc(STATUS_LABEL.get(status, status.upper()))}</span>'


def _ratio(ratio: float | None) -> str:
    cls = ""
    if ratio is not None:
        cls = "bad" if (math.isnan(ratio) or ratio > 1) else "ok"
    return f'<td class="num {cls}">{esc(format_ratio(ratio))}</td>'


def _table(header: Sequence[tuple[str, bool]], rows: Sequence[str], cls: str) -> str:
    th = "".join(f'<th class="num">{esc(h)}</th>' if num_ else f"<th>{esc(h)}</th>"
                 for h, num_ in header)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _environment(report: Mapping[str, Any]) -> str:
    env: Mapping[str, Any] = report.get("environment") or {}
    target: Mapping[str, Any] = report.get("target") or {}
    cpu = env.get("cpu")
    if env.get("cpu_count"):
        cpu = f"{cpu or '?'} ({env['cpu_count']} cores)"
    facts = [("Target", target_line(target)), ("Backend", env.get("backend")),
             ("Torch", env.get("torch")), ("NCCL", env.get("nccl")),
             ("Python", env.get("python")), ("GPUs" if env.get("backend") == "nccl" else "Devices",
                                             devices_line(env)),
             ("Host", env.get("hostname")), ("CPU", cpu), ("Platform", env.get("platform")),
             ("Created", report.get("created"))]
    if target.get("path"):
        facts.append(("Target file", target.get("path")))
    if report.get("run_id"):
        facts.append(("Run", report.get("run_id")))
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    return f'<section id="environment"><dl class="env">{items}</dl></section>'


def _chips(report: Mapping[str, Any]) -> str:
    s = report.get("summary") or {}
    chips = [("passed", "pass", "passed"), ("failed", "fail", "failed"),
             ("errors", "error", "error" if s.get("errors") == 1 else "errors"),
             ("skipped", "skip", "skipped")]
    return '<p class="chips">' + "".join(
        f'<span class="chip-{cls}">{esc(s.get(k, 0))} {label}</span>'
        for k, cls, label in chips) + "</p>"


def _kind_tables(results: Sequence[Mapping[str, Any]]) -> str:
    out = ['<section id="results"><h2>Results</h2>']
    for kind, rs in group_by_kind(results).items():
        rows = []
        for row in group_rows(rs):
            verdict = " · ".join(_status(s) + (f' <span class="muted">ws{esc(sizes)}</span>'
                                               if row["mixed"] else "")
                                 for s, sizes in verdict_parts(row))
            rows.append(f"<tr><td>{esc(row['case'])}</td>"
                        f"<td class=\"num\">{esc(','.join(str(w) for w in row['world_sizes']))}</td>"
                        f"<td>{esc(row['backend'])}</td><td>{verdict}</td>"
                        f"{_ratio(row['worst_ratio'])}"
                        f"<td class=\"num muted\">{esc(format_duration(row['duration_s']))}</td></tr>")
        out.append(f"<h3>{esc(kind)}</h3>")
        out.append(_table([("case", False), ("world sizes", True), ("backend", False),
                           ("verdict", False), ("worst err/tol", True), ("time", True)],
                          rows, "results"))
    out.append("</section>")
    return "".join(out)


def _checks(checks: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for c in checks:
        idx = c.get("index")
        nonfinite = int(num(c.get("nonfinite")) or 0)
        rows.append(
            f"<tr><td>{esc(c.get('name', '?'))}</td><td>{esc(c.get('comparison') or '—')}</td>"
            f"<td class=\"num\">{esc('all' if c.get('rank') is None else c.get('rank'))}</td>"
            f"<td>{esc(list(idx) if isinstance(idx, (list, tuple)) else idx)}</td>"
            f"<td class=\"num\">{esc(format_float(c.get('actual'), 6))}</td>"
            f"<td class=\"num\">{esc(format_float(c.get('expected'), 6))}</td>"
            f"<td class=\"num\">{esc(format_float(c.get('max_abs_err')))}</td>"
            f"<td class=\"num\">{esc(format_float(c.get('max_rel_err')))}</td>"
            f"<td class=\"num\">{esc(format_float(c.get('tolerance')))}</td>"
            f"{_ratio(check_ratio(c))}"
            f"<td class=\"num{' bad' if nonfinite else ''}\">{nonfinite}</td></tr>")
    details = "".join(f'<p class="detail"><b>{esc(c.get("name", "?"))}:</b> {esc(c["detail"])}</p>'
                      for c in checks if c.get("detail"))
    return _table([("check", False), ("comparison", False), ("rank", True), ("index", False),
                   ("actual", True), ("expected", True), ("abs err", True), ("rel err", True),
                   ("tol", True), ("err/tol", True), ("non-finite", True)],
                  rows, "checks") + details


def _errors(result: Mapping[str, Any]) -> str:
    out = []
    for e in rank_errors(result):
        exit_ = error_exit(e)
        head = (f"<p><b>rank {esc(e.get('rank', '?'))}</b> "
                f'<span class="status error">{esc(e.get("type", "?"))}</span>'
                + (f" ({esc(exit_)})" if exit_ else "")
                + (f": {esc(e.get('message'))}" if e.get("message") else "") + "</p>")
        out.append(head)
        if e.get("traceback"):
            out.append(f"<pre>{esc(trim_traceback(str(e['traceback'])))}</pre>")
    return "".join(out)


def _failures(results: Sequence[Mapping[str, Any]]) -> str:
    bad = [r for r in results if r.get("status") in ("fail", "error")]
    if not bad:
        return ""
    out = ['<section id="failures"><h2>Failures and errors</h2>']
    for r in bad:
        status = str(r.get("status"))
        n_checks = len(r.get("checks") or [])
        checks = failing_checks(r)
        out.append(f'<article class="failure {esc(status)}"><h3>{_status(status)} '
                   f"{esc(test_id(r))} <span class=\"muted\">{esc(r.get('kind'))} · "
                   f"{esc(format_duration(r.get('duration_s')))}</span></h3>")
        if checks:
            out.append(_checks(checks))
            if n_checks > len(checks):
                out.append(f'<p class="muted">{n_checks - len(checks)} other checks passed</p>')
        out.append(_errors(r))
        out.append("</article>")
    out.append("</section>")
    return "".join(out)


def _skips(results: Sequence[Mapping[str, Any]]) -> str:
    skips = [r for r in results if r.get("status") == "skip"]
    if not skips:
        return ""
    rows = [f"<tr><td>{esc(test_id(r))}</td><td>{esc(r.get('skip_reason') or '—')}</td></tr>"
            for r in skips]
    return ('<section id="skipped"><h2>Skipped</h2>'
            + _table([("case", False), ("reason", False)], rows, "skipped") + "</section>")


def _bar(metrics: Mapping[str, Any]) -> str:
    frac = num(metrics.get("hidden_fraction"))
    if frac is None or math.isnan(frac):
        return '<span class="muted">—</span>'
    pct = 100 * min(max(frac, 0.0), 1.0)
    return (f'<span class="bar" title="{pct:.0f}% hidden"><span class="hidden" style="width:{pct:.1f}%">'
            f'</span><span class="exposed" style="width:{100 - pct:.1f}%"></span></span>')


def _metric_cell(metrics: Mapping[str, Any], name: str) -> str:
    med, lo, hi = metric_interval(metrics, name)
    f = format_percent if name in ("hidden_fraction", "efficiency") else format_float
    if med is None:
        return '<td class="num muted">—</td>'
    interval = (f'<br><span class="interval">[{esc(f(lo))}–{esc(f(hi))}]</span>'
                if lo is not None and hi is not None else "")
    return f'<td class="num">{esc(f(med))}{interval}</td>'


def _overlap(results: Sequence[Mapping[str, Any]]) -> str:
    ov = overlap_results(results)
    if not ov:
        return ""
    rows = []
    for r in ov:
        m = r.get("metrics") or {}
        cells = "".join(_metric_cell(m, k) for k in OVERLAP_METRICS)
        rows.append(f"<tr><td class=\"nowrap\">{esc(r.get('case'))}</td><td>{esc(r.get('backend'))}</td>"
                    f"<td class=\"num\">{esc(r.get('world_size'))}</td>"
                    f"<td class=\"num\">{esc(format_float(r.get('prototypes')))}</td>"
                    f"{cells}<td>{_bar(m)}</td></tr>")
    header = [("case", False), ("backend", False), ("ws", True), ("K", True), ("comm ms", True),
              ("bwd ms", True), ("exposed ms", True), ("hidden", True), ("interference", True),
              ("efficiency", True), ("hidden/exposed", False)]
    return ('<section id="overlap"><h2>Overlap of the center all-reduce with backward</h2>'
            '<p class="muted">median [95 % CI, else p10–p90] over iterations; green: hidden, red: exposed</p>'
            + _table(header, rows, "overlap") + "</section>")


def _figure(svg: str | None, caption: str, fig_id: str) -> str:
    if not svg:
        return ""
    return f'<figure id="{esc(fig_id)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _charts(results: Sequence[Mapping[str, Any]]) -> str:
    figs = [_figure(charts.ratio_chart(results),
                    "Worst error / tolerance per case (log scale). Right of the dashed line fails.",
                    "fig-ratio"),
            _figure(charts.hidden_fraction_chart(overlap_results(results)),
                    "Share of the center all-reduce hidden behind backward, against K and world "
                    "size (bars: 95 % CI, else p10–p90).", "fig-hidden")]
    for i, r in enumerate(results):
        if isinstance(r.get("timeline"), Mapping):
            figs.append(_figure(charts.timeline_chart(r),
                                f"One iteration of {display_id(r)}: compute vs communication per rank.",
                                f"fig-timeline-{i}"))
    body = "".join(f for f in figs if f)
    return f'<section id="charts"><h2>Pictures</h2>{body}</section>' if body else ""


def to_html(report: Mapping[str, Any]) -> str:
    results: list[Mapping[str, Any]] = list(report.get("results") or [])
    text, status = verdict_text(report)
    warnings = []
    if report.get("complete") is False:
        warnings.append("Incomplete run" + (" — rebuilt from results.jsonl"
                                            if report.get("recovered") else ""))
    warnings += [str(w) for w in report.get("warnings") or []]
    warn_html = "".join(f'<p class="warn">⚠ {esc(w)}</p>' for w in warnings)
    target = target_line(report.get("target") or {})
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dino-harness — {esc(text)}</title><style>{CSS}</style></head><body>"
        f"<h1>dino-harness report <span class=\"muted\">{esc(target)}</span></h1>"
        f'<div class="verdict {esc(status)}">{esc(text)}</div>{warn_html}'
        f"{_environment(report)}{_chips(report)}{_kind_tables(results)}{_failures(results)}"
        f"{_skips(results)}{_overlap(results)}{_charts(results)}"
        f"<footer>schema {esc(report.get('schema'))} · {esc(report.get('tool', 'dino-harness'))}"
        f" · created {esc(report.get('created'))}</footer></body></html>\n"
    )
