"""Planted fault: The center is kept in bfloat16."""

import torch

from ._build import seed_api
from ._centering import FaultyCentering


class _Fault(FaultyCentering):
    center_dtype = torch.bfloat16


globals().update(seed_api(dino=_Fault))
