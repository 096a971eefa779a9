"""Planted fault: The step's loss is the plain mean of its micro-batch losses, not weighed by their rows."""

from ._build import planted

globals().update(planted(__name__))
