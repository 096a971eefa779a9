"""Planted fault: Sinkhorn shifts each sample by its own max and forgets the factor: inexact at finite iterations."""

import functools

from ._build import seed_api
from ._sinkhorn import faulty_sinkhorn

globals().update(seed_api(sinkhorn=functools.partial(faulty_sinkhorn, shift="per_sample")))
