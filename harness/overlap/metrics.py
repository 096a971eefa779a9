"""From raw per-rank, per-iteration times to the report's overlap metrics.

Pure Python/NumPy on plain dicts (no torch): the parent runs it, and the unit tests feed
it synthetic records. Definitions (README.md in this folder says the same for readers):

per iteration i, per rank r (all in ms, on the backend's clock):
  bwd_ms           phase 1: backward alone
  comm_ms          phase 2: the center all-reduce alone, blocking
  serial_ms        phase 3: blocking all-reduce, then backward
  overlapped_ms    phase 4: update_center + backward + apply_center_update
  exposed_ms       phase 4: time inside the center's collective call(s) (the issuing
                   call: a blocking all-reduce spends the whole collective there) + time
                   inside ``wait()`` on their handles after backward (trace.py). When the
                   collective could not be traced: the whole update_center +
                   apply_center_update calls (an upper bound). 0 when nothing is sent.
  centering_ms     issue_ms + apply_ms - exposed_ms: the centering's own work on the
                   critical path (row sums, packing, the EMA), not communication
  hidden_fraction  1 - exposed_ms / comm_ms   (undefined, NaN, when nothing is sent)
  hidden_fraction_paired
                   1 - exposed_ms / allreduce_overlapped_ms: exposure and the
                   all-reduce's own duration from the *same* iteration (phase 4), so their
                   jitter cancels; NaN when the all-reduce's end is unknown or it was not
                   traced. Reported over the run as 1 - median(exposed) / median(allreduce)
                   over those iterations (below)
  interference     bwd_overlapped_ms / bwd_ms - 1  (backward's slow-down while the
                   all-reduce runs beside it)
  efficiency       min(1, max(comm_ms, bwd_ms) / overlapped_ms)

The step's value in iteration i is the *slowest rank's* record: the rank with the largest
overlapped_ms in that iteration (every field from that one rank, so the ratios stay
consistent). Reported times are the median over iterations; the reported ratios are the
same formulas applied to those medians (so the table satisfies hidden = 1 - exposed /
comm exactly); ``_p10``/``_p90`` are percentiles of the per-iteration values; ``_ci_low``/
``_ci_high`` a bootstrap 95 % interval of the reported value (stats.py).

The paired fraction over the run is ``1 - median(exposed) / median(allreduce)`` over
the iterations that have both, its interval a bootstrap of those iterations with their
pairs kept together, p10/p90 those of the per-iteration ratios. Why not the median of
the per-iteration ratios: on a small loaded machine a 256 KB gloo all-reduce sometimes
completes before its own issuing call has returned (0.2-1 ms calls); that iteration's
ratio is ~0 where the others are ~0.95, and the median of such a two-mode sample jumps
between the modes (0.66, interval 0.9 wide, in one run). Why not a ratio of sums: one
iteration descheduled inside the call for 50 ms (E = D = 50 ms) outweighs twenty
hidden 5 ms all-reduces (0.19, interval 1.3 wide). Medians of the two paired columns
are robust to both, and a synchronous all-reduce (E = D in every iteration) is exactly 0.

The *headline* (:func:`headline`) -- what the verdict, the classification and the
``inconclusive`` flag read -- is the paired fraction when the run has it, else the phase
protocol's; the other one is the cross-check (a note says when they disagree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .stats import ci_width, metric_fields, statistic_fields

#: The report's overlap metrics (the report schema, README "Report schema"), in report order.
METRICS = ("comm_ms", "bwd_ms", "serial_ms", "overlapped_ms", "exposed_ms", "hidden_fraction",
           "interference", "efficiency")
#: Paired ratios: 1 - median(numerator) / median(denominator) over the same iterations.
PAIRED_METRICS = {"hidden_fraction_paired": ("exposed_ms", "allreduce_overlapped_ms")}
#: Added metrics: the parts of the overlapped step, and clock cross-checks.
PART_METRICS = ("issue_ms", "apply_ms", "collective_call_ms", "wait_ms", "centering_ms",
                "bwd_overlapped_ms", "allreduce_overlapped_ms", "comm_work_ms")

#: When is an interval too wide to conclude? (absolute for fractions, relative for times)
MAX_CI_WIDTH_FRACTION = 0.25  # hidden_fraction, interference, efficiency
MAX_CI_WIDTH_RELATIVE = 0.3  # comm_ms, bwd_ms, overlapped_ms: width / median
#: Classification of the hidden fraction (controls, verdict text).
HIDDEN_HIGH = 0.8
HIDDEN_LOW = 0.2
#: Paired and phase-protocol hidden fractions further apart than this get a note.
CROSS_CHECK_GAP = 0.3


def _f(value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def derive(record: Mapping[str, Any], *, has_comm: bool = True) -> dict[str, float]:
    """The per-iteration metrics of one rank's raw record (see the module docstring)."""
    comm, bwd, ov = _f(record.get("comm_ms")), _f(record.get("bwd_ms")), _f(record.get("overlapped_ms"))
    issue, apply = _f(record.get("issue_ms")), _f(record.get("apply_ms"))
    if not has_comm:
        exposed = 0.0
    elif record.get("traced"):
        exposed = _f(record.get("collective_call_ms")) + _f(record.get("wait_ms"))
    else:
        exposed = issue + apply
    out = {name: _f(record.get(name)) for name in (*METRICS[:4], *PART_METRICS)}
    out["exposed_ms"] = exposed
    out["centering_ms"] = max(0.0, issue + apply - exposed)
    out["hidden_fraction"] = 1.0 - exposed / comm if has_comm and comm > 0 else float("nan")
    ar = _f(record.get("allreduce_overlapped_ms"))
    paired = has_comm and bool(record.get("traced")) and ar > 0
    out["hidden_fraction_paired"] = 1.0 - exposed / ar if paired else float("nan")
    bwd_ov = _f(record.get("bwd_overlapped_ms"))
    out["interference"] = bwd_ov / bwd - 1.0 if bwd > 0 else float("nan")
    out["efficiency"] = min(1.0, max(comm if has_comm else 0.0, bwd) / ov) if ov > 0 else float("nan")
    return out


