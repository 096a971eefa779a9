"""LiveView: plain nccl-tests-style lines in CI / when not a TTY, rich Live otherwise."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from harness.report import LiveView
from harness.report.samples import sample_results


def _run(view: LiveView) -> None:
    results = sample_results()
    with view:
        view.start(len(results))
        for r in results:
            view.case_started(r.test_id, f"gloo pool ws{r.world_size} (warm)")
            view.case_finished(r)


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_plain_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)  # a TTY, but CI wins
    view = LiveView(console)
    assert view.plain
    _run(view)
    lines = buf.getvalue().splitlines()
    assert lines[0] == f"# dino-harness: {len(sample_results())} cases"
    assert len(lines) == 1 + len(sample_results())  # one line per measurement
    assert "PASS centering-ema-uneven[gloo-ws2] 0.34s worst 0.021×tol" in lines
    assert any(line.startswith("FAIL sinkhorn-uneven[gloo-ws4]") for line in lines)
    assert "\x1b[" not in buf.getvalue()


def test_plain_when_not_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    buf = io.StringIO()
    view = LiveView(Console(file=buf))
    assert view.plain
    _run(view)
    assert len(buf.getvalue().splitlines()) == 1 + len(sample_results())


def test_rich_live_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    view = LiveView(console)
    assert not view.plain
    _run(view)
    out = buf.getvalue()
    assert "FAIL sinkhorn-uneven[gloo-ws4]" in out and "ERROR centering-skip-collective" in out
    assert f"{len(sample_results())}/{len(sample_results())}" in out  # progress done/total
    assert "2 failed" in out and "1 error" in out
    assert len(view.results) == len(sample_results())


def test_running_case_and_pool_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    r = sample_results()[0]
    with LiveView(console) as view:
        view.start(3)
        view.case_started(r.test_id, "gloo pool ws1 #0")
        assert "▶ centering-ema-uneven[gloo-ws1]" in buf.getvalue()
        assert "on gloo pool ws1 #0" in buf.getvalue()
        view.case_finished(r)
