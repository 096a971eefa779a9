"""The overlap workload (head, prototype layer) and the fake-async negative control,
single process."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import harness.losses as reference
from harness.faults import fake_async
from harness.overlap.cases import OverlapCase
from harness.overlap.workload import DINOHead, Workload, _PrototypeLayer
from harness.targets import SEED_NAMES, load_target


def test_prototype_layer_is_weight_norm_with_its_gradient() -> None:
    torch.manual_seed(0)
    z = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    v = torch.randn(11, 7, dtype=torch.float64, requires_grad=True)
    g = torch.rand(11, dtype=torch.float64) + 0.5
    expected = F.linear(z, g[:, None] * v / v.norm(dim=1, keepdim=True))
    torch.testing.assert_close(_PrototypeLayer.apply(z, v, g), expected)
    assert torch.autograd.gradcheck(lambda z, v: _PrototypeLayer.apply(z, v, g), (z, v))


def test_head_shapes_and_frozen_norm_scale() -> None:
    head = DINOHead(16, 32, 8, 64)
    out = head(torch.randn(3, 16))
    assert out.shape == (3, 64)
    assert not head.prototypes_g.requires_grad
    # rows of the normalised bottleneck times unit prototypes: cosine similarities
    assert out.abs().max() <= 1.0 + 1e-5


def test_workload_step_follows_the_timing_contract() -> None:
    case = OverlapCase("w", K=32, in_dim=8, hidden_dim=16, bottleneck_dim=4, views_student=3,
                       views_teacher=2, batch_per_rank=5)
    loss = reference.DINOv1Loss()
    work = Workload(case, loss, torch.device("cpu"), rank=0)
    value, t = work.forward()
    assert t.shape == (2, 5, 32) and not t.requires_grad and value.ndim == 0
    loss.update_center(t)
    work.zero_grad()
    value.backward()
    assert all(p.grad is not None for p in work.params)
    assert not any(p.requires_grad for p in work.teacher.parameters())
    loss.apply_center_update()
    assert loss.center is not None and loss.center.shape == (1, 32)


def test_fake_async_is_a_full_seed_api_and_numerically_the_reference() -> None:
    target = load_target("harness.faults.fake_async")
    assert all(hasattr(target.api, name) for name in SEED_NAMES)
    torch.manual_seed(3)
    batches = [torch.randn(2, 6, 16) for _ in range(3)]
    fake, ref = fake_async.DINOv1Loss(), reference.DINOv1Loss()
    for x in batches:
        handle = fake.update_center(x)
        assert handle.is_completed() and handle.wait()
        ref.update_center(x)
        fake.apply_center_update()
        ref.apply_center_update()
    torch.testing.assert_close(fake.center, ref.center, rtol=0, atol=0)
    # DINOv2Loss of the module uses the fake CLS loss
    assert isinstance(fake_async.DINOv2Loss().dino_loss, fake_async.DINOv1Loss)
