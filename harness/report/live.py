"""The live view of a run: a progress bar with ETA, the cases running now and on which
pool, and each verdict printed as it lands.

In CI (``CI`` is "true"/"1") or when stdout is not a terminal it prints plain lines
instead, one per result, nccl-tests style, and flushes each one::

    # dino-harness: 12 cases
    PASS sinkhorn-uneven[gloo-ws2] 0.31s worst 0.02×tol
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from harness.results import CaseResult, summarise

from .fmt import STATUS_STYLE
from .line import result_line


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


class LiveView:
    """Use as ``with LiveView() as view: view.start(n); ...``. Thread-safe."""

    def __init__(self, console: Console | None = None, *, plain: bool | None = None,
                 file: IO[str] | None = None) -> None:
        self.console = console if console is not None else Console(file=file)
        if plain is None:
            plain = in_ci() or not self.console.is_terminal
        self.plain = plain
        self._file = file or self.console.file
        self._lock = threading.RLock()
        self._running: dict[str, tuple[str, float]] = {}
        self._results: list[CaseResult] = []
        self._total = 0
        self._live: Live | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._t0 = time.monotonic()

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- events --------------------------------------------------------------------------

    def start(self, total: int) -> None:
        with self._lock:
            self._total = total
            self._t0 = time.monotonic()
            if self.plain:
                self._print_plain(f"# dino-harness: {total} case{'s' if total != 1 else ''}")
                return
            self._progress = Progress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._progress.add_task("cases", total=total, counts="")
            self._live = Live(console=self.console, refresh_per_second=4, transient=False,
                              get_renderable=self._renderable, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start()

    def case_started(self, test_id: str, pool_desc: str) -> None:
        with self._lock:
            self._running[test_id] = (pool_desc, time.monotonic())
            self._refresh()

    def case_finished(self, result: CaseResult) -> None:
        with self._lock:
            self._running.pop(result.test_id, None)
            self._results.append(result)
            line = result_line(result)
            if self.plain:
                self._print_plain(line)
                return
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, advance=1, counts=self._counts_text())
            status = result.status
            label, _, rest = line.partition(" ")
            text = Text.assemble((label, STATUS_STYLE.get(status, "bold")), " ", rest)
            self.console.print(text, soft_wrap=True)
            self._refresh()

    def stop(self) -> None:
        with self._lock:
            if self._live is not None:
                self._running.clear()
                self._refresh()
                self._live.stop()
                self._live = None

    # -- rendering ---------------------------------------------------------------------

    @property
    def results(self) -> list[CaseResult]:
        return list(self._results)

    def _counts_text(self) -> str:
        s = summarise(self._results)
        parts = [f"[green]{s['passed']} passed[/]"]
        if s["failed"]:
            parts.append(f"[red]{s['failed']} failed[/]")
        if s["errors"]:
            parts.append(f"[magenta]{s['errors']} error{'' if s['errors'] == 1 else 's'}[/]")
        if s["skipped"]:
            parts.append(f"[yellow]{s['skipped']} skipped[/]")
        return " ".join(parts)

    def _renderable(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self._progress is not None:
            parts.append(self._progress)
        if self._running:
            t = Table.grid(padding=(0, 2))
            t.add_column(style="cyan")
            t.add_column()
            t.add_column(style="dim", justify="right")
            now = time.monotonic()
            for tid, (pool, t0) in list(self._running.items()):
                t.add_row(Text("▶ " + tid), Text(f"on {pool}"), Text(f"{now - t0:.1f}s"))
            parts.append(t)
        return Group(*parts)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def _print_plain(self, line: str) -> None:
        f = self._file or sys.stdout
        f.write(line + "\n")
        f.flush()
