"""Each overlap metric is declared once (harness.report.metrics) and every table, line and
gate reads it: a second declaration that formats or gates it differently fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.overlap.metrics import METRICS as BENCH_METRICS
from harness.overlap.metrics import PAIRED_METRICS
from harness.report import compare_reports, result_line
from harness.report.baseline import Interval, directions
from harness.report.metrics import GATED, METRICS, metric
from harness.report.sections import TableData, ddp_table, overlap_table
from harness.results import CaseResult

REPORT = Path(__file__).resolve().parents[2] / "harness" / "report"


def _metrics(value: float, low: float, high: float) -> dict[str, float]:
    """Every declared metric at the same median and p10/p90."""
    out: dict[str, float] = {}
    for m in METRICS:
        out.update({m.name: value, f"{m.name}_p10": low, f"{m.name}_p90": high})
    return out


def _result(case: str, metrics: dict[str, float], **extra: object) -> CaseResult:
    return CaseResult(case, "overlap", "gloo", 2, "pass", 1.0, metrics=metrics,
                      extra={"prototypes": 65536, **extra})


def _column(table: TableData, name: str) -> list[str]:
    """The full text of every cell under the column that shows metric ``name``."""
    [i] = [i for i, c in enumerate(table.columns) if c.name == metric(name).label]
    return [row[i].full_text for row in table.rows]


def test_every_metric_the_bench_reports_is_declared() -> None:
    declared = {m.name for m in METRICS}
    assert set(BENCH_METRICS) | set(PAIRED_METRICS) <= declared
    assert len(declared) == len(METRICS)  # no name declared twice


def test_the_overlap_table_and_compare_format_each_metric_identically() -> None:
    table = overlap_table([_result("ov", _metrics(0.4321, 0.41, 0.45))])
    assert table is not None
    shown = [m for m in METRICS if any(c.name == m.label for c in table.columns)]
    assert {m.name for m in shown} >= {"hidden_fraction", "interference", "efficiency", "comm_ms"}
    for m in shown:
        interval = Interval.of(_metrics(0.4321, 0.41, 0.45), m.name)
        assert interval is not None
        assert _column(table, m.name) == [interval.text(m.name)] == [m.text(0.4321, 0.41, 0.45)]
        column = next(c for c in table.columns if c.name == m.label)
        assert (column.unit, column.short) == (m.unit, m.short)


def test_interference_is_a_percentage_in_every_table() -> None:
    """It disagreed before: a percentage in the DDP table, a plain number in the overlap one."""
    plain = _result("ov", {"interference": 0.05, "interference_p10": 0.01,
                           "interference_p90": 0.08})
    ddp = _result("ov-ddp", {"interference": 0.18, "interference_p10": 0.1,
                             "interference_p90": 0.25}, ddp=True)
    overlap, ddp_t = overlap_table([plain, ddp]), ddp_table([plain, ddp])
    assert overlap is not None and ddp_t is not None
    assert _column(overlap, "interference") == ["5% [1%–8%]", "18% [10%–25%]"]
    assert _column(ddp_t, "interference") == ["5% → 18%"]
    assert Interval.of(ddp.metrics, "interference").text("interference") == "18% [10%–25%]"


def test_the_result_line_reads_labels_units_and_formats_from_the_registry() -> None:
    line = result_line(_result("ov", _metrics(0.5, 0.25, 0.75)))
    for name in ("hidden_fraction", "exposed_ms", "comm_ms", "bwd_ms"):
        m = metric(name)
        assert f"{m.label} {m.text(0.5, 0.25, 0.75)}" + (f" {m.unit}" if m.unit else "") in line
    assert "hidden 50% [25%–75%]" in line and "comm 0.5 [0.25–0.75] ms" in line


def _paired(value: tuple[float, float, float]) -> dict:
    m = {"hidden_fraction_paired": value[0], "hidden_fraction_paired_ci_low": value[1],
         "hidden_fraction_paired_ci_high": value[2]}
    return {"results": [_result("ov", m).to_json()]}


def test_compare_prints_the_paired_headline_as_a_percentage() -> None:
    """It disagreed before: compare formatted only hidden_fraction as a percentage."""
    cmp = compare_reports(_paired((0.5, 0.45, 0.55)), _paired((0.95, 0.93, 0.97)))
    [reg] = cmp.regressions
    assert reg.metric == "hidden_fraction_paired" and cmp.exit_code == 1
    assert [reg.baseline.text(reg.metric), reg.new.text(reg.metric)] == [
        "95% [93%–97%]", "50% [45%–55%]"]


def test_compare_gates_the_registry_directions_unless_a_result_names_its_own() -> None:
    assert GATED == {"hidden_fraction": "higher", "hidden_fraction_paired": "higher",
                     "overlapped_ms": "lower"}
    plain = _result("ov", {})
    assert directions(plain) == {k: v == "higher" for k, v in GATED.items()}
    fake = _result("ov", {}, gated={"hidden_fraction_paired": "lower"})
    assert directions(fake) == {"hidden_fraction_paired": False}


@pytest.mark.parametrize("better, new, code", [("lower", 3.0, 1), ("higher", 3.0, 0),
                                               ("lower", 1.0, 0)])
def test_an_undeclared_gated_figure_is_gated_as_its_result_says(better: str, new: float,
                                                                code: int) -> None:
    def fig(v: float) -> dict:
        m = {"first_verdict_ratio": v, "first_verdict_ratio_ci_low": v * 0.95,
             "first_verdict_ratio_ci_high": v * 1.05}
        r = CaseResult("bench-first-verdict", "bench", "gloo", 2, "pass", 1.0, metrics=m,
                       extra={"gated": {"first_verdict_ratio": better}})
        return {"results": [r.to_json()]}

    cmp = compare_reports(fig(new), fig(2.0))
    assert cmp.exit_code == code
    [change] = cmp.regressions + cmp.improvements
    assert change.new.text("first_verdict_ratio") == f"{new:g} [{new * 0.95:.3g}–{new * 1.05:.3g}]"


def _second_declarations(path: Path) -> list[str]:
    """Percent formatting outside the registry: ``format_percent`` or a ``:.0%`` spec."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name) and node.id == "format_percent" or \
                isinstance(node, ast.alias) and node.name == "format_percent":
            found.append(f"{path.name}:{getattr(node, 'lineno', '?')} format_percent")
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None and \
                "%" in ast.unparse(node.format_spec):
            found.append(f"{path.name}:{node.lineno} a percent format spec")
    return found


def test_no_report_module_formats_a_percentage_but_the_registry() -> None:
    others = [p for p in sorted(REPORT.glob("*.py")) if p.name not in ("metrics.py", "fmt.py")]
    assert others, REPORT
    assert [hit for p in others for hit in _second_declarations(p)] == []


def test_the_source_check_can_fail(tmp_path: Path) -> None:
    planted = tmp_path / "sections.py"
    planted.write_text("from .fmt import format_percent\n"
                       "def f(v):\n    return f'{v:.0%}' + format_percent(v)\n")
    assert len(_second_declarations(planted)) == 3
