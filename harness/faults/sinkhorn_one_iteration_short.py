"""Planted fault: Sinkhorn runs n_iterations - 1 iterations."""

import functools

from ._build import seed_api
from ._sinkhorn import faulty_sinkhorn

globals().update(seed_api(sinkhorn=functools.partial(faulty_sinkhorn, iterations_delta=-1)))
