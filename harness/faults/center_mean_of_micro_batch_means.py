"""Planted fault: The step's batch center is the mean of per-micro-batch means: wrong on unequal micro-batches."""

from ._build import planted

globals().update(planted(__name__))
