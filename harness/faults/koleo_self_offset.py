"""Planted fault: KoLeo masks each sample's self-match at rank x local batch: wrong on uneven shards."""

from ._build import planted

globals().update(planted(__name__))
