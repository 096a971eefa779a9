"""Planted fault: The step applies a center update every micro-batch, not once per optimizer step."""

from ._build import planted

globals().update(planted(__name__))
