"""Planted fault: Sinkhorn divides by the rank-local sample count B: exact only when B is equal on every rank."""

from ._build import seed_api
from ._sinkhorn import seed_sinkhorn_local_count

globals().update(seed_api(sinkhorn=seed_sinkhorn_local_count))
