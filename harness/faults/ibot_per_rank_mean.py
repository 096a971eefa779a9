"""Planted fault: The iBOT loss is the mean over this rank's masked patches."""

from ._build import planted

globals().update(planted(__name__))
