"""The reference's ``micro_batches`` on one process: a step cut into micro-batches (empty
ones included), each loss call weighed by its share of the step, accumulates exactly the
gradient of the whole step in one call -- per term for DINOv2's two; the planted mistakes
give their known numbers; a loop that does not match its sizes is told so."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.losses import DINOv1Loss, DINOv2Loss, iBOTMaskedPatchLoss, iBOTPatchLoss
from harness.losses.variants import Variant

RNG = np.random.default_rng(11)
K = 8


def tensor(*shape: int, probs: bool = False) -> torch.Tensor:
    x = torch.tensor(RNG.normal(size=shape), dtype=torch.float32)
    return torch.softmax(x, dim=-1) if probs else x


def whole_and_micro(loss, inputs: list[torch.Tensor], dims: list[int],
                    sizes: list[list[int]]) -> tuple[tuple[float, list], tuple[float, list]]:
    """(loss, grads) of one call on the whole step, and of its micro-batches inside
    ``loss.micro_batches(*sizes)``: inputs are (student, teacher) pairs, each pair cut
    along its dim by its sizes."""
    def leaves() -> list[torch.Tensor]:
        return [x.clone().requires_grad_(i % 2 == 0) for i, x in enumerate(inputs)]

    whole = leaves()
    value = loss(*whole)
    value.backward()
    one = (float(value.detach()), [x.grad for x in whole[::2]])
    parts = leaves()
    cut = [torch.split(x, sizes[i // 2], dim=dims[i // 2]) for i, x in enumerate(parts)]
    total = 0.0
    with loss.micro_batches(*sizes):
        for m in range(len(sizes[0])):
            value = loss(*[pieces[m] for pieces in cut])
            value.backward()
            total += float(value.detach())
    return one, (total, [x.grad for x in parts[::2]])


def assert_same(one, many) -> None:
    assert many[0] == pytest.approx(one[0], rel=1e-5)
    for a, b in zip(one[1], many[1], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sizes", [[1, 0, 5], [3, 3], [6], [0, 6]])
def test_cls_micro_batches_accumulate_the_steps_gradient(sizes):
    student, teacher = tensor(3, 6, K), tensor(2, 6, K, probs=True)
    assert_same(*whole_and_micro(DINOv1Loss(), [student, teacher], [1], [sizes]))


def test_ibot_micro_batches_accumulate_the_steps_gradient():
    student, teacher = tensor(7, K), tensor(7, K, probs=True)
    assert_same(*whole_and_micro(iBOTPatchLoss(), [student, teacher], [0], [[3, 0, 4]]))


def test_dinov2_weighs_each_term_by_its_own_share():
    """Samples 2 + 4, patches 6 + 1: the two terms' shares differ, and each is exact."""
    inputs = [tensor(3, 6, K), tensor(2, 6, K, probs=True), tensor(7, K), tensor(7, K, probs=True)]
    loss = DINOv2Loss(dino_loss_weight=0.5, ibot_loss_weight=2.0)
    assert_same(*whole_and_micro(loss, inputs, [1, 0], [[2, 4], [6, 1]]))


def test_masked_ibot_micro_batches_of_whole_images_accumulate_the_steps_gradient():
    masks = torch.tensor(RNG.random((4, 5)) < 0.5)
    masks[0, 0] = masks[2] = True
    rows = int(masks.sum())
    student, teacher = tensor(rows, K).requires_grad_(True), tensor(rows, K, probs=True)
    loss = iBOTMaskedPatchLoss()
    value = loss.forward_masked(student, teacher, masks)
    value.backward()
    images = [1, 0, 3]
    counts = [int(m.sum()) for m in torch.split(masks, images)]
    leaf = student.detach().clone().requires_grad_(True)
    total = 0.0
    with loss.micro_batches(images):
        for s, t, m in zip(torch.split(leaf, counts), torch.split(teacher, counts),
                           torch.split(masks, images), strict=True):
            part = loss.forward_masked(s, t, m)
            part.backward()
            total += float(part.detach())
    assert total == pytest.approx(float(value.detach()), rel=1e-5)
    torch.testing.assert_close(leaf.grad, student.grad, rtol=1e-5, atol=1e-7)


def test_equal_weights_give_the_mean_of_per_micro_batch_means():
    student, teacher = tensor(3, 4, K), tensor(2, 4, K, probs=True)
    loss = DINOv1Loss(variant=Variant(micro_batch_weights="equal"))
    _, (total, _) = whole_and_micro(loss, [student, teacher], [1], [[3, 1]])
    means = [float(DINOv1Loss()(student[:, part], teacher[:, part])) for part in (slice(0, 3), slice(3, 4))]
    assert total == pytest.approx(sum(means) / 2, rel=1e-5)
    assert total != pytest.approx(float(DINOv1Loss()(student, teacher)), rel=1e-3)


def test_the_teacher_inside_micro_batches_is_the_steps_unless_the_mistake():
    logits = tensor(2, 6, K) * 3
    reference, flawed = DINOv1Loss(), DINOv1Loss(variant=Variant(sinkhorn_scope="micro_batch"))
    step = reference.sinkhorn_knopp_teacher(logits, 0.1)
    with reference.micro_batches([2, 4]):
        torch.testing.assert_close(reference.sinkhorn_knopp_teacher(logits, 0.1), step)
    with flawed.micro_batches([2, 4]):
        alone = flawed.sinkhorn_knopp_teacher(logits, 0.1)
    torch.testing.assert_close(alone, torch.cat([reference.sinkhorn_knopp_teacher(logits[:, :2], 0.1),
                                                 reference.sinkhorn_knopp_teacher(logits[:, 2:], 0.1)],
                                                dim=1))
    assert not torch.allclose(alone, step, atol=1e-4)
    patches = iBOTPatchLoss(variant=Variant(sinkhorn_scope="micro_batch"))
    with patches.micro_batches([5, 1]):
        out = patches.sinkhorn_knopp_teacher(logits[0], 0.1)
    torch.testing.assert_close(out[5:], iBOTPatchLoss().sinkhorn_knopp_teacher(logits[0, 5:], 0.1))


def test_a_loop_that_does_not_match_its_micro_batches_is_told():
    loss = DINOv1Loss()
    student, teacher = tensor(2, 4, K), tensor(2, 4, K, probs=True)
    with pytest.raises(ValueError, match="micro-batch 0 .* has 3 rows here, the loss was handed 4"):
        with loss.micro_batches([3, 1]):
            loss(student, teacher)
    with pytest.raises(ValueError, match="holds 1 micro-batches; this is loss call 2"):
        with loss.micro_batches([4]):
            loss(student, teacher)
            loss(student, teacher)
    with pytest.raises(ValueError, match="ended after 1 of its 2 micro-batches"):
        with loss.micro_batches([4, 0]):
            loss(student, teacher)
    with pytest.raises(RuntimeError, match="already open"):
        with loss.micro_batches([4]), loss.micro_batches([4]):
            pass
    for bad in ([], [2, -1], "ab", [1.5]):
        with pytest.raises(ValueError, match="sizes"):
            with loss.micro_batches(bad):
                pass
    assert float(loss(student, teacher)) == pytest.approx(float(DINOv1Loss()(student, teacher)))
