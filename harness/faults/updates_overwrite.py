"""Planted fault: A second update_center before apply drops the first batch instead of combining both."""

from ._build import seed_api
from ._centering import FaultyCentering


class _Fault(FaultyCentering):
    accumulate = False


globals().update(seed_api(dino=_Fault))
