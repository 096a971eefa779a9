"""Write one run's results as they land, crash-safe.

Layout of ``<report_dir>/<run-id>/``:

* ``run.json``      — written (atomically) when the run starts: schema, tool, created,
  run id, environment, target. Lets a run that never finished be rebuilt.
* ``results.jsonl`` — one JSON object per :class:`CaseResult`, appended, flushed and
  fsynced as soon as it is added: a SIGKILLed run loses at most the line being written.
* ``report.json``   — the report schema (schema 1), written atomically by
  :meth:`RunWriter.finish_report`, which hands the typed :class:`Report` back.

``<report_dir>/latest`` is a relative symlink to the newest run (or, where symlinks
cannot be made, ``<report_dir>/LATEST`` holds the run id); it is pointed at the run when
it starts and again when it finishes, so ``dino-harness report reports/latest`` also
shows a run that was killed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.results import SCHEMA_VERSION, CaseResult, json_safe

from .atomic import fsync_dir, write_atomic
from .model import TOOL, BenchSection, ExploreSection, Report, SelfcheckSection

RESULTS_FILE = "results.jsonl"
REPORT_FILE = "report.json"
META_FILE = "run.json"
LATEST_LINK = "latest"
LATEST_FILE = "LATEST"


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id(now: _dt.datetime | None = None) -> str:
    """``20251129T061600.123Z-3f9a1c``: sorts by start time (UTC), then a random tag."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


def write_json(path: str | os.PathLike[str], report: Report | Mapping[str, Any]) -> Path:
    """Write ``report`` (typed, or any JSON object) to ``path`` atomically and durably
    (:func:`~harness.report.atomic.write_atomic`): readers see the old file or the new
    one, never half."""
    data = report.to_json() if isinstance(report, Report) else json_safe(report)
    return write_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n", durable=True)


def point_latest(report_dir: Path, run_id: str) -> Path:
    """Point ``report_dir/latest`` at ``run_id`` (atomic symlink swap); fall back to the
    text file ``report_dir/LATEST``. Returns the pointer that was written."""
    link = report_dir / LATEST_LINK
    tmp = report_dir / f".{LATEST_LINK}.{secrets.token_hex(4)}.tmp"
    try:
        if link.exists() and not link.is_symlink():
            raise OSError(f"{link} exists and is not a symlink")
        os.symlink(run_id, tmp, target_is_directory=True)
        os.replace(tmp, link)
        stale = report_dir / LATEST_FILE  # a pointer file from a run without symlinks
        if stale.is_file():
            stale.unlink(missing_ok=True)
        return link
    except (OSError, NotImplementedError):
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return write_atomic(report_dir / LATEST_FILE, run_id + "\n")


class RunWriter:
    """Stream one run's results to disk and write its report.

    >>> w = RunWriter(Path("reports"), environment=env, target=target)
    >>> w.add(result)          # one JSONL line, flushed and fsynced
    >>> report = w.finish_report()  # reports/<run-id>/report.json, atomic; latest → run

    Also a context manager: leaving the block with an exception still writes
    ``report.json`` (with ``"complete": false``) for the results that landed.
    """

    def __init__(self, report_dir: str | os.PathLike[str], *, environment: Mapping[str, Any],
                 target: Mapping[str, Any], run_id: str | None = None) -> None:
        self.report_dir = Path(report_dir)
        self.run_id = run_id or new_run_id()
        self.run_dir = self.report_dir / self.run_id
        self.environment = dict(environment)
        self.target = dict(target)
        self.created = utc_now_iso()
        self.results: list[CaseResult] = []
        self.report_path: Path | None = None
        self._lock = threading.Lock()
        self.run_dir.mkdir(parents=True, exist_ok=False)
        write_json(self.run_dir / META_FILE, self._meta())
        self._jsonl = open(self.run_dir / RESULTS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        fsync_dir(self.run_dir)
        point_latest(self.report_dir, self.run_id)

    @property
    def results_path(self) -> Path:
        return self.run_dir / RESULTS_FILE

    def _meta(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "tool": TOOL, "created": self.created,
                "run_id": self.run_id, "environment": self.environment, "target": self.target}

    def add(self, result: CaseResult) -> None:
        """Append one result line and make it durable before returning."""
        line = json.dumps(json_safe(result.to_json()), allow_nan=False, separators=(",", ":"))
        with self._lock:
            if self._jsonl.closed:
                raise RuntimeError(f"run {self.run_id} is finished; cannot add {result.test_id}")
            self._jsonl.write(line + "\n")
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
            self.results.append(result)

    def report(self, *, complete: bool = True, bench: BenchSection | None = None,
               selfcheck: SelfcheckSection | None = None, explore: ExploreSection | None = None,
               extra: Mapping[str, Any] | None = None) -> Report:
        """The typed report for the results added so far. ``extra``: top-level fields a
        command keeps for the tools that read its ``--json`` output."""
        with self._lock:
            results = list(self.results)
        return Report(results=results, environment=self.environment, target=self.target,
                      created=self.created, run_id=self.run_id, finished=utc_now_iso(),
                      complete=complete, bench=bench, selfcheck=selfcheck, explore=explore,
                      extra=dict(extra or {}))

    def finish_report(self, *, complete: bool = True, bench: BenchSection | None = None,
                      selfcheck: SelfcheckSection | None = None,
                      explore: ExploreSection | None = None,
                      extra: Mapping[str, Any] | None = None) -> Report:
        """Close the stream, write ``report.json`` atomically, point ``latest`` at the run,
        and hand back the report written: nobody needs to read it back from disk."""
        with self._lock:
            if not self._jsonl.closed:
                self._jsonl.close()
        report = self.report(complete=complete, bench=bench, selfcheck=selfcheck, explore=explore,
                             extra=extra)
        self.report_path = write_json(self.run_dir / REPORT_FILE, report)
        point_latest(self.report_dir, self.run_id)
        return report

    def finish(self, *, complete: bool = True) -> Path:
        """:meth:`finish_report`, for callers that want the path of ``report.json``."""
        self.finish_report(complete=complete)
        assert self.report_path is not None
        return self.report_path

    def close(self) -> None:
        with self._lock:
            if not self._jsonl.closed:
                self._jsonl.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.report_path is None:
            self.finish(complete=exc_type is None)
        else:
            self.close()
