"""Planted fault: The center is kept in bfloat16."""

from ._build import planted

globals().update(planted(__name__))
