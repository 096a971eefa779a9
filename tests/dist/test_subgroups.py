"""An optional process group restricts every collective to a subgroup (item 9)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import golden


@pytest.mark.world_size(4)
def test_losses_reduce_over_their_subgroup_only(dist_run):
    out = dist_run("tests.dist.programs:subgroup_losses", {"K": 12, "rows": [3, 5, 2, 6]})
    for members in ([0, 1], [2, 3]):
        rows = np.concatenate([out[r]["teacher"] for r in members])
        q = golden.sinkhorn(rows, 0.1, 3)
        offset = 0
        for r in members:
            np.testing.assert_allclose(out[r]["center"], rows.mean(axis=0), rtol=1e-6, atol=1e-6)
            n = out[r]["teacher"].shape[0]
            np.testing.assert_allclose(out[r]["q"], q[offset:offset + n], atol=1e-5)
            offset += n
    assert not np.allclose(out[0]["center"], out[2]["center"])
