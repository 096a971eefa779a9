"""Reports of a run: the crash-safe JSONL stream and report.json, the rich console
summary and live view, Markdown and self-contained HTML, and the baseline comparison.

One concern per module:

=================  ==========================================================
``run_writer``     :class:`RunWriter` (results.jsonl + atomic report.json, latest)
``atomic``         :func:`write_atomic`: every whole file, atomically, umask's mode
``environment``    :func:`collect_environment`, :func:`describe_target`
``model``          :class:`Report` (typed, ``to_json``/``from_json``) and its sections
``load``           :func:`load_report` (report.json / run folder / latest) → Report
``sections``       the section builders: typed report → what every format shows
``metrics``        each overlap metric declared once: label, unit, percent, better
``console``        :func:`render_report` (rich), formats the sections
``live``           :class:`LiveView` (rich Live, or plain lines in CI)
``line``           :func:`result_line`: one plain line per result
``markdown``       :func:`to_markdown`
``html``           :func:`to_html` (pictures from ``charts``)
``baseline``       :func:`compare_reports` → :class:`Comparison` → its section
``figures``        a benchmark's figures (runs, floor, ratio, target) as a gated result
``commands``       :func:`report_command`, :func:`compare_command` for the CLI
``fmt``            number/ratio/duration/percent text shared by all of them
=================  ==========================================================

The HTML module imports matplotlib lazily (only when a picture is drawn).
"""

from .baseline import Comparison, compare_reports, comparison_section
from .commands import compare_command, report_command
from .console import render_comparison, render_report, report_renderable
from .environment import collect_environment, describe_target
from .fmt import format_ratio, worst_ratio
from .html import to_html
from .line import result_line
from .live import LiveView
from .load import ReportError, ReportWarning, load_report
from .markdown import to_markdown
from .model import BenchSection, Report, SelfcheckSection
from .run_writer import RunWriter, new_run_id, write_json

__all__ = [
    "BenchSection",
    "Comparison",
    "LiveView",
    "ReportError",
    "ReportWarning",
    "Report",
    "RunWriter",
    "SelfcheckSection",
    "collect_environment",
    "compare_command",
    "compare_reports",
    "comparison_section",
    "describe_target",
    "format_ratio",
    "load_report",
    "new_run_id",
    "render_comparison",
    "render_report",
    "report_command",
    "report_renderable",
    "result_line",
    "to_html",
    "to_markdown",
    "worst_ratio",
    "write_json",
]
