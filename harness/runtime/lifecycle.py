"""Every live pool is killed when the parent leaves: at exit, on SIGTERM, on SIGINT.

A worker never outlives its parent even without this module (each one watches a
lifeline pipe, see worker.py), but without it a SIGTERMed parent would leave the pools'
temporary directories behind and a Ctrl-C would leave workers running until the
interpreter exits.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from typing import Any, Protocol


class LivePool(Protocol):
    """What cleanup needs of a pool (the pool registers itself; this module never imports it)."""

    def close(self) -> None: ...

    def kill(self) -> None: ...


_LOCK = threading.RLock()
_LIVE: set[LivePool] = set()
_ATEXIT_INSTALLED = False
_SIGNALS_INSTALLED = False
_PREVIOUS: dict[int, Any] = {}
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def register(pool: LivePool) -> None:
    with _LOCK:
        _LIVE.add(pool)
    install_handlers()


def unregister(pool: LivePool) -> None:
    with _LOCK:
        _LIVE.discard(pool)


def live_pools() -> list[LivePool]:
    with _LOCK:
        return list(_LIVE)


def close_all() -> None:
    """Gracefully close every live pool of this process, then stop the zygote."""
    for pool in live_pools():
        try:
            pool.close()
        except Exception:
            pass
    from harness.runtime.zygote import stop_zygote

    stop_zygote()


def kill_all() -> None:
    """Kill every live pool at once (no graceful stop): for signals."""
    for pool in live_pools():
        try:
            pool.kill()
        except Exception:
            pass


def install_handlers() -> None:
    """atexit always; signal handlers only from the main thread (Python's rule).

    Handlers chain: after killing the pools, the previous handler runs (SIGINT's default
    raises KeyboardInterrupt), and a signal whose previous action was the default is
    re-raised with the default action, so the process still dies of SIGTERM.
    """
    global _ATEXIT_INSTALLED, _SIGNALS_INSTALLED
    with _LOCK:
        if not _ATEXIT_INSTALLED:
            atexit.register(close_all)
            _ATEXIT_INSTALLED = True
        if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
            return
        for signum in HANDLED_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is None:  # installed from C: we could not chain to it
                continue
            _PREVIOUS[signum] = previous
            signal.signal(signum, _on_signal)
        _SIGNALS_INSTALLED = True


def _on_signal(signum: int, frame: Any) -> None:
    kill_all()
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # The previous action was the default one: die of the same signal. (The zygote is
    # not stopped here: this handler may have interrupted a call holding its lock, and
    # it exits by itself when our end of its socket closes with us.)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
