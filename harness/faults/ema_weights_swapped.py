"""Planted fault: The EMA weights are swapped: center = (1 - m) * center + m * batch_center."""

from ._build import seed_api
from ._centering import FaultyCentering


class _Fault(FaultyCentering):
    swap_ema = True


globals().update(seed_api(dino=_Fault))
