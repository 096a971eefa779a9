"""Planted fault: A second update_center before apply drops the first batch instead of combining both."""

from ._build import planted

globals().update(planted(__name__))
