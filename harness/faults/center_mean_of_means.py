"""Planted fault: The center is the mean of per-rank means: wrong whenever shards are uneven."""

from ._build import planted

globals().update(planted(__name__))
