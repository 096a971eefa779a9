"""One plain line per result, nccl-tests style: what the live view prints in CI, e.g.
``PASS sinkhorn-uneven[gloo-ws2] 0.31s worst 0.02×tol``. Its overlap figures are read
through the metric registry (:mod:`harness.report.metrics`), as every table reads them.
"""

from __future__ import annotations

from harness.results import CaseResult

from .fmt import (
    STATUS_LABEL,
    check_ratio,
    error_exit,
    format_duration,
    format_float,
    format_ratio,
    index_text,
    num,
    rank_errors,
    worst_check,
)
from .metrics import format_metric, metric

# The overlap figures a result line carries, in this order.
LINE_METRICS = ("hidden_fraction", "exposed_ms", "comm_ms", "bwd_ms")


def result_line(result: CaseResult) -> str:
    """The result's status, id, time, worst check (where it failed), overlap figures and
    rank errors on one line."""
    status = result.status
    parts = [STATUS_LABEL.get(status, str(status).upper()), result.test_id,
             format_duration(result.duration_s)]
    if status == "skip":
        parts.append(result.skip_reason or "")
        return " ".join(p for p in parts if p)
    worst = worst_check(result)
    if worst is not None:
        parts.append(f"worst {format_ratio(check_ratio(worst))}")
        if not worst.passed:
            where = [worst.name]
            if worst.comparison:
                where.append(worst.comparison)
            if worst.rank is not None:
                where.append(f"rank {worst.rank}")
            if worst.index is not None:
                where.append(index_text(worst.index))
            loc = " ".join(where)
            if worst.actual is not None or worst.expected is not None:
                loc += f": {format_float(worst.actual, 6)} vs {format_float(worst.expected, 6)}"
            if num(worst.nonfinite):
                loc += f" ({int(num(worst.nonfinite) or 0)} non-finite)"
            parts.append(f"({loc})")
    if result.metrics:
        if result.extra.get("prototypes") is not None:
            parts.append(f"K={format_float(result.extra.get('prototypes'))}")
        for name in LINE_METRICS:
            m = metric(name)
            parts.append(f"{m.label} {format_metric(result.metrics, name)}"
                         + (f" {m.unit}" if m.unit else ""))
    cause = result.error  # the runtime lists causes first: keep it first on the line
    errors = sorted(rank_errors(result), key=lambda e: cause is None or (e.rank, e.type) != (
        cause.rank, cause.type))
    for e in errors[:3]:
        exit_ = error_exit(e)
        msg = (e.message or "").strip().splitlines()
        parts.append(f"rank {e.rank} {e.type}" + (f" ({exit_})" if exit_ else "")
                     + (f": {msg[0]}" if msg else ""))
    return " ".join(parts)
