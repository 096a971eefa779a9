"""Planted fault: The EMA weights are swapped: center = (1 - m) * center + m * batch_center."""

from ._build import planted

globals().update(planted(__name__))
