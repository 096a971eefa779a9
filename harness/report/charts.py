"""The pictures of the HTML report, drawn with matplotlib (Agg) and returned as SVG text
ready to inline: no XML prolog, no DOCTYPE, no metadata (so no external URL at all), text
kept as text, ``$`` in labels escaped so that case names never trigger mathtext.

Each function returns ``None`` when the report has nothing to draw.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.results import CaseResult

from .fmt import check_ratio, display_id, num, worst_check
from .metrics import metric_interval

_COLORS = {"pass": "#2e9d4e", "fail": "#d1343a", "error": "#9c3fbf", "skip": "#c9a227"}
SPAN_COLORS = {"backward": "#4c78a8", "allreduce": "#f58518", "issue": "#d1343a",
               "wait": "#b279a2"}
COMPUTE_SPANS = ("backward", "forward", "compute")
_RATIO_FLOOR = 1e-6


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(s: Any, limit: int = 60) -> str:
    text = str(s)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


_FIG_COUNTER = iter(range(1, 1 << 62))


def _prefix_ids(svg: str, prefix: str) -> str:
    """Make the SVG's ids unique in the page (several SVGs share one id namespace)."""
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    if not ids:
        return svg

    def ref(m: re.Match[str]) -> str:
        name = m.group(2)
        return f"{m.group(1)}{prefix}{name}" if name in ids else m.group(0)

    svg = re.sub(r'(\sid=")([^"]+)(?=")', ref, svg)
    svg = re.sub(r'(url\(#)([^)]+)(?=\))', ref, svg)
    return re.sub(r'(href="#)([^"]+)(?=")', ref, svg)


def _to_svg(fig: Any) -> str:
    plt = _plt()
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dino-harness"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    return _prefix_ids(svg.strip(), f"f{next(_FIG_COUNTER)}-")


def ratio_chart(results: Sequence[CaseResult]) -> str | None:
    """Worst error/tolerance per result, log scale, a line at 1 (the pass limit)."""
    rows = []
    for r in results:
        c = worst_check(r)
        ratio = check_ratio(c) if c is not None else None
        if ratio is None:
            continue
        rows.append((r.test_id, ratio, r.status))
    if not rows:
        return None
    plt = _plt()
    finite = [v for _, v, _ in rows if math.isfinite(v) and v > 0]
    top = max(finite + [10.0]) * 10
    fig, ax = plt.subplots(figsize=(8.5, 0.6 + 0.26 * len(rows)))
    ys = list(range(len(rows)))[::-1]
    for y, (_, ratio, status) in zip(ys, rows, strict=True):
        shown = top if not math.isfinite(ratio) else max(ratio, _RATIO_FLOOR)
        ax.barh(y, shown, color=_COLORS.get(status, "#888"), height=0.7,
                hatch="//" if not math.isfinite(ratio) else None)
        if not math.isfinite(ratio) or ratio <= 0:
            label = " nan" if math.isnan(ratio) else (" inf" if ratio > 0 else " 0")
            ax.text(shown, y, label, va="center", fontsize=8)
    ax.axvline(1.0, color="#222", linestyle="--", linewidth=1)
    ax.text(1.0, 1.0, " tolerance", transform=ax.get_xaxis_transform(), va="bottom",
            fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(_RATIO_FLOOR / 2, top * 3)
    ax.set_yticks(ys, [_label(n) for n, _, _ in rows], fontsize=8)
    ax.set_xlabel("worst error / tolerance (log scale; < 1 passes)")
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return _to_svg(fig)


def hidden_fraction_chart(results: Sequence[CaseResult]) -> str | None:
    """Hidden fraction of the center all-reduce against K, one line per (backend, world
    size, head): a different head is a different backward, not another point of the same
    curve. Error bars: the 95 % CI, else p10–p90."""
    series: dict[tuple[str, Any, str], list[tuple[float, float, float | None, float | None]]] = {}
    for r in results:
        m = r.metrics
        k = num(r.extra.get("prototypes"))
        if not isinstance(m, Mapping) or k is None:
            continue
        med, lo, hi = metric_interval(m, "hidden_fraction")
        if med is None or math.isnan(med):
            continue
        workload = r.extra.get("workload")
        head = str(workload.get("head", "")) if isinstance(workload, Mapping) else ""
        head = head.rsplit("→", 1)[0]  # "384→2048→256→65536": the layers before K
        series.setdefault((r.backend, r.world_size, head), []).append((k, med, lo, hi))
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    several_heads = len({key[2] for key in series}) > 1
    for (backend, ws, head), pts in sorted(series.items(),
                                           key=lambda kv: (kv[0][0], num(kv[0][1]) or 0, kv[0][2])):
        pts.sort()
        xs = [p[0] for p in pts]
        ys = [100 * p[1] for p in pts]
        err = [[100 * (p[1] - p[2]) if p[2] is not None else 0 for p in pts],
               [100 * (p[3] - p[1]) if p[3] is not None else 0 for p in pts]]
        err = [[max(e, 0) for e in side] for side in err]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=_label(f"{backend} ws={ws}" + (f" head {head}" if several_heads else "")))
    ax.set_xscale("log", base=2)
    ax.set_ylim(-5, 105)
    ax.set_xlabel("prototypes K (center size)")
    ax.set_ylabel("all-reduce hidden behind backward (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    return _to_svg(fig)


def timeline_chart(result: CaseResult) -> str | None:
    """Per-rank spans of one iteration: a compute lane (backward) and a comm lane
    (issue / allreduce / wait) per rank."""
    tl = result.extra.get("timeline")
    ranks = tl.get("ranks") if isinstance(tl, Mapping) else None
    if not isinstance(ranks, list) or not ranks:
        return None
    plt = _plt()
    lanes: list[str] = []
    fig, ax = plt.subplots(figsize=(8.5, 0.7 + 0.5 * 2 * len(ranks)))
    used: set[str] = set()
    y = 0.0
    for entry in sorted((e for e in ranks if isinstance(e, Mapping)), key=lambda e: num(e.get("rank")) or 0):
        rank = entry.get("rank", "?")
        spans = [s for s in entry.get("spans") or [] if isinstance(s, Mapping)]
        for lane_name, pick in (("compute", lambda n: n in COMPUTE_SPANS),
                                ("comm", lambda n: n not in COMPUTE_SPANS)):
            by_name: dict[str, list[tuple[float, float]]] = {}
            for s in spans:
                name = str(s.get("name", "?"))
                start, end = num(s.get("start_ms")), num(s.get("end_ms"))
                if not pick(name) or start is None or end is None:
                    continue
                by_name.setdefault(name, []).append((start, max(end - start, 0.0)))
            for name, bars in by_name.items():
                ax.broken_barh(bars, (y - 0.35, 0.7), facecolors=SPAN_COLORS.get(name, "#888"),
                               label=name if name not in used else None)
                used.add(name)
            lanes.append(_label(f"rank {rank} {lane_name}"))
            y -= 1
    ax.set_yticks([-i for i in range(len(lanes))], lanes, fontsize=8)
    ax.set_xlabel("time in the iteration (ms)")
    ax.grid(axis="x", alpha=0.3)
    if used:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(_label(display_id(result), 90), fontsize=9, loc="left")
    return _to_svg(fig)