def slowest_rank(per_rank: Sequence[Mapping[str, Any]], i: int) -> int:
    """Index of the rank with the largest overlapped_ms in iteration i."""
    best, best_v = 0, -math.inf
    for r, res in enumerate(per_rank):
        v = _f(res["records"][i].get("overlapped_ms"))
        if v > best_v:
            best, best_v = r, v
    return best


def _med(x: Any) -> float:
    """Median of the finite values; NaN when there are none."""
    arr = np.asarray(x, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


# The ratio statistics take columns of shape (n,) or (resamples, n) (finite values only,
# statistic_fields filters them) and reduce the last axis: one vectorised bootstrap.
def _safe_div(a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _hidden(c: Mapping[str, Any]) -> Any:
    return 1.0 - _safe_div(np.median(c["exposed_ms"], axis=-1), np.median(c["comm_ms"], axis=-1))


def _interference(c: Mapping[str, Any]) -> Any:
    return _safe_div(np.median(c["bwd_overlapped_ms"], axis=-1), np.median(c["bwd_ms"], axis=-1)) - 1.0


def _efficiency(c: Mapping[str, Any]) -> Any:
    top = np.maximum(np.median(c["comm_ms"], axis=-1), np.median(c["bwd_ms"], axis=-1))
    return np.minimum(1.0, _safe_div(top, np.median(c["overlapped_ms"], axis=-1)))


def _paired(numerator: str, denominator: str) -> Any:
    """1 - median(numerator) / median(denominator) over the last axis, the columns taken
    from the same iterations (see the module docstring)."""
    def statistic(c: Mapping[str, Any]) -> Any:
        return 1.0 - _safe_div(np.median(c[numerator], axis=-1),
                               np.median(c[denominator], axis=-1))

    return statistic


#: The ratio metrics: (statistic of the medians, the columns it reads).
RATIOS = {
    "hidden_fraction": (_hidden, ("comm_ms", "exposed_ms")),
    "interference": (_interference, ("bwd_ms", "bwd_overlapped_ms")),
    "efficiency": (_efficiency, ("comm_ms", "bwd_ms", "overlapped_ms")),
}


def summarize_iterations(rows: Sequence[Mapping[str, float]], *, seed: int = 0,
                         has_comm: bool = True) -> dict[str, Any]:
    """Report fields (value, _p10, _p90, _ci_low, _ci_high) for every metric.

    Times: the median over iterations, p10/p90 over iterations, bootstrap interval of the
    median. Ratios (hidden_fraction, interference, efficiency): the ratio *of the medians*
    (so the reported numbers satisfy hidden = 1 - exposed / comm etc. exactly; a ratio of
    medians is also steadier than a median of per-iteration ratios when both times are
    noisy), p10/p90 of the per-iteration ratios, and the bootstrap interval of the ratio of
    medians (iterations resampled jointly)."""
    out: dict[str, Any] = {}
    for name in METRICS:
        values = [row.get(name, float("nan")) for row in rows]
        if name in RATIOS:
            if name == "hidden_fraction" and not has_comm:
                out.update(metric_fields(name, [], seed=seed))
                continue
            statistic, cols = RATIOS[name]
            columns = {c: [row.get(c, float("nan")) for row in rows] for c in cols}
            out.update(statistic_fields(name, columns, statistic, values, seed=seed))
        else:
            out.update(metric_fields(name, values, seed=seed))
    for name, cols in PAIRED_METRICS.items():
        values = [row.get(name, float("nan")) for row in rows]
        if has_comm and not all(math.isnan(v) for v in values):
            usable = [row for row, v in zip(rows, values, strict=True) if math.isfinite(v)]
            columns = {c: [row[c] for row in usable] for c in cols}
            out.update(statistic_fields(name, columns, _paired(*cols), values, seed=seed))
    for name in PART_METRICS:
        values = [row.get(name, float("nan")) for row in rows]
        if all(math.isnan(v) for v in values):
            continue  # an unavailable added metric is left out, not NaN
        out.update(metric_fields(name, values, seed=seed))
    ov = _med([row.get("overlapped_ms", float("nan")) for row in rows])
    top = max(_med([row.get("comm_ms", float("nan")) for row in rows]),
              _med([row.get("bwd_ms", float("nan")) for row in rows]))
    out["efficiency_unclamped"] = round(top / ov, 4) if ov > 0 else float("nan")
    return out


def headline(metrics: Mapping[str, Any]) -> str:
    """The hidden fraction a result is judged by: ``hidden_fraction_paired`` when the run
    has it (the all-reduce timed in the same iterations as the exposure), else the phase
    protocol's ``hidden_fraction`` (NCCL without timing, an untraced target)."""
    return ("hidden_fraction_paired" if math.isfinite(_f(metrics.get("hidden_fraction_paired")))
            else "hidden_fraction")


def assess(metrics: Mapping[str, Any], *, world_size: int, has_comm: bool
           ) -> tuple[bool, list[str], list[str], list[str], dict[str, bool]]:
    """(inconclusive, reasons, noisy, notes, flags) for a result's metrics.

    inconclusive: the headline -- how much of the all-reduce hides (:func:`headline`) --
    cannot be concluded: its 95 % interval is wider than MAX_CI_WIDTH_FRACTION (0.25),
    i.e. "mostly hidden" and "half hidden" are both plausible. ``reasons`` says so in
    words. noisy: the other metrics whose interval is wide (the cross-check hidden
    fraction, interference / efficiency wider than 0.25; comm, backward, overlapped wider
    than 30 % of their median): read them as rough."""
    reasons: list[str] = []
    noisy: list[str] = []
    notes: list[str] = []
    flags = {"comm_exceeds_backward": False, "no_communication": not has_comm}
    m = dict(metrics)
    top = headline(m)
    for name in ("hidden_fraction_paired", "hidden_fraction", "interference", "efficiency"):
        if name.startswith("hidden_fraction") and not has_comm:
            continue
        w = ci_width(m, name)
        if math.isfinite(w) and w > MAX_CI_WIDTH_FRACTION:
            text = (f"{name}: 95% interval [{m[name + '_ci_low']:.2f}, {m[name + '_ci_high']:.2f}] "
                    f"is {w:.2f} wide (> {MAX_CI_WIDTH_FRACTION})")
            (reasons if name == top else noisy).append(text)
    for name in ("comm_ms", "bwd_ms", "overlapped_ms"):
        if name == "comm_ms" and not has_comm:
            continue
        med = _f(m.get(name))
        w = ci_width(m, name)
        if med > 0 and math.isfinite(w) and w / med > MAX_CI_WIDTH_RELATIVE:
            noisy.append(f"{name}: 95% interval [{m[name + '_ci_low']:.3g}, "
                         f"{m[name + '_ci_high']:.3g}] ms is {100 * w / med:.0f}% of the "
                         f"median (> {100 * MAX_CI_WIDTH_RELATIVE:.0f}%)")
    if reasons:
        reasons.append("too wide to conclude how much is hidden: rerun with more iterations "
                       "or on a quieter machine")
    comm, bwd = _f(metrics.get("comm_ms")), _f(metrics.get("bwd_ms"))
    if not has_comm:
        notes.append(f"world size {world_size}: the centering sends nothing: comm_ms is 0, "
                     "serial_ms is bwd_ms (phases 2 and 3 not run) and hidden_fraction is "
                     "undefined; overlapped_ms - bwd_ms is what centering itself costs")
    elif comm > bwd:
        flags["comm_exceeds_backward"] = True
        notes.append(f"comm ({comm:.3g} ms) is longer than backward ({bwd:.3g} ms): at most "
                     f"~{bwd / comm:.0%} of it can hide behind backward; the rest is exposed "
                     "whatever the implementation does")
    hidden = _f(metrics.get(top))
    if has_comm and hidden < 0:
        notes.append("exposed time exceeds the all-reduce (hidden fraction < 0): the issuing "
                     "call does more than start it (e.g. a synchronous all-reduce, a host sync, or "
                     "a row sum that costs more than the message)")
    notes += cross_check_notes(metrics)
    raw = _f(metrics.get("efficiency_unclamped"))
    if raw > 1:
        notes.append(f"efficiency clamped to 1 (max(comm, bwd) / overlapped = {raw:.3f}): the "
                     "overlapped step's median beat the larger of comm and backward, which were "
                     "timed in other phases (noise, or a backward that ran faster there)")
    return bool(reasons), reasons, noisy, notes, flags


def cross_check_notes(metrics: Mapping[str, Any]) -> list[str]:
    """A note when the paired and the phase-protocol hidden fractions disagree by more
    than CROSS_CHECK_GAP (they divide the same exposure by the all-reduce beside backward
    and by the all-reduce alone, timed in another phase)."""
    paired, phases = _f(metrics.get("hidden_fraction_paired")), _f(metrics.get("hidden_fraction"))
    if not (math.isfinite(paired) and math.isfinite(phases)) or abs(paired - phases) <= CROSS_CHECK_GAP:
        return []
    ar, comm = _f(metrics.get("allreduce_overlapped_ms")), _f(metrics.get("comm_ms"))
    return [f"cross-check: the phase protocol's hidden fraction ({phases:.2f}: the exposure over "
            f"the all-reduce alone, {comm:.3g} ms, timed in another phase) differs from the "
            f"paired one ({paired:.2f}: over the all-reduce beside backward, {ar:.3g} ms, same "
            "iterations) by more than "
            f"{CROSS_CHECK_GAP}: the all-reduce ran at another speed beside backward, or the "
            "phases' jitter did not cancel; the paired one is the headline"]


def classify(metrics: Mapping[str, Any]) -> str:
    """"hidden" | "partly hidden" | "exposed" | "undefined" from the headline's median."""
    h = _f(metrics.get(headline(metrics)))
    if math.isnan(h):
        return "undefined"
    if h >= HIDDEN_HIGH:
        return "hidden"
    if h <= HIDDEN_LOW:
        return "exposed"
    return "partly hidden"


def verdict_text(metrics: Mapping[str, Any], *, has_comm: bool) -> str:
    comm, bwd = _f(metrics.get("comm_ms")), _f(metrics.get("bwd_ms"))
    if not has_comm:
        over = _f(metrics.get("overlapped_ms")) - bwd
        return f"nothing to hide (no collective); centering adds {over:.3g} ms to a {bwd:.3g} ms backward"
    top = headline(metrics)
    h = _f(metrics.get(top))
    lo, hi = _f(metrics.get(top + "_ci_low")), _f(metrics.get(top + "_ci_high"))
    if top == "hidden_fraction_paired":
        ar, phases = _f(metrics.get("allreduce_overlapped_ms")), _f(metrics.get("hidden_fraction"))
        return (f"{classify(metrics)}: {h:.0%} [95% CI {lo:.0%}–{hi:.0%}] of a {ar:.3g} ms "
                f"all-reduce hidden behind a {bwd:.3g} ms backward (paired, same iterations; "
                f"phase protocol {phases:.0%} of {comm:.3g} ms alone)")
    return (f"{classify(metrics)}: {h:.0%} [95% CI {lo:.0%}–{hi:.0%}] of a {comm:.3g} ms all-reduce "
            f"hidden behind a {bwd:.3g} ms backward")


def aggregate(per_rank: Sequence[Mapping[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """Everything the result needs from the ranks' raw outputs:

    ``metrics`` (slowest rank per iteration), ``per_rank`` (each rank's own medians and
    intervals), ``slowest_ranks`` (how often each rank was the slowest), ``timeline`` (the
    representative overlapped iteration), ``has_comm``."""
    n = min(len(res["records"]) for res in per_rank)
    has_comm = any(int(res.get("n_collectives", 0)) > 0 for res in per_rank)
    derived = [[derive(res["records"][i], has_comm=has_comm) for i in range(n)] for res in per_rank]
    slow = [slowest_rank(per_rank, i) for i in range(n)]
    step_rows = [derived[slow[i]][i] for i in range(n)]
    metrics = summarize_iterations(step_rows, seed=seed, has_comm=has_comm)
    ranks = []
    for r, rows in enumerate(derived):
        m = summarize_iterations(rows, seed=seed, has_comm=has_comm)
        ranks.append({"rank": int(per_rank[r].get("rank", r)),
                      "slowest_in": sum(1 for s in slow if s == r),
                      "metrics": m})
    rep = representative_iteration([row["overlapped_ms"] for row in step_rows])
    traced = sum(1 for res in per_rank for rec in res["records"][:n] if rec.get("traced"))
    total = n * len(per_rank)
    if not has_comm:
        basis = "nothing sent"
    elif traced == total:
        basis = "traced collective calls + waits"
    elif traced == 0:
        basis = ("whole update_center + apply_center_update calls (the collective was not "
                 "traced; an upper bound)")
    else:
        basis = f"mixed: traced in {traced} of {total} rank-iterations"
    return {"metrics": metrics, "per_rank": ranks, "has_comm": has_comm, "exposed_basis": basis,
            "timeline": build_timeline(per_rank, rep) if rep is not None else None,
            "representative_iteration": rep}


def representative_iteration(values: Sequence[float]) -> int | None:
    """The iteration whose value is closest to the median (the first such)."""
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        return None
    ordered = sorted(v for _, v in finite)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    return min(finite, key=lambda iv: (abs(iv[1] - median), iv[0]))[0]


def build_timeline(per_rank: Sequence[Mapping[str, Any]], i: int) -> dict[str, Any]:
    """The report's ``timeline`` field for iteration i of the overlapped phase.

    With a clock shared by the ranks (the host clock), spans are placed at their true
    offsets from the earliest rank's start; otherwise each rank's spans are relative to
    its own start (the barrier before the phase aligns the starts)."""
    origins = [per_rank[r]["records"][i].get("origin_ms") for r in range(len(per_rank))]
    shared = all(isinstance(o, (int, float)) for o in origins) and all(
        res.get("cross_rank_clock") for res in per_rank)
    base = min(origins) if shared else 0.0
    ranks = []
    traced = False
    for r, res in enumerate(per_rank):
        rec = res["records"][i]
        shift = (origins[r] - base) if shared else 0.0
        spans = []
        for s in rec.get("spans") or []:
            span = {"name": s["name"], "start_ms": round(s["start_ms"] + shift, 4),
                    "end_ms": round(s["end_ms"] + shift, 4)}
            if s.get("estimated"):
                span["estimated"] = True
            traced = traced or s["name"] == "allreduce"
            spans.append(span)
        ranks.append({"rank": int(res.get("rank", r)), "spans": spans})
    return {"iteration": i, "clock": per_rank[0].get("clock"),
            "aligned": ("one host clock for all ranks" if shared
                        else "each rank from its own phase start (barrier-aligned)"),
            "allreduce_traced": traced, "ranks": ranks}
