"""Small, dependency-free helpers shared by every report renderer.

Reports are handled as plain dicts (DESIGN.md §4, schema 1) because they are read back
from JSON: numbers that were not finite are stored as the strings "nan"/"inf"/"-inf"
(see ``harness.results._finite_json``), and any field may be missing in an old report.
Everything here tolerates that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

STATUS_ORDER = ("fail", "error", "pass", "skip")
STATUS_LABEL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}
STATUS_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold magenta",
                "skip": "yellow"}
SUMMARY_KEY = {"pass": "passed", "fail": "failed", "error": "errors", "skip": "skipped"}

# Overlap metrics as the console/markdown/html tables show them, in this order.
OVERLAP_METRICS = ("comm_ms", "bwd_ms", "exposed_ms", "hidden_fraction", "interference",
                   "efficiency")
# Suffix pairs that give an interval around a metric's median, in order of preference.
INTERVAL_SUFFIXES = (("_ci_low", "_ci_high"), ("_p10", "_p90"))


def num(value: Any) -> float | None:
    """A float from a report value: numbers, "nan"/"inf"/"-inf" strings; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def format_float(value: Any, digits: int = 3) -> str:
    """Compact number: 0.0123 → "0.0123", 1.2e-7 → "1.20e-07", None → "—"."""
    v = num(value)
    if v is None:
        return "—" if value is None else str(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 1)}e}"


def format_ratio(ratio: float | None) -> str:
    """Worst error as a multiple of the tolerance: "0.02×tol", "3.1e+02×tol", "—"."""
    if ratio is None:
        return "—"
    if math.isnan(ratio):
        return "nan×tol"
    if math.isinf(ratio):
        return "inf×tol"
    if ratio == 0:
        return "0×tol"
    if ratio < 0.01 or ratio >= 1000:
        return f"{ratio:.1e}×tol"
    return f"{ratio:.2g}×tol" if ratio < 10 else f"{ratio:.0f}×tol"


def format_duration(seconds: Any) -> str:
    s = num(seconds)
    if s is None or math.isnan(s):
        return "—"
    if s < 1:
        return f"{s:.2f}s"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(s, 60)
    return f"{int(m)}m{sec:04.1f}s"


def format_percent(value: Any) -> str:
    v = num(value)
    if v is None or math.isnan(v):
        return "—"
    return f"{100 * v:.0f}%"


def test_id(result: Mapping[str, Any]) -> str:
    """``case[backend-wsN]``, the same id as ``CaseResult.test_id``."""
    return f"{result.get('case', '?')}[{result.get('backend', '?')}-ws{result.get('world_size', '?')}]"


def display_id(result: Mapping[str, Any]) -> str:
    """``test_id`` plus K for an overlap result (one case may sweep several K)."""
    k = result.get("prototypes")
    return test_id(result) + (f" K={k}" if k is not None else "")


def check_ratio(check: Mapping[str, Any]) -> float | None:
    """Worst error / tolerance of one check.

    The check's own ``ratio`` wins (``harness.compare`` always sets it: worst
    ``|actual - expected| / max(1, |expected|)`` over the tolerance). Without it (an older
    report) ``min(max_abs_err, max_rel_err) / tolerance``, an upper bound of that same
    scaled error; a zero tolerance with a non-zero error is inf.
    """
    r = num(check.get("ratio"))
    if r is not None:
        return r
    errs = [e for e in (num(check.get("max_abs_err")), num(check.get("max_rel_err")))
            if e is not None]
    tol = num(check.get("tolerance"))
    if not errs or tol is None:
        return None
    err = math.nan if any(math.isnan(e) for e in errs) else min(errs)
    if tol <= 0:
        return 0.0 if err == 0 else math.inf
    return err / tol


def _ratio_key(r: float) -> float:
    return math.inf if math.isnan(r) else r


