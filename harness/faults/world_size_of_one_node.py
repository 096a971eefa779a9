"""Planted fault: The loss is scaled by the ranks of one 8-GPU node (LOCAL_WORLD_SIZE), not the world size."""

from ._build import planted

globals().update(planted(__name__))
