"""Planted fault: The KoLeo loss is the mean over the rank's own samples, not scaled to the global batch."""

from ._build import planted

globals().update(planted(__name__))
