"""Planted fault: The CLS loss is normalised by the local batch, not scaled to the global one."""

from ._build import planted

globals().update(planted(__name__))
