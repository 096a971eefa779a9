"""The one way the report layer writes a whole file: atomically, with the mode the umask
gives.

A temporary file in the same folder is written, then ``os.replace``d over the target,
so a reader sees the old file or the new one, never half. The temporary file is created
with mode 0666 and the process umask applied by the kernel (``tempfile.mkstemp`` would
make it 0600, and the rename would carry that private mode to report.json or a
``report --output`` file that a CI artifact or a shared folder must read).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (module docstring); ``durable``: fsync the
    file and its folder, so the new contents survive a power loss."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, _CREATE, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path
