"""Planted fault: The all-reduced sum is divided by the local row count: the world size is missing."""

from ._build import planted

globals().update(planted(__name__))
