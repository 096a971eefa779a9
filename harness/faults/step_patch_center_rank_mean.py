"""Planted fault: The step hands the iBOT center a [1, M, K] tensor averaged over dim 1 (DINOv2's center): the rank's mean token."""

from ._build import planted

globals().update(planted(__name__))
