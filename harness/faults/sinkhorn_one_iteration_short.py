"""Planted fault: Sinkhorn runs n_iterations - 1 iterations."""

from ._build import planted

globals().update(planted(__name__))
