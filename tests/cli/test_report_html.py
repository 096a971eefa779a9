"""Open the HTML report in a real headless Chromium: it renders the tables and the SVG
pictures, logs no console error, loads nothing, and the hostile case name stays text.

Skipped when no Chromium is installed (``apt-get install chromium``). Set
``DINO_HARNESS_SCREENSHOT=path.png`` to keep the screenshot for a look.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report import to_html
from harness.report.samples import sample_report, sample_results
from harness.results import CaseResult, Check

EVIL = "<script>alert(1)</script>"
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome",
              "google-chrome-stable")


def _chromium() -> str | None:
    for name in CANDIDATES:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (tried /usr/bin/chromium, "
                       "chromium, chromium-browser, google-chrome); install it to run the "
                       "browser test, e.g. `apt-get install -y chromium`"),
    pytest.mark.slow,
]


def _chrome(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "Uncaught" in line or "ERROR:CONSOLE" in line or "Refused to" in line
            or ":CONSOLE(" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("matplotlib")
    evil = CaseResult(EVIL, "cls", "gloo", 2, "fail", 0.1,
                      [Check("loss", 1.0, 1.0, 0.1, False, 0, comparison="dist_vs_single",
                             detail=EVIL)])
    report = sample_report(sample_results() + [evil])
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(to_html(report), encoding="utf-8")
    return path


def test_dom_has_tables_and_pictures_and_no_console_error(page: Path, tmp_path: Path) -> None:
    proc = _chrome(tmp_path, "--dump-dom", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<table" in dom and 'class="results"' in dom and 'class="checks"' in dom
    assert 'class="overlap"' in dom
    assert len(re.findall(r"<svg\b", dom)) == 3
    assert "FAIL" in dom and "sinkhorn-uneven" in dom and "signal SIGKILL" in dom
    # The hostile name is text in the DOM, never an element.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert not re.search(r"<script\b", dom, flags=re.I)
    assert _console_errors(proc.stderr) == []


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = _chrome(tmp_path, "--hide-scrollbars", "--window-size=1280,3800",
                   f"--screenshot={shot}", page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 50_000  # a real page, not a blank one
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _console_errors(proc.stderr) == []
    keep = os.environ.get("DINO_HARNESS_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
