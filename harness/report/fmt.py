"""Small, dependency-free helpers shared by the section builders and every renderer:
numbers, ratios, durations and percentages as text, and the few facts read off a typed
result (its worst check, its rank errors). How each overlap metric reads is
:mod:`harness.report.metrics`.

Values read back from JSON may still be the strings "nan"/"inf"/"-inf" (metrics of
another tool, an old file) or missing; everything here tolerates that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from harness.results import CaseResult, Check, RankError

STATUS_ORDER = ("fail", "error", "pass", "skip")
STATUS_LABEL = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}
STATUS_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold magenta",
                "skip": "yellow"}


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


def display_id(result: CaseResult) -> str:
    """``test_id`` plus K for an overlap result (one case may sweep several K)."""
    k = result.extra.get("prototypes")
    return result.test_id + (f" K={k}" if k is not None else "")


def check_ratio(check: Check) -> float | None:
    """Worst error / tolerance of one check.

    The check's own ``ratio`` wins (``harness.checks.closeness`` always sets it: worst
    ``|actual - expected| / max(1, |expected|)`` over the tolerance). Without it (an older
    report) ``min(max_abs_err, max_rel_err) / tolerance``, an upper bound of that same
    scaled error; a zero tolerance with a non-zero error is inf.
    """
    r = num(check.ratio)
    if r is not None:
        return r
    errs = [e for e in (num(check.max_abs_err), num(check.max_rel_err)) if e is not None]
    tol = num(check.tolerance)
    if not errs or tol is None or math.isnan(tol):
        return None
    err = math.nan if any(math.isnan(e) for e in errs) else min(errs)
    if tol <= 0:
        return 0.0 if err == 0 else math.inf
    return err / tol


def _ratio_key(r: float) -> float:
    return math.inf if math.isnan(r) else r


def worst_check(result: CaseResult) -> Check | None:
    """The check with the largest error/tolerance ratio (NaN counts as worst)."""
    best: tuple[float, Check] | None = None
    for c in result.checks:
        r = check_ratio(c)
        if r is None:
            continue
        if best is None or _ratio_key(r) > _ratio_key(best[0]) or math.isnan(r):
            best = (r, c)
    return best[1] if best else None


def worst_ratio(result: CaseResult) -> float | None:
    c = worst_check(result)
    return check_ratio(c) if c is not None else None


def max_ratio(ratios: Iterable[float | None]) -> float | None:
    vals = [r for r in ratios if r is not None]
    if not vals:
        return None
    if any(math.isnan(r) for r in vals):
        return math.nan
    return max(vals)


def failing_checks(result: CaseResult) -> list[Check]:
    return [c for c in result.checks if not c.passed]


def rank_errors(result: CaseResult) -> list[RankError]:
    """``error`` plus ``rank_errors``, without duplicates, ordered by rank."""
    out: list[RankError] = []
    seen: set[tuple[Any, ...]] = set()
    for e in ([result.error] if result.error else []) + list(result.rank_errors):
        key = (e.rank, e.type, e.message)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return sorted(out, key=lambda e: (e.rank is None, e.rank or 0))


def error_exit(e: RankError) -> str:
    """"signal SIGKILL", "exit code 1" or "" for a rank error."""
    parts = []
    if e.signal:
        parts.append(f"signal {e.signal}")
    if e.exit_code is not None:
        parts.append(f"exit code {e.exit_code}")
    return ", ".join(parts)


def trim_traceback(tb: str, max_lines: int = 30) -> str:
    """The last ``max_lines`` lines of a stack (the innermost frames and the exception)."""
    lines = (tb or "").rstrip().splitlines()
    if len(lines) <= max_lines:
        return "\n".join(lines)
    return "\n".join([f"… {len(lines) - max_lines} earlier lines trimmed …"] + lines[-max_lines:])


def overlap_results(results: Iterable[CaseResult]) -> list[CaseResult]:
    return [r for r in results if r.metrics]


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


def index_text(index: Any) -> str:
    """``[17, 402]`` for a list index, "—" for none."""
    if index is None:
        return "—"
    if isinstance(index, (list, tuple)):
        return "[" + ", ".join(str(i) for i in index) + "]"
    return str(index)
