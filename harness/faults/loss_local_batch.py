"""Planted fault: The CLS loss is normalised by the local batch, not scaled to the global one."""

from ._build import seed_api
from ._losses import LocalBatchNormalised

globals().update(seed_api(dino=LocalBatchNormalised))
