"""Planted fault: The masked iBOT loss is divided by this rank's image count, as DINOv2's forward_masked does."""

from ._build import planted

globals().update(planted(__name__))
