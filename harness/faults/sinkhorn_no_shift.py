"""Planted fault: Sinkhorn takes exp(logits / temp) without a shift: overflow to inf, then NaN."""

import functools

from ._build import seed_api
from ._sinkhorn import faulty_sinkhorn

globals().update(seed_api(sinkhorn=functools.partial(faulty_sinkhorn, shift="none")))
