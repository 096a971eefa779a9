"""A report as GitHub-flavoured Markdown, for a pull-request comment.

Every string that came from a case, a target or an error is escaped: in table cells
``|``, backticks, ``*_[]<>#`` and friends are backslash-escaped or turned into entities
and newlines become ``<br>``; tracebacks go in a code fence longer than any run of
backticks they contain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .fmt import (
    OVERLAP_METRICS,
    STATUS_LABEL,
    check_ratio,
    devices_line,
    error_exit,
    failing_checks,
    format_duration,
    format_float,
    format_metric,
    format_percent,
    format_ratio,
    group_by_kind,
    group_rows,
    num,
    overlap_results,
    rank_errors,
    target_line,
    test_id,
    trim_traceback,
    verdict_parts,
    verdict_text,
)

STATUS_EMOJI = {"pass": "✅", "fail": "❌", "error": "💥", "skip": "⏭️"}
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


def _table(header: Sequence[str], rows: Sequence[Sequence[str]],
           align: Sequence[str] | None = None) -> str:
    align = align or ["l"] * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _status(status: str) -> str:
    return f"{STATUS_EMOJI.get(status, '')} {STATUS_LABEL.get(status, md_escape(status.upper()))}".strip()


def _summary(report: Mapping[str, Any]) -> list[str]:
    text, status = verdict_text(report)
    env: Mapping[str, Any] = report.get("environment") or {}
    target: Mapping[str, Any] = report.get("target") or {}
    out = [f"## {STATUS_EMOJI.get(status, '')} dino-harness: {md_escape(text)}", ""]
    facts = [("target", target_line(target)), ("torch", env.get("torch")),
             ("python", env.get("python")), ("backend", env.get("backend")),
             ("NCCL", env.get("nccl")), ("devices", devices_line(env)),
             ("host", env.get("hostname")), ("created", report.get("created"))]
    out.append(" · ".join(f"**{k}** {md_escape(v)}" for k, v in facts if v not in (None, "", "—")))
    if report.get("complete") is False:
        out += ["", "> ⚠️ **Incomplete run**" + (" — rebuilt from results.jsonl"
                                                 if report.get("recovered") else "")]
    for w in report.get("warnings") or []:
        out += ["", f"> ⚠️ {md_escape(w)}"]
    return out


def _kind_tables(results: Sequence[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for kind, rs in group_by_kind(results).items():
        rows = []
        for row in group_rows(rs):
            verdict = " · ".join(_status(s) + (f" ws{sizes}" if row["mixed"] else "")
                                 for s, sizes in verdict_parts(row))
            rows.append([md_escape(row["case"]), ",".join(str(w) for w in row["world_sizes"]),
                         md_escape(row["backend"]), verdict, format_ratio(row["worst_ratio"]),
                         format_duration(row["duration_s"])])
        out += ["", f"### {md_escape(kind)}", "",
                _table(["case", "world sizes", "backend", "verdict", "worst err/tol", "time"],
                       rows, ["l", "r", "l", "l", "r", "r"])]
    return out


def _checks_table(checks: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for c in checks:
        idx = c.get("index")
        rows.append([
            md_escape(c.get("name", "?")), md_escape(c.get("comparison") or "—"),
            "all" if c.get("rank") is None else md_escape(c.get("rank")),
            md_escape(list(idx) if isinstance(idx, (list, tuple)) else ("—" if idx is None else idx)),
            format_float(c.get("actual"), 6), format_float(c.get("expected"), 6),
            format_float(c.get("max_abs_err")), format_float(c.get("max_rel_err")),
            format_float(c.get("tolerance")), format_ratio(check_ratio(c)),
            str(int(num(c.get("nonfinite")) or 0)), md_escape(c.get("detail") or ""),
        ])
    return _table(["check", "comparison", "rank", "index", "actual", "expected", "abs err",
                   "rel err", "tol", "err/tol", "non-finite", "detail"], rows,
                  ["l", "l", "r", "l", "r", "r", "r", "r", "r", "r", "r", "l"])


def _errors(result: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for e in rank_errors(result):
        exit_ = error_exit(e)
        line = f"- **rank {md_escape(e.get('rank', '?'))}** {md_escape(e.get('type', '?'))}"
        if exit_:
            line += f" ({md_escape(exit_)})"
        if e.get("message"):
            line += f": {md_escape(e['message'])}"
        out.append(line)
        if e.get("traceback"):
            out += ["", md_code_block(trim_traceback(str(e["traceback"])), "text"), ""]
    return out


def _failures(results: Sequence[Mapping[str, Any]]) -> list[str]:
    bad = [r for r in results if r.get("status") in ("fail", "error")]
    if not bad:
        return []
    out = ["", "### Failures and errors"]
    for r in bad:
        out += ["", f"#### {_status(str(r.get('status')))} {md_escape(test_id(r))}"
                f" ({md_escape(r.get('kind', '?'))}, {format_duration(r.get('duration_s'))})", ""]
        checks = failing_checks(r)
        if checks:
            out += [_checks_table(checks), ""]
        out += _errors(r)
    return out


def _skips(results: Sequence[Mapping[str, Any]]) -> list[str]:
    skips = [r for r in results if r.get("status") == "skip"]
    if not skips:
        return []
    out = ["", "<details><summary>Skipped (" + str(len(skips)) + ")</summary>", ""]
    out += [f"- {md_escape(test_id(r))}: {md_escape(r.get('skip_reason') or '—')}" for r in skips]
    return out + ["", "</details>"]


def _overlap(results: Sequence[Mapping[str, Any]]) -> list[str]:
    ov = overlap_results(results)
    if not ov:
        return []
    rows = []
    for r in ov:
        m = r.get("metrics") or {}
        frac = num(m.get("hidden_fraction"))
        bar = ""
        if frac is not None and frac == frac:
            n = round(min(max(frac, 0.0), 1.0) * 10)
            bar = "🟩" * n + "🟥" * (10 - n)
        rows.append([md_escape(r.get("case")), md_escape(r.get("backend")),
                     md_escape(r.get("world_size")), format_float(r.get("prototypes"))]
                    + [format_metric(m, k) for k in OVERLAP_METRICS]
                    + [f"{bar} {format_percent(frac)}".strip()])
    return ["", "### Overlap (median [95 % CI, else p10–p90])", "",
            _table(["case", "backend", "ws", "K", "comm ms", "bwd ms", "exposed ms", "hidden",
                    "interference", "efficiency", "hidden vs exposed"], rows,
                   ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "l"])]


def to_markdown(report: Mapping[str, Any]) -> str:
    results: list[Mapping[str, Any]] = list(report.get("results") or [])
    parts = _summary(report) + _kind_tables(results) + _failures(results) + _skips(results) \
        + _overlap(results)
    return "\n".join(parts).rstrip() + "\n"
