"""Every overlap metric the report shows or gates, declared once: its label, unit, whether
it reads as a percentage, and which way is better.

The overlap table, the DDP table, the plain result line and ``compare`` (its default
gates and its interval text) all read a metric through :func:`metric`, so a metric cannot
be a percentage in one table and a plain number in another. A name that is not declared
here (a bench figure of ``benchmarks/``, gated by its own ``extra["gated"]``) reads as a
plain number under its own name.

``interference`` (``bwd_overlapped_ms / bwd_ms - 1``, harness/overlap/metrics.py) is a
percentage: it is backward's relative slow-down while the all-reduce runs beside it
("backward 18 % slower"), a share of the backward time like the hidden fraction and the
efficiency it is shown with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .fmt import format_float, format_percent, num

Better = Literal["higher", "lower"]

# Suffix pairs that give an interval around a metric's median, in order of preference.
INTERVAL_SUFFIXES = (("_ci_low", "_ci_high"), ("_p10", "_p90"))


@dataclass(frozen=True)
class Metric:
    name: str  # the key in a result's ``metrics``
    label: str  # before a value: "hidden 97%", a column header
    unit: str = ""  # after a value: "comm 4.2 ms"
    percent: bool = False  # a fraction shown as a percentage
    better: Better | None = None  # the direction compare gates by default; None: not gated
    short: str | None = None  # the header where space is short

    def format(self, value: Any) -> str:
        """One value as text: "97%" or "4.2" (the unit is the caller's to place); "—"
        for a missing or undefined (NaN) one."""
        v = num(value)
        if v is None or math.isnan(v):
            return "—"
        return format_percent(v) if self.percent else format_float(v)

    def parts(self, median: Any, low: Any = None, high: Any = None) -> tuple[str, str | None]:
        """("97%", "[93%–99%]"): the median and, when both ends are known, the interval."""
        interval = None if low is None or high is None else \
            f"[{self.format(low)}–{self.format(high)}]"
        return self.format(median), interval

    def text(self, median: Any, low: Any = None, high: Any = None) -> str:
        """"97% [93%–99%]", or the median alone."""
        med, interval = self.parts(median, low, high)
        return f"{med} {interval}" if interval else med


# In the order compare lists what they gate.
METRICS = (
    Metric("comm_ms", "comm", "ms"),
    Metric("bwd_ms", "bwd", "ms"),
    Metric("exposed_ms", "exposed", "ms"),
    Metric("hidden_fraction", "hidden", percent=True, better="higher"),
    Metric("hidden_fraction_paired", "hidden paired", percent=True, better="higher"),
    Metric("interference", "interference", percent=True, short="interf."),
    Metric("efficiency", "efficiency", percent=True, short="effic."),
    Metric("serial_ms", "serial", "ms"),
    Metric("overlapped_ms", "overlapped", "ms", better="lower"),
)
_BY_NAME = {m.name: m for m in METRICS}
#: What compare gates when a result names no ``gated`` metrics of its own.
GATED: dict[str, Better] = {m.name: m.better for m in METRICS if m.better is not None}


def metric(name: str) -> Metric:
    """The declared metric, or a plain number under its own name (a bench figure)."""
    return _BY_NAME.get(name) or Metric(name, name)


def metric_interval(metrics: Mapping[str, Any] | None, name: str
                    ) -> tuple[float | None, float | None, float | None]:
    """(median, low, high) of a metric; low/high from ``_ci_low``/``_ci_high``, else
    ``_p10``/``_p90``, else None."""
    if not metrics:
        return None, None, None
    med = num(metrics.get(name))
    for lo_s, hi_s in INTERVAL_SUFFIXES:
        lo, hi = num(metrics.get(name + lo_s)), num(metrics.get(name + hi_s))
        if lo is not None and hi is not None:
            return med, lo, hi
    return med, None, None


def metric_parts(metrics: Mapping[str, Any] | None, name: str) -> tuple[str | None, str | None]:
    """("97%", "[93%–99%]"): a metric's median and its interval as text (None if absent)."""
    med, lo, hi = metric_interval(metrics, name)
    if med is None:
        return None, None
    return metric(name).parts(med, lo, hi)


def format_metric(metrics: Mapping[str, Any] | None, name: str) -> str:
    """"12.3 [11.9–13.0]" (median [95 % CI, else p10–p90]), or "—"."""
    med, lo, hi = metric_interval(metrics, name)
    return "—" if med is None else metric(name).text(med, lo, hi)
