"""The explore section of a report, as section data every format shows, and its gate.

Two tables -- the search (what was covered, for how long, under which assumptions) and
the findings (one row per mistake: key, likely cause, how many configurations failed
that way, the shrunk case and its file) -- plus the report's verdict line; the shrunk
cases' failure panels come from the report's results as for any run. The comparison
gate: a finding in the new report whose key the baseline lacks is a regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .explore_model import FindingRecord
from .fmt import format_duration
from .model import Report
from .sections import Column, TableData, Verdict, cell, text_cell

FINDING_COLUMNS: tuple[Column[FindingRecord], ...] = (
    Column("finding", lambda f: cell(f.key, "bad"), key=True),
    Column("examples", lambda f: cell(f.examples), numeric=True),
    Column("first seen", lambda f: cell(format_duration(f.first_seen_s)), numeric=True),
    Column("minimal case", lambda f: cell(minimal_case(f.table))),
    Column("reproduced", lambda f: cell({True: "yes", False: "NO", None: "—"}[f.reproduced],
                                        {True: "ok", False: "bad", None: "dim"}[f.reproduced])),
    Column("case file", lambda f: cell(f.file, "dim"), optional=True),
    Column("likely cause", lambda f: text_cell(f.likely_cause), long=True))
#: Keys of a shrunk case the "minimal case" cell leaves out (the row says them already).
_SHOWN_ELSEWHERE = ("name", "kind", "description", "world_sizes")


def verdict(report: Report) -> Verdict:
    """"N findings in C configurations": fail, error (a rank hung or crashed) or pass."""
    ex = report.explore
    assert ex is not None
    n = len(ex.findings)
    text = (f"explore: {n} finding{'' if n == 1 else 's'} in {ex.configurations} "
            f"configurations ({ex.skipped} skipped) in {format_duration(ex.seconds)}, "
            f"stopped by {ex.stopped or '?'}")
    statuses = {r.status for r in report.results}
    if "error" in statuses:
        return Verdict(f"ERROR — a rank hung or crashed: {text}", "error")
    if n:
        return Verdict(f"FOUND — {text}", "fail")
    return Verdict(f"NOTHING FOUND — {text}", "pass")


def minimal_case(table: dict) -> str:
    """``centering ws2: batch_per_rank=[2, 1] steps=1 seed=0``."""
    kind, world = table.get("kind", "?"), (table.get("world_sizes") or ["?"])[0]
    rest = " ".join(f"{k}={_short(v)}" for k, v in table.items() if k not in _SHOWN_ELSEWHERE)
    return f"{kind} ws{world}: {rest}"


def _short(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return str(value).replace("'", "")


def facts(report: Report) -> list[str]:
    """What the search covered, one line each: configurations, time, seed, kinds, and every
    assumption with what it promises."""
    ex = report.explore
    assert ex is not None
    budget = f" of a {ex.budget_s:g} s budget" if ex.budget_s else ""
    first = ("no failure" if ex.time_to_first_failure_s is None
             else f"first failure after {format_duration(ex.time_to_first_failure_s)}")
    lines = [f"{ex.configurations} configurations judged, {ex.skipped} skipped (the target "
             f"cannot be asked them), {ex.invalid} invalid",
             f"{format_duration(ex.seconds)}{budget}, {ex.rounds} round(s), stopped by "
             f"{ex.stopped or '?'}; {first}",
             "seed: " + ("random, with the example database" if ex.seed is None else str(ex.seed)),
             f"kinds: {', '.join(ex.kinds)}; world sizes up to {ex.max_world_size}"]
    lines += [f"not searched: {kind}: {why}" for kind, why in ex.unsearched.items()]
    lines += [f"assume {word}: {promise}" for word, promise in ex.assumptions] or \
        ["assumptions: none (every configuration the key schema allows)"]
    return lines


def tables(report: Report) -> list[TableData]:
    """The findings, the search's facts under them (none for another command's report)."""
    ex = report.explore
    if ex is None:
        return []
    n = len(ex.findings)
    return [TableData.of("explore", f"explore: {n} finding{'' if n == 1 else 's'}, one per mistake",
                         FINDING_COLUMNS, ex.findings, tone="fail" if n else "pass",
                         caption="\n".join(facts(report)))]


@dataclass
class FindingsGate:
    """Findings of a new explore report against a baseline's, by key."""

    new: list[str] = field(default_factory=list)  # a regression
    gone: list[str] = field(default_factory=list)
    still: list[str] = field(default_factory=list)


def compare_findings(new: Report, baseline: Report) -> FindingsGate | None:
    """None unless both reports are explore reports."""
    if new.explore is None or baseline.explore is None:
        return None
    before, after = baseline.explore.keys, new.explore.keys
    return FindingsGate(new=[k for k in after if k not in before],
                        gone=[k for k in before if k not in after],
                        still=[k for k in after if k in before])
