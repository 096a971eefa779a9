"""report_command: formats, --output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.report import report_command
from harness.report.samples import sample_report
from harness.results import CaseResult, Check


def _write(tmp_path: Path, report: dict) -> Path:
    p = tmp_path / "report.json"
    p.write_text(json.dumps(report))
    return p


def test_console_and_exit_codes(tmp_path: Path) -> None:
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    # The sample has a hung rank: exit 3 (the command-line contract).
    assert report_command(_write(tmp_path, sample_report()), "console", None, console=quiet) == 3
    ok = CaseResult("ok", "cls", "gloo", 2, "pass", 0.1, [Check("loss", 0, 0, 1e-5, True)])
    bad = CaseResult("bad", "cls", "gloo", 2, "fail", 0.1, [Check("loss", 1, 1, 1e-5, False)])
    assert report_command(_write(tmp_path, sample_report([ok])), "console", None, console=quiet) == 0
    assert report_command(_write(tmp_path, sample_report([ok, bad])), "console", None,
                          console=quiet) == 1
    assert report_command(tmp_path / "nope", "console", None, console=quiet) == 2
    assert report_command(_write(tmp_path, sample_report([ok])), "pdf", None, console=quiet) == 2


@pytest.mark.parametrize("fmt, marker", [("console", "dino-harness report"),
                                         ("md", "## 💥 dino-harness"),
                                         ("html", "<!DOCTYPE html>")])
def test_output_file(tmp_path: Path, fmt: str, marker: str) -> None:
    if fmt == "html":
        pytest.importorskip("matplotlib")
    out = tmp_path / "sub" / f"report.{fmt}"
    assert report_command(_write(tmp_path, sample_report()), fmt, out) == 3
    text = out.read_text(encoding="utf-8")
    assert marker in text and "sinkhorn-uneven" in text
    assert "\x1b[" not in text  # no ANSI codes in a file
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_md_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_command(_write(tmp_path, sample_report()), "md", None) == 3
    assert "### Failures and errors" in capsys.readouterr().out
