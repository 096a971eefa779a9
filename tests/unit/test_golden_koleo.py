"""The float64 KoLeo oracle: an explicit loop over samples and neighbours, central finite
differences, the group rule, and the official DINOv2 ``KoLeoLoss`` on one process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.golden import koleo
from tests.unit.test_golden import central_diff

EPS = koleo.EPS


def features(n: int, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * 3.0


def loop_loss(x: np.ndarray, topk: int, group_size: int | None) -> float:
    """The definition, one sample at a time: its topk largest inner products among the
    other members of its group, ``-log(|a - b + eps| + eps)`` each, a mean over all."""
    unit = []
    for row in x.tolist():
        norm = max(math.sqrt(sum(value * value for value in row)), EPS)
        unit.append([value / norm for value in row])
    size = group_size or len(unit)
    terms = []
    for i, a in enumerate(unit):
        group = range(i // size * size, min(i // size * size + size, len(unit)))
        others = sorted((j for j in group if j != i),
                        key=lambda j: -sum(p * q for p, q in zip(a, unit[j], strict=True)))
        for j in others[:topk]:
            d = math.sqrt(sum((p - q + EPS) ** 2 for p, q in zip(a, unit[j], strict=True)))
            terms.append(-math.log(d + EPS))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("topk, group_size", [(1, None), (3, None), (1, 4), (2, 6), (2, 4)])
def test_loss_is_the_per_sample_loop(topk: int, group_size: int | None) -> None:
    x = features(11)
    assert koleo.koleo_loss(x, topk, group_size) == pytest.approx(
        loop_loss(x, topk, group_size), rel=1e-12)


@pytest.mark.parametrize("topk, group_size", [(1, None), (2, 4)])
def test_gradient_is_the_finite_difference(topk: int, group_size: int | None) -> None:
    x = features(7, d=4, seed=3)
    want = central_diff(lambda y: koleo.koleo_loss(y, topk, group_size), x)
    np.testing.assert_allclose(koleo.koleo_loss_grad(x, topk, group_size), want, atol=1e-8)


def test_only_directions_count() -> None:
    x = features(9)
    scaled = x * np.arange(1, 10)[:, None]
    assert koleo.koleo_loss(scaled, 2) == pytest.approx(koleo.koleo_loss(x, 2), rel=1e-12)
    grad = koleo.koleo_loss_grad(x, 2)
    np.testing.assert_allclose(np.sum(grad * x, axis=1), 0.0, atol=1e-12)  # tangent to |x|


def test_groups_are_the_size_weighted_mean_of_each_group_alone() -> None:
    x = features(10)
    parts = [(range(0, 4), 4), (range(4, 8), 4), (range(8, 10), 2)]
    want = sum(n / 10 * koleo.koleo_loss(x[r.start:r.stop]) for r, n in parts)
    assert koleo.koleo_loss(x, 1, group_size=4) == pytest.approx(want, rel=1e-12)
    assert [len(s) for s in koleo.neighbour_sets(10, 4)] == [4, 4, 2]
    assert koleo.neighbour_sets(3, None) == [range(0, 3)]


def test_a_set_without_enough_neighbours_is_refused() -> None:
    with pytest.raises(ValueError, match="neighbour set of 1 samples"):
        koleo.koleo_loss(features(9), 1, group_size=4)  # groups 4, 4, 1
    with pytest.raises(ValueError, match="no 3 neighbours"):
        koleo.koleo_loss(features(3), 3)


def test_it_is_the_official_dinov2_koleo_on_one_process() -> None:
    torch = pytest.importorskip("torch")
    dinov2_loss = pytest.importorskip("dinov2.loss")
    x = features(12, d=16, seed=5).astype(np.float32).astype(np.float64)
    t = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    with pytest.warns(FutureWarning):  # its torch.cuda.amp.autocast
        loss = dinov2_loss.KoLeoLoss()(t)
    loss.backward()
    assert loss.item() == pytest.approx(koleo.koleo_loss(x), rel=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), koleo.koleo_loss_grad(x), atol=1e-7)
