"""Read a report back: a ``report.json`` (or any ``--json`` output), a run folder, the
``reports/latest`` pointer, or a reports folder (its latest run).

A run folder without ``report.json`` — the run was killed — is rebuilt from
``results.jsonl`` (+ ``run.json`` for environment and target): lines that do not parse
(a truncated last line) are skipped with a :class:`ReportWarning`, the summary is
recomputed, and the report carries ``"complete": false, "recovered": true``.

Either way the answer is a typed :class:`~harness.report.model.Report`, built by
:meth:`Report.from_json <harness.report.model.Report.from_json>`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from harness.results import SCHEMA_VERSION, CaseResult, summarise

from .model import TOOL, Report
from .run_writer import LATEST_FILE, LATEST_LINK, META_FILE, REPORT_FILE, RESULTS_FILE


class ReportError(Exception):
    """A report path that is missing, unreadable, or not a dino-harness report."""


class ReportWarning(UserWarning):
    """Something in a report was skipped or repaired while loading it."""


def _warn(report_warnings: list[str], message: str) -> None:
    report_warnings.append(message)
    warnings.warn(message, ReportWarning, stacklevel=3)


def _read_latest_file(pointer: Path) -> Path:
    try:
        run_id = pointer.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ReportError(f"cannot read {pointer}: {e.strerror or e}") from e
    if not run_id or "/" in run_id or os.sep in run_id or run_id in (".", ".."):
        raise ReportError(f"{pointer} does not name a run folder: {run_id!r}")
    return pointer.parent / run_id


def resolve_report_path(path: str | os.PathLike[str]) -> Path:
    """The report.json, results.jsonl or run folder that PATH designates."""
    p = Path(path).expanduser()
    if p.is_symlink() and not p.exists():
        raise ReportError(f"{p} points at {os.readlink(p)!s}, which does not exist")
    if not p.exists():
        # `reports/latest` on a machine where the writer fell back to `reports/LATEST`.
        if p.name == LATEST_LINK and (p.parent / LATEST_FILE).is_file():
            return resolve_report_path(_read_latest_file(p.parent / LATEST_FILE))
        raise ReportError(f"no such report: {p}")
    if p.is_file():
        if p.name == LATEST_FILE:
            return resolve_report_path(_read_latest_file(p))
        return p
    if p.is_dir():
        if (p / REPORT_FILE).is_file():
            return p / REPORT_FILE
        if (p / RESULTS_FILE).is_file():
            return p
        for name in (LATEST_LINK, LATEST_FILE):  # a reports folder: its latest run
            if (p / name).exists() or (p / name).is_symlink():
                return resolve_report_path(p / name)
        raise ReportError(f"{p} holds no {REPORT_FILE} or {RESULTS_FILE}: not a run folder")
    raise ReportError(f"{p} is neither a file nor a folder")


def load_report(path: str | os.PathLike[str]) -> Report:
    """Load and validate a report; see the module docstring for what PATH may be."""
    p = resolve_report_path(path)
    if p.is_dir():
        return rebuild_from_jsonl(p)
    if p.suffix == ".jsonl":
        return rebuild_from_jsonl(p.parent, p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"cannot read {p}: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    return validate_report(data, source=str(p))


def _result(r: Any) -> CaseResult | None:
    """A result object, or None for what is not one (no case, no status, bad values)."""
    if not isinstance(r, dict) or "case" not in r or "status" not in r:
        return None
    try:
        return CaseResult.from_json(r)
    except (TypeError, ValueError, KeyError):
        return None


def validate_report(data: Any, *, source: str = "report") -> Report:
    """Check the shape of a schema-1 report; what an old/partial one lacks gets its default."""
    if not isinstance(data, dict):
        raise ReportError(f"{source}: a report is a JSON object, got {type(data).__name__}")
    results = data.get("results")
    if not isinstance(results, list):
        raise ReportError(f"{source}: no \"results\" list — not a dino-harness report")
    schema = data.get("schema", SCHEMA_VERSION)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise ReportError(f"{source}: report schema {schema!r} is newer than this tool "
                          f"understands ({SCHEMA_VERSION})")
    report_warnings: list[str] = list(data.get("warnings") or [])
    clean: list[CaseResult] = []
    for i, raw in enumerate(results):
        r = _result(raw)
        if r is None:
            _warn(report_warnings, f"{source}: result {i} is not a case result; skipped")
            continue
        clean.append(r)
    recomputed = summarise(clean)
    summary = data.get("summary")
    if isinstance(summary, dict) and len(clean) == len(results) and \
            any(summary.get(k) != v for k, v in recomputed.items()):
        _warn(report_warnings, f"{source}: summary {summary} does not match the results; "
              f"recomputed {recomputed}")
    report = Report.from_json({**data, "results": clean})
    report.warnings = report_warnings
    return report


def rebuild_from_jsonl(run_dir: Path, jsonl: Path | None = None) -> Report:
    """A report from a run folder's results.jsonl (+ run.json), for a run that died."""
    jsonl = jsonl or run_dir / RESULTS_FILE
    report_warnings: list[str] = []
    meta: dict[str, Any] = {}
    meta_path = run_dir / META_FILE
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
            meta = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError) as e:
            _warn(report_warnings, f"{meta_path}: unreadable ({e}); environment unknown")
    else:
        _warn(report_warnings, f"{meta_path} missing; environment and target unknown")
    try:
        raw = jsonl.read_bytes()
    except OSError as e:
        raise ReportError(f"cannot read {jsonl}: {e.strerror or e}") from e
    lines = raw.decode("utf-8", errors="replace").split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    results: list[CaseResult] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            what = "truncated last line" if i == last else "unparseable line"
            _warn(report_warnings, f"{jsonl}:{i + 1}: {what} ignored ({len(line)} bytes)")
            continue
        result = _result(r)
        if result is None:
            _warn(report_warnings, f"{jsonl}:{i + 1}: not a case result; ignored")
            continue
        results.append(result)
    _warn(report_warnings, f"{run_dir}: no {REPORT_FILE} — the run did not finish; "
          f"rebuilt from {jsonl.name} ({len(results)} results)")
    return Report.from_json({
        **meta, "schema": meta.get("schema", SCHEMA_VERSION), "tool": meta.get("tool", TOOL),
        "results": results, "run_id": meta.get("run_id", run_dir.name), "complete": False,
        "recovered": True, "warnings": report_warnings})
