"""Did a pool leave anything behind? Process checks for tests and self-checks (psutil).

A process "remains" if it exists and is not a zombie (a zombie has exited; it only waits
for its parent to read its status) whose threads have all exited.
"""

from __future__ import annotations

import os
import time

import psutil


def running(pids: list[int]) -> list[int]:
    """The pids of the list that are still running (exited and vanished pids excluded)."""
    return [pid for pid in pids if _running(pid)]


def _running(pid: int) -> bool:
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    # A killed multi-threaded process shows its main thread as a zombie while its other
    # threads are still exiting (and its files are still open): not gone until they are.
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def group_members(pgid: int) -> list[int]:
    """Every running process whose process group is pgid (the pool's workers and their children)."""
    members: list[int] = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and _running(pid):
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            pass
    return members


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of pids runs any more (at most timeout_s); returns those still running.

    Returns as soon as the last one exits: psutil waits on the processes, in short steps so
    that one that becomes a zombie (exited, not yet reaped) also counts as gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = running(pids)
        remaining = deadline - time.monotonic()
        if not alive or remaining <= 0:
            return alive
        procs = []
        for pid in alive:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=min(0.1, remaining))
