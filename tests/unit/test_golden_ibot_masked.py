"""The float64 oracle of DINOv2's ``iBOTPatchLoss.forward_masked``, checked against an
explicit per-image loop, the plain iBOT golden where the two must agree, and central
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import harness.golden as g
from tests.unit.test_golden import central_diff

MASKS = np.array([[1, 0, 1, 1],   # 3 masked: weight 1/3 each
                  [0, 0, 0, 0],   # none: adds 0, still counts as an image
                  [0, 1, 0, 0]], dtype=bool)  # 1 masked: weight 1


def _inputs(masks: np.ndarray, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = int(masks.sum())
    return rng.normal(size=(m, k)) * 2.0, g.softmax(rng.normal(size=(m, k)), axis=-1)


def test_weights_follow_row_major_mask_order() -> None:
    np.testing.assert_array_equal(g.masked_patch_weights(MASKS), [1 / 3, 1 / 3, 1 / 3, 1.0])
    assert g.masked_patch_weights(np.zeros((2, 3), dtype=bool)).shape == (0,)


def test_loss_is_the_per_image_loop_over_every_image() -> None:
    s, t = _inputs(MASKS)
    ce = g.cross_entropy(t, s, 0.1)
    expected, row = 0.0, 0
    for image in MASKS:  # the image without a masked patch adds nothing but counts
        n = int(image.sum())
        expected += ce[row:row + n].sum() / max(1, n)
        row += n
    assert g.ibot_masked_loss(s, t, MASKS, 0.1) == pytest.approx(expected / 3, rel=1e-14)


def test_equal_masked_counts_give_the_plain_ibot_mean() -> None:
    masks = np.zeros((4, 6), dtype=bool)
    masks[:, [0, 2]] = True  # every image masks 2: the weighted sum / images is the mean
    s, t = _inputs(masks, k=7, seed=1)
    assert g.ibot_masked_loss(s, t, masks, 0.2) == pytest.approx(g.ibot_loss(s, t, 0.2), rel=1e-13)
    np.testing.assert_allclose(g.ibot_masked_loss_grad(s, t, masks, 0.2),
                               g.ibot_loss_grad(s, t, 0.2), rtol=1e-13)


@pytest.mark.parametrize("temp", [0.1, 0.5])
@pytest.mark.parametrize("normalised", [True, False])
def test_grad_matches_finite_differences(temp: float, normalised: bool) -> None:
    s, t = _inputs(MASKS, k=4, seed=2)
    if not normalised:  # the gradient keeps sum_k t_k, it does not assume 1
        t = t * np.array([[0.5], [2.0], [1.0], [3.0]])
    grad = g.ibot_masked_loss_grad(s, t, MASKS, temp)
    fd = central_diff(lambda x: g.ibot_masked_loss(x, t, MASKS, temp), s)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_no_masked_patch_is_zero_and_bad_input_raises() -> None:
    none = np.zeros((3, 4), dtype=bool)
    empty = np.zeros((0, 5))
    assert g.ibot_masked_loss(empty, empty, none, 0.1) == 0.0
    assert g.ibot_masked_loss_grad(empty, empty, none, 0.1).shape == (0, 5)
    s, t = _inputs(MASKS)
    with pytest.raises(ValueError, match="masks mark 4 patches but there are 3"):
        g.ibot_masked_loss(s[:3], t[:3], MASKS, 0.1)
    with pytest.raises(ValueError, match="no image"):
        g.ibot_masked_loss(empty, empty, np.zeros((0, 4), dtype=bool), 0.1)
    with pytest.raises(ValueError, match="boolean"):
        g.ibot_masked_loss(s, t, MASKS * 2, 0.1)
    with pytest.raises(ValueError, match=r"\[M, K\]"):
        g.ibot_masked_loss(s, t[:, :4], MASKS, 0.1)
