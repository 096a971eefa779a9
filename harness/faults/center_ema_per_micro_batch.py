"""Planted fault: The center's EMA steps at every update_center (every micro-batch), not once per optimizer step."""

from ._build import planted

globals().update(planted(__name__))
