"""What a report records about the machine and the target. Never touches the network,
never initialises CUDA in the calling process (GPU names come from ``nvidia-smi``; torch's
CUDA API is only a fallback), and never raises: an unknown field is ``None``."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

_SUBPROCESS_TIMEOUT_S = 5.0


def _run(cmd: list[str], cwd: str | None = None) -> str | None:
    """stdout of a short local command, or None if it is missing, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=_SUBPROCESS_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def nccl_version() -> str | None:
    """"2.21.5", or None on a build without NCCL."""
    try:
        import torch

        if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
            return None
        v = torch.cuda.nccl.version()
    except Exception:
        return None
    if isinstance(v, tuple):
        return ".".join(str(x) for x in v)
    if isinstance(v, int):  # old torch: 2708 → 2.7.8; NCCL ≥ 2.9: 21903 → 2.19.3
        if v >= 10000:
            return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
        return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"
    return str(v)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_names() -> list[str]:
    """GPU names without creating a CUDA context here (workers may be forked later)."""
    out = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    if out is not None:
        return [line.strip() for line in out.splitlines() if line.strip()]
    try:
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:
        pass
    return []


def collect_environment(backend: str) -> dict[str, Any]:
    """The ``environment`` object of a report (the report schema, schema 1) plus a few added fields."""
    try:
        import torch

        torch_version: str | None = str(torch.__version__)
        cuda_version = getattr(torch.version, "cuda", None)
    except Exception:
        torch_version, cuda_version = None, None
    cpu = cpu_model()
    gpus = gpu_names() if backend == "nccl" else []
    return {
        "torch": torch_version,
        "python": platform.python_version(),
        "backend": backend,
        "nccl": nccl_version() if backend == "nccl" or cuda_version else None,
        "devices": gpus if gpus else [cpu],
        "hostname": socket.gethostname(),
        # Added fields.
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cuda": cuda_version,
        "python_executable": sys.executable,
    }


# ---------------------------------------------------------------------------- target

_VERSION_RE = re.compile(r"""^__version__\s*[:=][^=]*?["']([^"']+)["']""", re.M)


def _target_origin(impl: str) -> tuple[Path | None, str | None]:
    """(file that defines the target, top-level package name) without importing it."""
    if impl.endswith(".py") or os.sep in impl or "/" in impl:
        p = Path(impl).expanduser()
        return (p.resolve() if p.exists() else None), None
    top = impl.split(".")[0]
    try:
        spec = importlib.util.find_spec(impl)
    except (ImportError, ValueError, AttributeError):
        spec = None
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None, top
    return Path(spec.origin).resolve(), top


def _distribution_version(top: str) -> str | None:
    try:
        for dist in importlib.metadata.packages_distributions().get(top, []):
            return importlib.metadata.version(dist)
    except Exception:
        pass
    return None


def _source_version(origin: Path, top: str | None) -> str | None:
    """``__version__ = "..."`` in the module, its package, or the top-level package."""
    candidates = [origin]
    for parent in origin.parents:
        init = parent / "__init__.py"
        if init.is_file():
            candidates.append(init)
            if top and parent.name == top:
                break
        else:
            break
    for path in candidates:
        try:
            m = _VERSION_RE.search(path.read_text(encoding="utf-8", errors="replace")[:100_000])
        except OSError:
            continue
        if m:
            return m.group(1)
    return None


def git_info(path: Path) -> dict[str, Any]:
    """{"git_commit", "git_dirty"} of the checkout holding ``path`` (local git only).
    A file git does not track there (a package pip installed into a checkout's .venv, a
    scratch file) has no commit: that checkout's HEAD says nothing about its code."""
    folder = path if path.is_dir() else path.parent
    commit = _run(["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"])
    if commit is None:
        return {}
    if _run(["git", "-C", str(folder), "ls-files", "--error-unmatch", "--", str(path)]) is None:
        return {}
    info: dict[str, Any] = {"git_commit": commit.strip()}
    status = _run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"])
    if status is not None:
        info["git_dirty"] = bool(status.strip())
    return info


def describe_target(impl: str, api: str) -> dict[str, Any]:
    """The ``target`` object of a report: impl, api, and where known its file, version and
    git commit. The target module is not imported."""
    out: dict[str, Any] = {"impl": impl, "api": api}
    try:
        origin, top = _target_origin(impl)
        if origin is not None:
            out["path"] = str(origin)
        version = _distribution_version(top) if top else None
        if version is None and origin is not None:
            version = _source_version(origin, top)
        if version:
            out["version"] = version
        if origin is not None:
            out.update(git_info(origin))
    except Exception:  # describing the target must never stop a run
        pass
    return out
