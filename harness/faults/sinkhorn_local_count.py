"""Planted fault: Sinkhorn divides by the rank-local sample count B: exact only when B is equal on every rank."""

from ._build import planted

globals().update(planted(__name__))
