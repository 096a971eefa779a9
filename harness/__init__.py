"""dino-harness: distributed correctness and performance tests for DINO-style losses."""

__version__ = "0.1.0"
