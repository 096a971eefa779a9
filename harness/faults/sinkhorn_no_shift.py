"""Planted fault: Sinkhorn takes exp(logits / temp) without a shift: overflow to inf, then NaN."""

from ._build import planted

globals().update(planted(__name__))
