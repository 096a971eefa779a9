"""Planted fault: The CLS loss pairs each view with itself too (s == t not excluded)."""

from ._build import planted

globals().update(planted(__name__))
