"""Planted fault: Sinkhorn's prototype (row) sums are not all-reduced."""

import functools

from ._build import seed_api
from ._sinkhorn import faulty_sinkhorn

globals().update(seed_api(sinkhorn=functools.partial(faulty_sinkhorn, reduce_rows=False)))
