"""Planted fault: The loss's all-reduced global count is held in float16: exact up to 2048, inf above 65504."""

from ._build import planted

globals().update(planted(__name__))
