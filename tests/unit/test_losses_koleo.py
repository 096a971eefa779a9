"""The reference ``KoLeoLoss`` on one process against the float64 oracle, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.golden import koleo
from harness.losses import KoLeoLoss


def features(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x.astype(np.float32).astype(np.float64)  # exact in float32


@pytest.mark.parametrize("topk, group_size", [(1, None), (4, None), (1, 5), (2, 6)])
def test_value_and_gradient_are_the_golden(topk: int, group_size: int | None) -> None:
    x = features(17)
    t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    loss = KoLeoLoss(topk=topk, group_size=group_size)(t)
    loss.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(koleo.koleo_loss(x, topk, group_size), rel=1e-6)
    grad = koleo.koleo_loss_grad(x, topk, group_size)
    np.testing.assert_allclose(t.grad.numpy(), grad, atol=1e-6 * np.abs(grad).max())


def test_low_precision_features_are_computed_on_in_float32() -> None:
    x = torch.tensor(features(9), dtype=torch.bfloat16)
    loss = KoLeoLoss()(x)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(koleo.koleo_loss(x.double().numpy()), rel=1e-6)


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="topk must be an int >= 1"):
        KoLeoLoss(topk=0)
    with pytest.raises(ValueError, match="group_size must be an int >= 2"):
        KoLeoLoss(group_size=1)
    with pytest.raises(ValueError, match="student_output must be 2-D"):
        KoLeoLoss()(torch.zeros(2, 3, 4))


def test_a_neighbour_set_too_small_for_topk_is_refused() -> None:
    with pytest.raises(ValueError, match="topk \\+ 1 = 3 samples in every neighbour set, got a "
                                         "set of 1"):
        KoLeoLoss(topk=2, group_size=4)(torch.randn(9, 8))  # groups 4, 4, 1
    with pytest.raises(ValueError, match="got a set of 0"):
        KoLeoLoss()(torch.zeros(0, 8))
