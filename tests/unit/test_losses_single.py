"""The reference losses on one process against the float64 oracles of harness.golden."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import golden
from harness.losses import (
    DINOv1Loss,
    DINOv2Loss,
    cross_entropy_loss,
    iBOTMaskedPatchLoss,
    iBOTPatchCenter,
    iBOTPatchLoss,
    sinkhorn_knopp,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _as_torch(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def _views(s: int, t: int) -> bool:
    return s * t - min(s, t) > 0


view_counts = st.tuples(st.integers(1, 12), st.integers(1, 3)).filter(lambda v: _views(*v))


@settings(max_examples=40, deadline=None)
@given(
    views=view_counts,
    batch=st.integers(1, 6),
    k=st.sampled_from([2, 7, 64, 1000]),
    temp=st.sampled_from([0.05, 0.1, 0.5]),
    seed=st.integers(0, 2**31),
)
def test_cls_loss_and_grad_match_oracle(views, batch, k, temp, seed):
    s_views, t_views = views
    rng = _rng(seed)
    student = rng.normal(size=(s_views, batch, k))
    teacher = golden.softmax(rng.normal(size=(t_views, batch, k)) / 0.07)
    loss_fn = DINOv1Loss(temperature_student=temp)
    student_t = _as_torch(student).requires_grad_(True)
    loss = loss_fn(student_t, _as_torch(teacher))
    loss.backward()
    expected = golden.cls_loss(student, teacher, temp)
    assert loss.item() == pytest.approx(expected, rel=2e-5, abs=2e-5)
    grad = golden.cls_loss_grad(student, teacher, temp)
    # A gradient entry can be the float32 difference of two terms as large as the largest
    # gradient (p * sum(t) - sum(t), both ~ 1 / temp): absolute noise ~ eps32 x that size.
    np.testing.assert_allclose(student_t.grad.numpy(), grad, rtol=1e-3,
                               atol=1e-6 * max(1.0, float(np.abs(grad).max())))


@settings(max_examples=30, deadline=None)
@given(masked=st.integers(0, 40), k=st.sampled_from([3, 64, 4096]), seed=st.integers(0, 2**31))
def test_ibot_loss_and_grad_match_oracle(masked, k, seed):
    rng = _rng(seed)
    student = rng.normal(size=(masked, k))
    teacher = golden.softmax(rng.normal(size=(masked, k)))
    student_t = _as_torch(student).requires_grad_(True)
    loss = iBOTPatchLoss(student_temp=0.1)(student_t, _as_torch(teacher))
    loss.backward()
    assert loss.item() == pytest.approx(golden.ibot_loss(student, teacher, 0.1), rel=2e-5, abs=1e-6)
    np.testing.assert_allclose(
        student_t.grad.numpy(), golden.ibot_loss_grad(student, teacher, 0.1), rtol=1e-3, atol=1e-7
    )


def test_dinov2_combines_weighted_terms():
    rng = _rng(3)
    s_cls, t_cls = rng.normal(size=(4, 3, 16)), golden.softmax(rng.normal(size=(2, 3, 16)))
    s_patch, t_patch = rng.normal(size=(7, 16)), golden.softmax(rng.normal(size=(7, 16)))
    loss_fn = DINOv2Loss(dino_loss_weight=0.7, ibot_loss_weight=1.3, temperature_student=0.2,
                         student_temp=0.15)
    got = loss_fn(_as_torch(s_cls), _as_torch(t_cls), _as_torch(s_patch), _as_torch(t_patch))
    want = golden.dinov2_loss(s_cls, t_cls, s_patch, t_patch, cls_temp=0.2, patch_temp=0.15,
                              dino_weight=0.7, ibot_weight=1.3)
    assert got.item() == pytest.approx(want, rel=1e-5)
    cls_only = loss_fn(_as_torch(s_cls), _as_torch(t_cls))
    assert cls_only.item() == pytest.approx(0.7 * golden.cls_loss(s_cls, t_cls, 0.2), rel=1e-5)


def test_cross_entropy_is_float32_per_row():
    rng = _rng(0)
    t = golden.softmax(rng.normal(size=(3, 5, 11)))
    s = rng.normal(size=(3, 5, 11))
    got = cross_entropy_loss(_as_torch(t, torch.bfloat16), _as_torch(s, torch.float16), 0.1)
    assert got.dtype == torch.float32 and got.shape == (3, 5)
    want = golden.cross_entropy(_as_torch(t, torch.bfloat16).double().numpy(),
                                _as_torch(s, torch.float16).double().numpy(), 0.1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


# -- Sinkhorn ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    k=st.sampled_from([8, 33, 512]),
    iters=st.integers(1, 10),
    temp=st.sampled_from([0.04, 0.07, 0.5]),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
    seed=st.integers(0, 2**31),
)
def test_sinkhorn_matches_log_domain_oracle(n, k, iters, temp, scale, seed):
    logits = _rng(seed).normal(size=(n, k)) * scale
    got = sinkhorn_knopp(_as_torch(logits), temp, n_iterations=iters)
    want = golden.sinkhorn(_as_torch(logits).double().numpy(), temp, iters)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.sum(dim=1).numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("k", [8, 4096, 65536])
def test_sinkhorn_is_overflow_safe_at_3000(k):
    rng = _rng(k)
    logits = rng.uniform(-1.0, 1.0, size=(24, k)) * 120.0  # / 0.04 -> +-3000
    got = sinkhorn_knopp(_as_torch(logits), 0.04, n_iterations=3)
    want = golden.sinkhorn(_as_torch(logits).double().numpy(), 0.04, 3)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)


def test_sinkhorn_outlier_sample_five_below_at_temp_004():
    rng = _rng(11)
    logits = rng.normal(size=(16, 64))
    logits[5] -= 5.0  # exp(-125): underflows float32 unless the shift is exact per sample
    got = sinkhorn_knopp(_as_torch(logits), 0.04, n_iterations=3)
    want = golden.sinkhorn(_as_torch(logits).double().numpy(), 0.04, 3)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0)


def test_sinkhorn_ignores_num_samples_convention():
    logits = _as_torch(_rng(1).normal(size=(12, 32)))
    base = sinkhorn_knopp(logits, 0.1)
    for num_samples in (12, torch.tensor(12), None, 999):
        torch.testing.assert_close(sinkhorn_knopp(logits, 0.1, num_samples), base)


def test_sinkhorn_teacher_flattens_views():
    logits = _as_torch(_rng(2).normal(size=(2, 5, 16)))
    out = DINOv1Loss().sinkhorn_knopp_teacher(logits, 0.07)
    flat = golden.sinkhorn(logits.reshape(10, 16).double().numpy(), 0.07, 3)
    np.testing.assert_allclose(out.reshape(10, 16).numpy(), flat, atol=1e-6)


def test_sinkhorn_zero_samples_returns_empty():
    out = sinkhorn_knopp(torch.zeros(0, 8), 0.1)
    assert out.shape == (0, 8) and out.dtype == torch.float32


# -- centering ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("momentum", [0.0, 0.9, 0.996])
def test_centering_sequence_matches_oracle(dtype, momentum):
    rng = _rng(7)
    batches = [rng.normal(size=(2, 5, 32)) + i for i in range(6)]
    loss_fn = DINOv1Loss(center_momentum=momentum)
    seen = [_as_torch(b, DTYPES[dtype]) for b in batches]
    for step, batch in enumerate(seen):
        probs = loss_fn.softmax_center_teacher(batch, 0.04)
        used = golden.centers_used([b.double().numpy() for b in seen], momentum)[step]
        want = golden.softmax_center(batch.double().numpy(), used, 0.04)
        np.testing.assert_allclose(probs.numpy(), want, atol=2e-5)
        loss_fn.update_center(batch)
    loss_fn.apply_center_update()
    final = golden.center_sequence([b.double().numpy() for b in seen], momentum)[-1]
    assert loss_fn.center.dtype == torch.float32 and loss_fn.center.shape == (1, 32)
    np.testing.assert_allclose(loss_fn.center.numpy()[0], final, rtol=1e-6, atol=1e-6)


def test_two_updates_before_one_apply_combine_both_batches():
    rng = _rng(5)
    a, b = rng.normal(size=(2, 3, 16)), rng.normal(size=(2, 7, 16)) + 3.0
    loss_fn = DINOv1Loss()
    loss_fn.update_center(_as_torch(a))
    loss_fn.update_center(_as_torch(b))
    loss_fn.apply_center_update()
    np.testing.assert_allclose(loss_fn.center.numpy()[0], golden.accumulated_center([a, b]),
                               rtol=1e-6, atol=1e-6)


def test_2d_teacher_is_one_view():
    rows = _rng(6).normal(size=(9, 16))
    loss_fn = DINOv1Loss()
    loss_fn.update_center(_as_torch(rows))
    loss_fn.apply_center_update()
    assert loss_fn.center.shape == (1, 16)
    np.testing.assert_allclose(loss_fn.center.numpy()[0], rows.mean(axis=0), rtol=1e-6, atol=1e-6)


def test_center_is_a_float32_buffer_that_survives_state_dict():
    loss_fn = DINOv1Loss()
    loss_fn.update_center(_as_torch(_rng(8).normal(size=(2, 4, 16)), torch.bfloat16))
    loss_fn.apply_center_update()
    assert "center" in dict(loss_fn.named_buffers())
    fresh = DINOv1Loss()
    fresh.load_state_dict(loss_fn.state_dict())
    assert fresh.center.dtype == torch.float32
    torch.testing.assert_close(fresh.center, loss_fn.center, rtol=0, atol=0)


def test_no_center_is_plain_softmax():
    logits = _as_torch(_rng(9).normal(size=(2, 3, 8)))
    probs = DINOv1Loss().softmax_center_teacher(logits, 0.07)
    np.testing.assert_allclose(probs.numpy(), golden.softmax(logits.double().numpy() / 0.07),
                               atol=1e-6)


# -- the iBOT patch head: the masked loss (DINOv2's forward_masked) and the patch center ---


def _masks(rng: np.random.Generator, images: int, n: int, ratio: float) -> np.ndarray:
    """``[images, n]`` masks, each image masking ``floor(n * u)`` patches, u in [0, ratio]."""
    masks = np.zeros((images, n), dtype=bool)
    for image in range(images):
        masks[image, rng.choice(n, size=int(n * rng.uniform(0, ratio)), replace=False)] = True
    return masks


@settings(max_examples=30, deadline=None)
@given(images=st.integers(1, 6), n=st.integers(1, 20), ratio=st.sampled_from([0.0, 0.3, 1.0]),
       k=st.sampled_from([3, 64, 1000]), seed=st.integers(0, 2**31))
def test_masked_loss_and_grad_match_oracle(images, n, ratio, k, seed):
    rng = _rng(seed)
    masks = _masks(rng, images, n, ratio)
    student = rng.normal(size=(int(masks.sum()), k))
    teacher = golden.softmax(rng.normal(size=student.shape))
    student_t = _as_torch(student).requires_grad_(True)
    loss = iBOTMaskedPatchLoss(student_temp=0.1).forward_masked(
        student_t, _as_torch(teacher), torch.from_numpy(masks))
    loss.backward()
    assert loss.item() == pytest.approx(golden.ibot_masked_loss(student, teacher, masks, 0.1),
                                        rel=2e-5, abs=1e-6)
    np.testing.assert_allclose(student_t.grad.numpy(),
                               golden.ibot_masked_loss_grad(student, teacher, masks, 0.1),
                               rtol=1e-3, atol=1e-7)


def test_masked_loss_is_dinov2s_forward_masked_on_one_process():
    dinov2 = pytest.importorskip("dinov2.loss")
    rng = _rng(21)
    masks = torch.from_numpy(_masks(rng, 5, 12, 0.6))
    student = _as_torch(rng.normal(size=(int(masks.sum()), 32)))
    teacher = torch.softmax(_as_torch(rng.normal(size=student.shape)), dim=-1)
    real = dinov2.iBOTPatchLoss(32, student_temp=0.2)
    ours = iBOTMaskedPatchLoss(student_temp=0.2)
    weights = _as_torch(rng.uniform(0.1, 1.0, size=student.shape[0]))
    cut = student.shape[0] - 3
    for kwargs in ({}, {"masks_weight": weights}, {"n_masked_patches": cut, "masks_weight": weights[:cut]}):
        want = real.forward_masked(student, teacher, masks, **kwargs)
        got = ours.forward_masked(student, teacher, masks, **kwargs)
        assert got.item() == pytest.approx(want.item(), rel=1e-6), kwargs


def test_masked_loss_without_images_or_masked_patches_is_zero_not_nan():
    loss_fn = iBOTMaskedPatchLoss()
    no_image = loss_fn.forward_masked(torch.zeros(0, 8, requires_grad=True), torch.zeros(0, 8),
                                      torch.zeros(0, 16, dtype=torch.bool))
    nothing_masked = loss_fn.forward_masked(torch.zeros(0, 8), torch.zeros(0, 8),
                                            torch.zeros(3, 16, dtype=torch.bool))
    assert no_image.item() == 0.0 and nothing_masked.item() == 0.0
    no_image.backward()  # still differentiable: DDP needs every rank's backward


def test_masked_sinkhorn_is_the_reference_sinkhorn_whatever_the_count():
    logits = _as_torch(_rng(22).normal(size=(10, 32)))
    base = sinkhorn_knopp(logits, 0.05)
    for count in (torch.tensor([10]), torch.tensor([99]), 10):
        kept = count.clone() if isinstance(count, torch.Tensor) else count
        got = iBOTMaskedPatchLoss().sinkhorn_knopp_teacher(logits, 0.05, count)
        torch.testing.assert_close(got, base, rtol=0, atol=0)
        assert not isinstance(count, torch.Tensor) or torch.equal(count, kept)  # not all-reduced


def test_patch_center_is_the_cls_centers_mechanism_on_masked_tokens():
    rng = _rng(23)
    steps = [rng.normal(size=(m, 24)) + i for i, m in enumerate([7, 3, 11])]
    patch, cls = iBOTPatchCenter(center_momentum=0.8), DINOv1Loss(center_momentum=0.8)
    for step, tokens in enumerate(steps):
        probs = patch.softmax_center_teacher(_as_torch(tokens), 0.04)
        used = golden.centers_used(steps, 0.8)[step]
        np.testing.assert_allclose(probs.numpy(), golden.softmax_center(tokens, used, 0.04), atol=2e-5)
        cls.softmax_center_teacher(_as_torch(tokens), 0.04)
        patch.update_center(_as_torch(tokens))
        cls.update_center(_as_torch(tokens))
    patch.apply_center_update()
    cls.apply_center_update()
    np.testing.assert_allclose(patch.center.numpy()[0], golden.center_sequence(steps, 0.8)[-1],
                               rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(patch.center, cls.center, rtol=0, atol=0)


# -- bad input ----------------------------------------------------------------------------------

BAD_INPUTS = [
    ("S = T = 1", lambda: DINOv1Loss()(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)), "S = T = 1"),
    ("K differs", lambda: DINOv1Loss()(torch.zeros(2, 2, 4), torch.zeros(2, 2, 5)), r"\(2, 2, 5\)"),
    ("B differs", lambda: DINOv1Loss()(torch.zeros(2, 3, 4), torch.zeros(2, 2, 4)), "batch"),
    ("student 2-D", lambda: DINOv1Loss()(torch.zeros(2, 4), torch.zeros(2, 2, 4)), "student_logits"),
    ("teacher 4-D", lambda: DINOv1Loss()(torch.zeros(2, 2, 4), torch.zeros(1, 2, 2, 4)), "teacher_probs"),
    ("temp 0", lambda: DINOv1Loss(temperature_student=0.0), "temperature_student"),
    ("teacher temp < 0", lambda: DINOv1Loss().softmax_center_teacher(torch.zeros(2, 4), -1.0), "teacher_temp"),
    ("update 1-D", lambda: DINOv1Loss().update_center(torch.zeros(4)), "teacher_output"),
    ("sinkhorn iters < 0", lambda: sinkhorn_knopp(torch.zeros(3, 4), 0.1, n_iterations=-1), "n_iterations"),
    ("sinkhorn 3-D", lambda: sinkhorn_knopp(torch.zeros(1, 3, 4), 0.1), "teacher_output"),
    ("sinkhorn temp", lambda: sinkhorn_knopp(torch.zeros(3, 4), 0.0), "teacher_temp"),
    ("sinkhorn num_samples", lambda: sinkhorn_knopp(torch.zeros(3, 4), 0.1, num_samples=-2), "num_samples"),
    ("ibot shapes", lambda: iBOTPatchLoss()(torch.zeros(3, 4), torch.zeros(2, 4)), r"\(3, 4\)"),
    ("ibot 3-D", lambda: iBOTPatchLoss()(torch.zeros(1, 3, 4), torch.zeros(1, 3, 4)), "student_patch_logits"),
    ("ce shapes", lambda: cross_entropy_loss(torch.zeros(3, 4), torch.zeros(3, 5), 0.1), r"\(3, 5\)"),
    ("momentum", lambda: DINOv1Loss(center_momentum=1.5), "center_momentum"),
    ("masks not bool", lambda: iBOTMaskedPatchLoss().forward_masked(
        torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(1, 2)), "bool"),
    ("masked rows differ", lambda: iBOTMaskedPatchLoss().forward_masked(
        torch.zeros(3, 4), torch.zeros(3, 4), torch.ones(1, 2, dtype=torch.bool)),
     "marks 2 masked patches, but 3 rows"),
    ("masks_weight length", lambda: iBOTMaskedPatchLoss().forward_masked(
        torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(1, 2, dtype=torch.bool),
        masks_weight=torch.ones(3)), "masks_weight weighs 3"),
    ("n_masked_patches", lambda: iBOTMaskedPatchLoss().forward_masked(
        torch.zeros(2, 4), torch.zeros(2, 4), torch.ones(1, 2, dtype=torch.bool),
        n_masked_patches=5), "n_masked_patches"),
    ("masked shapes", lambda: iBOTMaskedPatchLoss().forward_masked(
        torch.zeros(2, 4), torch.zeros(2, 5), torch.ones(1, 2, dtype=torch.bool)), r"\(2, 5\)"),
    ("patch center momentum", lambda: iBOTPatchCenter(center_momentum=-0.1), "center_momentum"),
    ("patch half given", lambda: DINOv2Loss()(torch.zeros(2, 2, 4), torch.zeros(2, 2, 4), torch.zeros(3, 4)), "both"),
]


@pytest.mark.parametrize("call,match", [(c, m) for _, c, m in BAD_INPUTS],
                         ids=[name for name, _, _ in BAD_INPUTS])
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_center_k_mismatch_is_a_value_error():
    loss_fn = DINOv1Loss()
    loss_fn.update_center(torch.zeros(2, 3, 8))
    loss_fn.apply_center_update()
    with pytest.raises(ValueError, match="K=8"):
        loss_fn.update_center(torch.zeros(2, 3, 9))