def worst_check(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The check with the largest error/tolerance ratio (NaN counts as worst)."""
    best: tuple[float, Mapping[str, Any]] | None = None
    for c in result.get("checks") or []:
        r = check_ratio(c)
        if r is None:
            continue
        if best is None or _ratio_key(r) > _ratio_key(best[0]) or math.isnan(r):
            best = (r, c)
    return best[1] if best else None


def worst_ratio(result: Mapping[str, Any]) -> float | None:
    c = worst_check(result)
    return check_ratio(c) if c is not None else None


def max_ratio(ratios: Iterable[float | None]) -> float | None:
    vals = [r for r in ratios if r is not None]
    if not vals:
        return None
    if any(math.isnan(r) for r in vals):
        return math.nan
    return max(vals)


def failing_checks(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in result.get("checks") or [] if not c.get("passed", False)]


def rank_errors(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``error`` plus ``rank_errors``, without duplicates, ordered by rank."""
    out: list[Mapping[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for e in ([result["error"]] if result.get("error") else []) + list(result.get("rank_errors") or []):
        if not isinstance(e, Mapping):
            continue
        key = (e.get("rank"), e.get("type"), e.get("message"))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return sorted(out, key=lambda e: (e.get("rank") is None, e.get("rank") or 0))


def error_exit(e: Mapping[str, Any]) -> str:
    """"signal SIGKILL", "exit code 1" or "" for a rank error."""
    parts = []
    if e.get("signal"):
        parts.append(f"signal {e['signal']}")
    if e.get("exit_code") is not None:
        parts.append(f"exit code {e['exit_code']}")
    return ", ".join(parts)


def trim_traceback(tb: str, max_lines: int = 30) -> str:
    """The last ``max_lines`` lines of a stack (the innermost frames and the exception)."""
    lines = (tb or "").rstrip().splitlines()
    if len(lines) <= max_lines:
        return "\n".join(lines)
    return "\n".join([f"… {len(lines) - max_lines} earlier lines trimmed …"] + lines[-max_lines:])


def metric_interval(metrics: Mapping[str, Any] | None, name: str
                    ) -> tuple[float | None, float | None, float | None]:
    """(median, low, high) of an overlap metric; low/high from ``_ci_low``/``_ci_high``,
    else ``_p10``/``_p90``, else None."""
    if not metrics:
        return None, None, None
    med = num(metrics.get(name))
    for lo_s, hi_s in INTERVAL_SUFFIXES:
        lo, hi = num(metrics.get(name + lo_s)), num(metrics.get(name + hi_s))
        if lo is not None and hi is not None:
            return med, lo, hi
    return med, None, None


def format_metric(metrics: Mapping[str, Any] | None, name: str) -> str:
    """"12.3 [11.9–13.0]" (median [95 % CI, else p10–p90]); fractions as percentages."""
    med, lo, hi = metric_interval(metrics, name)
    f = format_percent if name in ("hidden_fraction", "efficiency") else format_float
    if med is None:
        return "—"
    if lo is None or hi is None:
        return f(med)
    return f"{f(med)} [{f(lo)}–{f(hi)}]"


def summary_of(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Counts by status, as ``harness.results.summarise`` makes them (unknown → errors)."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for r in results:
        counts[SUMMARY_KEY.get(str(r.get("status")), "errors")] += 1
    return counts


def verdict_text(report: Mapping[str, Any]) -> tuple[str, str]:
    """(one-line verdict, status key for colouring) for a whole report."""
    s = report.get("summary") or summary_of(report.get("results") or [])
    total_s = sum(num(r.get("duration_s")) or 0.0 for r in report.get("results") or [])
    n_err = s.get("errors", 0)
    counts = (f"{s.get('passed', 0)} passed, {s.get('failed', 0)} failed, "
              f"{n_err} error{'' if n_err == 1 else 's'}, {s.get('skipped', 0)} skipped "
              f"in {format_duration(total_s)}")
    if s.get("errors"):
        return f"ERROR — a rank hung or crashed: {counts}", "error"
    if s.get("failed"):
        return f"FAILED — {counts}", "fail"
    if not s.get("passed"):
        return f"NOTHING RAN — {counts}", "skip"
    return f"PASSED — {counts}", "pass"


def group_by_kind(results: Iterable[Mapping[str, Any]]
                  ) -> dict[str, list[Mapping[str, Any]]]:
    """Results per kind, kinds in order of first appearance."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        out.setdefault(str(r.get("kind", "?")), []).append(r)
    return out


def group_rows(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (case, backend): the world sizes it ran on, a verdict per world size,
    the worst ratio over them and their total duration."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        key = (str(r.get("case", "?")), str(r.get("backend", "?")))
        row = rows.setdefault(key, {"case": key[0], "backend": key[1], "runs": [],
                                    "duration_s": 0.0})
        row["runs"].append(r)
        row["duration_s"] += num(r.get("duration_s")) or 0.0
    for row in rows.values():
        row["runs"].sort(key=lambda r: num(r.get("world_size")) or 0)
        row["world_sizes"] = list(dict.fromkeys(r.get("world_size") for r in row["runs"]))
        row["worst_ratio"] = max_ratio(worst_ratio(r) for r in row["runs"])
        statuses = {str(r.get("status")) for r in row["runs"]}
        row["status"] = next((s for s in STATUS_ORDER if s in statuses), "skip")
        row["mixed"] = len(statuses) > 1
    return list(rows.values())


def verdict_parts(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """[(status, "1,2"), (fail, "4")]: the world sizes per status of a grouped row."""
    by: dict[str, list[str]] = {}
    for r in row["runs"]:
        sizes = by.setdefault(str(r.get("status")), [])
        if str(r.get("world_size")) not in sizes:
            sizes.append(str(r.get("world_size")))
    return [(s, ",".join(by[s])) for s in STATUS_ORDER if s in by] + \
        [(s, ",".join(v)) for s, v in by.items() if s not in STATUS_ORDER]


def overlap_results(results: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in results if isinstance(r.get("metrics"), Mapping) and r["metrics"]]


def target_line(target: Mapping[str, Any]) -> str:
    """"harness.losses (api seed) v0.1.0 @ 1a2b3c4d+dirty"."""
    parts = [str(target.get("impl", "?"))]
    if target.get("api"):
        parts.append(f"(api {target['api']})")
    if target.get("version"):
        parts.append(f"v{target['version']}")
    if target.get("git_commit"):
        parts.append(f"@ {str(target['git_commit'])[:12]}" + ("+dirty" if target.get("git_dirty") else ""))
    return " ".join(parts)


def devices_line(env: Mapping[str, Any]) -> str:
    devs = env.get("devices") or []
    if isinstance(devs, str):
        return devs
    counts: dict[str, int] = {}
    for d in devs:
        counts[str(d)] = counts.get(str(d), 0) + 1
    return ", ".join(f"{n}× {d}" if n > 1 else d for d, n in counts.items()) or "—"


def result_line(result: Mapping[str, Any]) -> str:
    """One plain line per result, nccl-tests style, e.g.
    ``PASS sinkhorn-uneven[gloo-ws2] 0.31s worst 0.02×tol``."""
    status = str(result.get("status", "?"))
    parts = [STATUS_LABEL.get(status, status.upper()), test_id(result),
             format_duration(result.get("duration_s"))]
    if status == "skip":
        parts.append(str(result.get("skip_reason") or ""))
        return " ".join(p for p in parts if p)
    worst = worst_check(result)
    if worst is not None:
        parts.append(f"worst {format_ratio(check_ratio(worst))}")
        if not worst.get("passed", True):
            where = [str(worst.get("name", "?"))]
            if worst.get("comparison"):
                where.append(str(worst["comparison"]))
            if worst.get("rank") is not None:
                where.append(f"rank {worst['rank']}")
            if worst.get("index") is not None:
                where.append(str(list(worst["index"])) if isinstance(worst["index"], (list, tuple))
                             else str(worst["index"]))
            loc = " ".join(where)
            if worst.get("actual") is not None or worst.get("expected") is not None:
                loc += f": {format_float(worst.get('actual'), 6)} vs {format_float(worst.get('expected'), 6)}"
            if num(worst.get("nonfinite")):
                loc += f" ({int(num(worst.get('nonfinite')) or 0)} non-finite)"
            parts.append(f"({loc})")
    metrics = result.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        if result.get("prototypes") is not None:
            parts.append(f"K={format_float(result.get('prototypes'))}")
        parts.append(f"hidden {format_metric(metrics, 'hidden_fraction')}")
        parts.append(f"exposed {format_metric(metrics, 'exposed_ms')} ms")
        parts.append(f"comm {format_metric(metrics, 'comm_ms')} ms")
        parts.append(f"bwd {format_metric(metrics, 'bwd_ms')} ms")
    for e in rank_errors(result)[:3]:
        exit_ = error_exit(e)
        msg = str(e.get("message") or "").strip().splitlines()
        parts.append(f"rank {e.get('rank', '?')} {e.get('type', '?')}"
                     + (f" ({exit_})" if exit_ else "") + (f": {msg[0]}" if msg else ""))
    return " ".join(parts)
