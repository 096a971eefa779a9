"""Planted fault: The all-reduced sum is divided by the local row count: the world size is missing."""

from ._build import seed_api
from ._centering import FaultyCentering


class _Fault(FaultyCentering):
    divisor = "local"


globals().update(seed_api(dino=_Fault))
