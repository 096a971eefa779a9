"""Negative control of the overlap benchmark: "fake async" centering.

The reference with one switch flipped (``center_async=False``): ``update_center``
all-reduces the center statistics *synchronously*, so ``apply_center_update`` never waits
after backward -- and yet nothing of the all-reduce is hidden: it all ran inside the
issuing call. Numerically it is the reference (every correctness check passes); only the
overlap metric can tell it apart (hidden_fraction ~ 0, where the reference hides most).
"""

from . import FAKE_ASYNC
from ._build import seed_api

globals().update(seed_api(FAKE_ASYNC))
