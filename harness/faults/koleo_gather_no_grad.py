"""Planted fault: KoLeo all-gathers the features without autograd: the neighbours' gradients are lost."""

from ._build import planted

globals().update(planted(__name__))
