"""Planted fault: Each micro-batch's loss is weighed 1 / M, not by its share of the step: a mean of per-micro-batch means."""

from ._build import planted

globals().update(planted(__name__))
