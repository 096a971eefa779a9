"""Planted fault: The iBOT loss is the mean over this rank's masked patches."""

from ._build import seed_api
from ._losses import IbotPerRankMean

globals().update(seed_api(ibot=IbotPerRankMean))
