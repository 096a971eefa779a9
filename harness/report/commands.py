"""The two report subcommands, for ``harness.cli`` to call.

Exit codes (``harness.outcome``): ``report`` returns the code of the command that wrote
the report (:attr:`Report.exit_code`); 2 for bad input (a :class:`ReportError`, an
unknown format); ``compare`` 1 for a regression.
"""

from __future__ import annotations

import io
import os
import sys

from rich.console import Console
from rich.text import Text

from ..outcome import ExitCode
from .atomic import write_atomic
from .baseline import compare_reports, comparison_section
from .console import comparison_renderable, render_report
from .html import comparison_html, to_html
from .load import ReportError, load_report
from .markdown import comparison_markdown, to_markdown

FORMATS = ("console", "md", "html")


def _stderr(msg: str) -> None:
    Console(stderr=True, highlight=False).print(
        Text.assemble(("dino-harness: ", "bold red"), msg))


def report_command(path: str | os.PathLike[str], fmt: str = "console",
                   output: str | os.PathLike[str] | None = None, *,
                   console: Console | None = None) -> int:
    """``dino-harness report PATH [--format console|md|html] [--output FILE]``.

    Prints (or writes to ``output``) the report; returns the report's exit code.
    """
    if fmt not in FORMATS:
        _stderr(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")
        return ExitCode.BAD_INPUT
    try:
        report = load_report(path)
    except ReportError as e:
        _stderr(str(e))
        return ExitCode.BAD_INPUT
    try:
        if fmt == "console":
            if output is None:
                render_report(report, console or Console())
            else:
                buf = io.StringIO()
                render_report(report, Console(file=buf, width=140, color_system=None,
                                              force_terminal=False))
                write_atomic(output, buf.getvalue())
        else:
            text = to_markdown(report) if fmt == "md" else to_html(report)
            if output is None:
                sys.stdout.write(text)
                sys.stdout.flush()
            else:
                write_atomic(output, text)
    except OSError as e:
        _stderr(f"cannot write {output}: {e.strerror or e}")
        return ExitCode.BAD_INPUT
    return report.exit_code


def compare_command(new_path: str | os.PathLike[str], baseline_path: str | os.PathLike[str],
                    fmt: str = "console", *, console: Console | None = None) -> int:
    """``dino-harness compare NEW BASELINE [--format console|md|html]``: 0 no regression ·
    1 new failure or overlap regression · 2 a report could not be loaded, a bad format."""
    if fmt not in FORMATS:
        _stderr(f"unknown compare format {fmt!r} (choose from {', '.join(FORMATS)})")
        return ExitCode.BAD_INPUT
    try:
        new = load_report(new_path)
        baseline = load_report(baseline_path)
    except ReportError as e:
        _stderr(str(e))
        return ExitCode.BAD_INPUT
    cmp = compare_reports(new, baseline)
    section = comparison_section(cmp)
    if fmt == "console":
        (console or Console()).print(comparison_renderable(section))
    else:
        sys.stdout.write(comparison_markdown(section) if fmt == "md" else comparison_html(section))
        sys.stdout.flush()
    return cmp.exit_code


__all__ = ["report_command", "compare_command", "FORMATS"]
