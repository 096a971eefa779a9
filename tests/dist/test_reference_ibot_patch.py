"""The reference's iBOT patch head on 1-4 ranks: the masked loss (``iBOTMaskedPatchLoss``)
and the patch center (``iBOTPatchCenter``) equal the float64 single-process golden on the
whole batch, where the catalogue does not go: a rank with no image at all, a rank whose
images mask nothing, a rank with no masked token -- each still joins every collective
(a rank that skipped one would hang the others)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import golden

K, N = 16, 8
#: Masked patches of each image, per rank: rank 1 holds no image, rank 2's images mask nothing.
MASKED = [[5, 0, 3], [], [0, 0], [2, 7, 1, 4]]
#: Masked tokens per rank for the patch center: rank 1 has none.
TOKENS = [6, 0, 3, 9]


def _masks() -> np.ndarray:
    rng = np.random.default_rng(11)
    counts = [n for rank in MASKED for n in rank]
    masks = np.zeros((len(counts), N), dtype=bool)
    for image, n in enumerate(counts):
        masks[image, rng.choice(N, size=n, replace=False)] = True
    return masks


@pytest.mark.world_size(1, 2, 3, 4)
def test_masked_loss_is_the_single_process_loss_on_uneven_images(dist_run, dist_world_size):
    masks, rng = _masks(), np.random.default_rng(12)
    total = int(masks.sum())
    payload = {"images": [len(rank) for rank in MASKED], "masks": masks,
               "student": rng.normal(size=(total, K)), "teacher": rng.uniform(-1, 1, size=(total, K)),
               "student_temp": 0.1, "teacher_temp": 0.05}
    out = dist_run("tests.dist.programs:masked_patch_loss", payload)

    images = sum(payload["images"][:dist_world_size])
    here = masks[:images]
    rows = int(here.sum())
    student, logits = payload["student"][:rows], payload["teacher"][:rows]
    probs = golden.sinkhorn(logits, 0.05, 3)
    want_loss = golden.ibot_masked_loss(student, probs, here, 0.1)
    want_grad = golden.ibot_masked_loss_grad(student, probs, here, 0.1)
    assert all(np.isfinite(r["loss"]) for r in out)
    assert np.mean([r["loss"] for r in out]) == pytest.approx(want_loss, rel=1e-5)
    got_grad = np.concatenate([r["grad"] for r in out]) / dist_world_size
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.concatenate([r["probs"] for r in out]), probs, rtol=1e-4, atol=1e-6)
    # The caller's count tensor is left as it was: the reference needs no count collective.
    assert [r["count"] for r in out] == [r["grad"].shape[0] for r in out]
    if dist_world_size >= 2:
        assert out[1]["loss"] == 0.0 and out[1]["grad"].shape == (0, K)  # no image


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
