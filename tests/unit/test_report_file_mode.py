"""The files the report layer writes get the mode the umask gives (0644 under umask 022),
not the 0600 of a private temporary file, so a CI artifact or a shared folder can read
them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.report import RunWriter, report_command, write_json
from harness.report.samples import SAMPLE_ENVIRONMENT, SAMPLE_TARGET, sample_report, sample_results


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_run_folder(tmp_path: Path, umask: int) -> None:
    w = RunWriter(tmp_path / "reports", environment=SAMPLE_ENVIRONMENT, target=SAMPLE_TARGET)
    w.add(sample_results()[0])
    w.finish()
    for name in ("report.json", "run.json", "results.jsonl"):
        assert oct(_mode(w.run_dir / name)) == oct(0o666 & ~umask), name


def test_a_file_written_over_a_private_one(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "new.json"
    target.write_text("{}")
    target.chmod(0o600)
    write_json(target, {"a": 1})
    assert oct(_mode(target)) == oct(0o666 & ~umask)
    assert [p.name for p in tmp_path.iterdir()] == ["new.json"]


def test_the_latest_pointer_file(tmp_path: Path, umask: int,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def no_symlink(*a: object, **k: object) -> None:
        raise OSError("symlinks not supported here")

    monkeypatch.setattr(os, "symlink", no_symlink)
    w = RunWriter(tmp_path / "reports", environment=SAMPLE_ENVIRONMENT, target=SAMPLE_TARGET)
    w.finish()
    assert oct(_mode(tmp_path / "reports" / "LATEST")) == oct(0o666 & ~umask)


@pytest.mark.parametrize("fmt", ["console", "md", "html"])
def test_report_output(tmp_path: Path, umask: int, fmt: str) -> None:
    if fmt == "html":
        pytest.importorskip("matplotlib")
    src = tmp_path / "report.json"
    src.write_text(json.dumps(sample_report()))
    out = tmp_path / "out" / f"report.{fmt}"
    assert report_command(src, fmt, out) == 3  # the sample has a hung rank
    assert oct(_mode(out)) == oct(0o666 & ~umask)
