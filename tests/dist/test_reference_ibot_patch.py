"""The reference's iBOT patch center (``iBOTPatchCenter``) on 1-4 ranks: the float64
single-process golden on the whole batch, identical on every rank, the CLS head's center
bit for bit, with a rank that has no masked token (it still joins every all-reduce; a
rank that skipped one would hang the others)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import golden

K = 16
#: Masked tokens per rank for the patch center: rank 1 has none.
TOKENS = [6, 0, 3, 9]


@pytest.mark.world_size(1, 2, 3, 4)
def test_patch_center_is_the_global_token_mean_on_every_rank(dist_run, dist_world_size):
    rng = np.random.default_rng(13)
    steps = [rng.normal(size=(sum(TOKENS), K)) + step for step in range(3)]
    out = dist_run("tests.dist.programs:patch_center", {"tokens": TOKENS, "steps": steps})

    rows = sum(TOKENS[:dist_world_size])
    want = golden.center_sequence([step[:rows] for step in steps], 0.9)
    for rank in out:
        assert rank["same_as_cls"]  # one mechanism: the CLS head's center, bit for bit
        assert rank["centers"][0] is None  # no center before the first apply
        for got, expected in zip(rank["centers"][1:], want, strict=True):
            np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
        for got, first in zip(rank["centers"][1:], out[0]["centers"][1:], strict=True):
            assert np.array_equal(got.numpy(), first.numpy())  # identical on every rank
