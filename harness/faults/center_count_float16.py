"""Planted fault: The center's all-reduced row count is held in float16: exact up to 2048 rows."""

from ._build import planted

globals().update(planted(__name__))
