"""How ranks split the global batch: consecutive slices in rank order."""

from __future__ import annotations

import numpy as np

from .validate import is_int


def per_rank(sizes: tuple[int, ...], world_size: int) -> list[int]:
    """Rank r's count is ``sizes[r % len(sizes)]``."""
    check_world_size(world_size)
    return [sizes[r % len(sizes)] for r in range(world_size)]


def micro_split(counts: list[int], micro: int | tuple[tuple[int, ...], ...]) -> list[list[int]]:
    """Every rank's micro-batch sizes of its ``counts[r]`` rows (the ``micro_batches`` key).

    An int M cuts each rank's rows into M consecutive micro-batches of ``ceil(n / M)``
    rows, the last ones shorter (empty where M > n): every rank makes M calls, an empty
    one too. Explicit sizes give rank r ``micro[r % len(micro)]`` (validated against the
    counts when the case is loaded)."""
    if isinstance(micro, int):
        return [[max(0, min(-(-n // micro), n - -(-n // micro) * m)) for m in range(micro)]
                for n in counts]
    return [list(micro[r % len(micro)]) for r in range(len(counts))]


def check_world_size(world_size: int) -> None:
    if not is_int(world_size) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")


def shard_range(sizes: list[int], rank: int) -> range:
    """The global sample indexes rank ``rank`` holds when ranks hold ``sizes`` in rank order."""
    if not 0 <= rank < len(sizes):
        raise ValueError(f"rank must be in [0, {len(sizes)}), got {rank}")
    start = sum(sizes[:rank])
    return range(start, start + sizes[rank])


def shard(array: np.ndarray, sizes: list[int], rank: int, axis: int) -> np.ndarray:
    """Rank ``rank``'s slice of ``array`` along ``axis`` when ranks hold ``sizes`` in rank
    order (a copy, contiguous). ``sum(sizes)`` must equal the axis length."""
    arr = np.asarray(array)
    ax = axis if axis >= 0 else arr.ndim + axis
    if not 0 <= ax < arr.ndim:
        raise ValueError(f"axis {axis} out of range for an array of shape {arr.shape}")
    if any((not is_int(s)) or s < 0 for s in sizes):
        raise ValueError(f"sizes must be ints >= 0, got {sizes}")
    if sum(sizes) != arr.shape[ax]:
        raise ValueError(
            f"sizes {sizes} sum to {sum(sizes)} but axis {axis} of shape {arr.shape} has "
            f"{arr.shape[ax]} entries"
        )
    if not 0 <= rank < len(sizes):
        raise ValueError(f"rank must be in [0, {len(sizes)}), got {rank}")
    start = sum(sizes[:rank])
    index = [slice(None)] * arr.ndim
    index[ax] = slice(start, start + sizes[rank])
    return np.ascontiguousarray(arr[tuple(index)])
