"""What a rank pool is (backend x world size) and what a rank program receives.

Nothing here imports torch at module import time: the pytest plugin and the CLI read
these types before they know whether they will start any workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class PoolSpec:
    """A pool's identity: ranks started with the same spec are interchangeable.

    `pg_timeout_s` is the process-group timeout. Keep it below the run deadlines: on gloo a
    mismatched collective then fails as an error (with a Python traceback pointing at the
    collective) on the waiting ranks before the deadline turns it into a hang.
    """

    backend: str
    world_size: int
    pg_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; expected one of {BACKENDS}")
        if int(self.world_size) != self.world_size or self.world_size < 1:
            raise ValueError(f"world_size must be a positive integer, got {self.world_size!r}")
        if not self.pg_timeout_s > 0:
            raise ValueError(f"pg_timeout_s must be positive, got {self.pg_timeout_s!r}")

    @property
    def label(self) -> str:
        return f"{self.backend}-ws{self.world_size}"

    def unavailable_reason(self) -> str | None:
        """Why this spec cannot run on this machine, or None when it can.

        Callers skip (not fail) a spec with a reason: a CPU-only CI has no NCCL, and a
        node with 2 GPUs cannot run 4 NCCL ranks.
        """
        try:
            import torch.distributed as dist
        except ImportError as exc:  # pragma: no cover - torch is a hard dependency
            return f"torch.distributed cannot be imported: {exc}"
        if not dist.is_available():
            return "this torch build has no torch.distributed"
        if self.backend == "gloo":
            if not dist.is_gloo_available():
                return "this torch build has no gloo backend"
            return None
        if not dist.is_nccl_available():
            return "this torch build has no NCCL backend (CPU-only build?)"
        gpus = visible_gpu_count()
        if gpus == 0:
            return "NCCL needs CUDA GPUs and none are visible"
        if self.world_size > gpus:
            return (
                f"NCCL needs one GPU per rank: world size {self.world_size} > {gpus} visible "
                "GPU(s) (NCCL cannot put two ranks on one GPU)"
            )
        return None


@dataclass
class RankContext:
    """What a rank program receives. The default process group is already initialised."""

    rank: int
    world_size: int
    backend: str
    device: torch.device  # cpu for gloo, cuda:<local_rank> for nccl
    local_rank: int = 0  # == rank in a pool; LOCAL_RANK under torchrun
    mode: str = "pool"  # "pool" (warm worker) or "inline" (launched by torchrun)


def visible_gpu_count() -> int:
    """CUDA devices this process may use (honours CUDA_VISIBLE_DEVICES); 0 without CUDA."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return 0
    try:
        if not torch.cuda.is_available():
            return 0
        return int(torch.cuda.device_count())
    except Exception:  # a broken driver reads as "no GPU", not as a crash of the caller
        return 0


def usable_cpu_count() -> int:
    """CPUs this process may run on: the affinity mask in containers, else os.cpu_count()."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_rank(world_size: int) -> int:
    """Intra-op threads per rank, so that W ranks do not oversubscribe the CPUs W times."""
    return max(1, usable_cpu_count() // max(1, world_size))


def auto_world_sizes(backend: str) -> list[int]:
    """The world sizes `--world-sizes auto` means on this machine.

    NCCL: 1 .. visible GPUs (one GPU per rank). gloo: 1, 2, 4, where 4 is dropped on a
    single-CPU machine (four ranks time-slicing one core measure the scheduler, not the code).
    """
    if backend == "nccl":
        return list(range(1, visible_gpu_count() + 1))
    if backend == "gloo":
        cap = max(2, 2 * usable_cpu_count())
        return [n for n in (1, 2, 4) if n <= cap]
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def parse_world_sizes(text: str, backend: str) -> list[int]:
    """Parse "1,2,4" or "auto" (as the CLI and the pytest plugin accept it)."""
    text = text.strip()
    if text == "auto":
        return auto_world_sizes(backend)
    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            n = int(part)
        except ValueError:
            raise ValueError(f"bad world size {part!r} in {text!r}: expected integers or 'auto'") from None
        if n < 1:
            raise ValueError(f"bad world size {n} in {text!r}: must be >= 1")
        if n not in sizes:
            sizes.append(n)
    if not sizes:
        raise ValueError(f"no world sizes in {text!r}")
    return sizes


def pg_timeout_for(deadline_s: float | None, default_s: float = 30.0) -> float:
    """The process-group timeout for a run deadline: well below it, so that a collective
    mismatch fails as an error with a traceback before the deadline calls it a hang."""
    if deadline_s is None:
        return default_s
    return max(1.0, min(default_s, 0.5 * deadline_s))
