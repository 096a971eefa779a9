"""Planted fault: Every collective spans the whole world, ignoring the process group it is handed."""

from ._build import planted

globals().update(planted(__name__))
