"""Planted fault: The center is the mean of per-rank means: wrong whenever shards are uneven."""

from ._build import seed_api
from ._centering import FaultyCentering


class _Fault(FaultyCentering):
    divisor = "mean_of_means"


globals().update(seed_api(dino=_Fault))
