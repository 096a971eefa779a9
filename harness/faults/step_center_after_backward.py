"""Planted fault: The step issues update_center after backward: the same numbers, nothing hidden."""

from ._build import planted

globals().update(planted(__name__))
