"""Planted fault: Sinkhorn shifts each sample by its own max and forgets the factor: inexact at finite iterations."""

from ._build import planted

globals().update(planted(__name__))
