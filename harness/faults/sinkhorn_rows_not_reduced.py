"""Planted fault: Sinkhorn's prototype (row) sums are not all-reduced."""

from ._build import planted

globals().update(planted(__name__))
