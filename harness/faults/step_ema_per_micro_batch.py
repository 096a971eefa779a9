"""Planted fault: The step updates the teacher EMA every micro-batch, not once per optimizer step."""

from ._build import planted

globals().update(planted(__name__))
