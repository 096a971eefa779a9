"""Planted fault: The teacher's Sinkhorn normalises each micro-batch alone, not the step's whole batch."""

from ._build import planted

globals().update(planted(__name__))
