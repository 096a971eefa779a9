"""Planted fault: The batch center is never all-reduced: each rank centers on its own shard."""

from ._build import seed_api
from ._centering import FaultyCentering


class _Fault(FaultyCentering):
    reduce = False


globals().update(seed_api(dino=_Fault))
