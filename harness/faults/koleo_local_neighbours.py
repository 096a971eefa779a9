"""Planted fault: KoLeo searches each sample's nearest neighbours in its rank's own batch only."""

from ._build import planted

globals().update(planted(__name__))
