"""What several commands parse the same way: world sizes, case paths, the plan."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import kinds  # noqa: F401 - registers the case kinds before any case file is read
from ..cases import Case, expand
from ..errors import BackendUnavailable, NotEnoughMemory, UsageError
from ..paths import DEFAULT_FAMILY, FAMILIES, catalogue_dir


def world_sizes_arg(text: str | None, backend: str,
                    family: str = DEFAULT_FAMILY) -> list[int] | None:
    """``--world-sizes`` ("1,2,4" or "auto") as a usage error when malformed; not given,
    the family's default (None: each case's own)."""
    from ..runtime.spec import parse_world_sizes

    text = text if text is not None else FAMILIES[family]
    if text is None:
        return None
    try:
        return parse_world_sizes(text, backend)
    except ValueError as exc:
        raise UsageError(f"--world-sizes: {exc}") from None


def case_paths(paths: Sequence[str] | None, subdir: str = DEFAULT_FAMILY) -> list[Path]:
    """``--cases`` if given (every path must exist), else the catalogue's ``subdir`` (a
    family, or ``overlap``)."""
    if paths:
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise UsageError(f"--cases: no such file or folder: {', '.join(missing)}")
        return [Path(p) for p in paths]
    return [catalogue_dir(subdir)]


def require_runnable(backend: str, world_sizes: Sequence[int]) -> None:
    """Exit 2 before any case runs when ``backend`` can run none of ``world_sizes`` here:
    a run that could only skip is not a green one. Some sizes unavailable (4 NCCL ranks on
    2 GPUs) is fine: those cases skip with the reason."""
    from ..runtime.spec import PoolSpec

    reasons = {ws: PoolSpec(backend, ws).unavailable_reason() for ws in world_sizes}
    if world_sizes and all(reasons.values()):
        distinct = sorted(set(reasons.values()), key=list(reasons.values()).index)
        raise BackendUnavailable(
            f"--backend {backend}: nothing can run here at world sizes "
            f"{','.join(map(str, world_sizes))}: {'; '.join(distinct)}"
        )


def require_memory(plan: Sequence[tuple[Case, str, int]], probe: Any = None,
                   floor_mb: float | None = None) -> None:
    """Exit 2 before any case runs when a planned case's estimated footprint
    (harness/cases/footprint.py) exceeds the memory this machine has free above the
    runtime guard's floor: the kernel's OOM killer must never be the first to know."""
    from ..cases.footprint import footprint
    from ..runtime import memory

    free, floor = memory.headroom_mb(probe, floor_mb)
    too_big = [(case.test_id(backend, w), footprint(case, w)) for case, backend, w in plan]
    too_big = [(test_id, fp) for test_id, fp in too_big if fp.total_mb > free]
    if too_big:
        worst = "; ".join(f"{test_id} needs an estimated {fp.total_mb / 1024:.1f} GiB "
                          f"(its data {fp.data_mb / 1024:.2f} GiB)" for test_id, fp in too_big[:5])
        more = f" and {len(too_big) - 5} more" if len(too_big) > 5 else ""
        raise NotEnoughMemory(
            f"not enough memory for {len(too_big)} planned case(s): {free / 1024:.1f} GiB is "
            f"free above the guard's {floor / 1024:.1f} GiB floor; {worst}{more}. Narrow "
            "--world-sizes or --filter, free memory, or lower DINO_HARNESS_MEMORY_FLOOR_MB "
            "(estimates: harness/cases/footprint.py)")


def plan_cases(cases: list[Case], backend: str, world_sizes: list[int] | None,
               text: str | None) -> list[tuple[Case, str, int]]:
    plan = expand(cases, [backend], world_sizes)
    if text:
        plan = [(c, b, w) for c, b, w in plan if text in c.test_id(b, w)]
    if not plan:
        raise UsageError(
            f"no case matches backend {backend!r}, world sizes {world_sizes}"
            + (f" and --filter {text!r}" if text else "")
        )
    return plan


def announce(target: Any) -> None:
    """Say which style the target is driven as, and why (``--api auto`` says what it chose)."""
    print(f"# target {target.spec.impl}: {target.choice}", flush=True)
    if target.spec.step:
        print(f"# step function {target.spec.step} (the step kind drives it)", flush=True)
