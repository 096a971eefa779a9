"""The float64 models of the known mistakes (harness.golden.sharded / .mistakes).

With every switch off a model is the single-process golden on any sharding; each switch
on gives the numbers the mistake is known for; and the catalogue of mistakes is linked to
the reference's variation points, so every numeric planted fault has its model.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from harness import golden
from harness.faults import FAULTS, mistake_of, switch_of
from harness.golden import koleo as golden_koleo
from harness.golden import mistakes, sharded
from harness.golden.numerics import round_bf16
from harness.losses.variants import REFERENCE, Variant

RNG = np.random.default_rng(7)
K = 6
UNEVEN = [5, 2, 0, 3]


def split(array: np.ndarray, sizes: list[int], axis: int = 0) -> list[np.ndarray]:
    return np.split(array, np.cumsum(sizes)[:-1], axis=axis)


def flaw(name: str) -> sharded.Flaws:
    return mistakes.BY_NAME[name].flaws


# ------------------------------------------------------------------------ catalogue links

def test_every_numeric_fault_has_the_model_of_its_own_switch():
    for name, fault in FAULTS.items():
        mistake = mistake_of(fault)
        if fault.caught_by != "check":
            assert mistake is None, name
            continue
        assert mistake is not None, f"{name}: no model of {switch_of(fault)}"
        assert mistake.switch == switch_of(fault), name


def test_flaws_are_the_reference_switches_with_the_same_defaults():
    variant = {f.name: f for f in fields(Variant)}
    for name, default in sharded.Flaws._field_defaults.items():
        assert name in variant, f"Flaws.{name} is no variation point of the reference"
        assert default == getattr(REFERENCE, name), name
    assert set(sharded.Flaws._field_defaults) == set(sharded.Flaws._fields)


def test_mistakes_are_named_once_and_each_flips_one_switch():
    assert len(mistakes.BY_NAME) == len(mistakes.MISTAKES)
    for m in mistakes.MISTAKES:
        assert set(m.quantities) <= set(mistakes.QUANTITIES), m.name
        changed = [f for f in sharded.Flaws._fields
                   if getattr(m.flaws, f) != getattr(sharded.CORRECT, f)]
        assert changed == [m.switch[0]], m.name
        assert m.description and m.description == m.description.strip()
    with pytest.raises(ValueError, match="quantity"):
        mistakes.of_quantity("probs")


def test_bf16_rounding_is_torchs():
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=4000) * 3
    want = torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).double().numpy()
    assert np.array_equal(round_bf16(x), want)
    assert np.isnan(round_bf16(np.array([np.nan]))).all()


# ------------------------------------------------------------------------------ centering

def center_batches(sizes: list[int], steps: int = 3, updates: int = 1, views: int = 2):
    data = RNG.normal(size=(steps, updates, views, sum(sizes), K)) + 1.0
    per_rank = [[[split(data[s, u], sizes, axis=1)[r].reshape(-1, K) for u in range(updates)]
                 for s in range(steps)] for r in range(len(sizes))]
    whole = [[data[s, u].reshape(-1, K) for u in range(updates)] for s in range(steps)]
    return data, per_rank, whole


def test_correct_centers_are_the_golden_ema_on_every_rank():
    _, per_rank, whole = center_batches(UNEVEN, updates=2)
    want = golden.center_sequence([np.concatenate(step) for step in whole], 0.9)
    for rank_centers in sharded.centers(per_rank, 0.9):
        assert rank_centers[0] is None
        for got, expected in zip(rank_centers[1:], want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_zero_init_centers_start_at_zero():
    _, per_rank, _ = center_batches([3, 4])
    out = sharded.centers(per_rank, 0.9, center_init="zero")
    assert np.array_equal(out[0][0], np.zeros(K))
    first = np.concatenate([b[0] for b in (per_rank[0][0], per_rank[1][0])]).mean(axis=0)
    np.testing.assert_allclose(out[1][1], 0.1 * first, rtol=1e-12)


def test_center_mistakes_give_their_known_numbers():
    sizes = [4, 1]
    _, per_rank, _ = center_batches(sizes, steps=2, views=1)
    rows = [per_rank[r][0][0] for r in range(2)]
    total = rows[0].sum(axis=0) + rows[1].sum(axis=0)
    first = {name: [c[1] for c in sharded.centers(per_rank, 0.9, flaw(name))]
             for name in mistakes.BY_NAME if "center" in mistakes.BY_NAME[name].quantities}
    means = (rows[0].mean(axis=0) + rows[1].mean(axis=0)) / 2
    np.testing.assert_allclose(first["center_mean_of_means"][1], means)
    np.testing.assert_allclose(first["center_divisor_no_world"][1], total / 1)
    np.testing.assert_allclose(first["center_divisor_local_times_world"][0], total / 8)
    np.testing.assert_allclose(first["center_not_all_reduced"][1], rows[1].mean(axis=0))
    np.testing.assert_array_equal(first["center_bf16"][0], round_bf16(total / 5))
    second = sharded.centers(per_rank, 0.9, flaw("ema_weights_swapped"))[0][2]
    batch = (per_rank[0][1][0].sum(axis=0) + per_rank[1][1][0].sum(axis=0)) / 5
    np.testing.assert_allclose(second, 0.1 * total / 5 + 0.9 * batch)


def test_overwritten_update_keeps_only_the_last_batch():
    _, per_rank, whole = center_batches([2, 3], steps=1, updates=2)
    out = sharded.centers(per_rank, 0.9, flaw("updates_overwrite"))
    np.testing.assert_allclose(out[0][1], whole[0][1].mean(axis=0))


def _scale_only() -> set[str]:
    """The mistakes of the scale-only planted faults: invisible at catalogue sizes."""
    from harness.faults import FAULTS, mistake_of

    return {m.name for f in FAULTS.values() if f.family == "scale" and (m := mistake_of(f))}


def micro(per_rank, first: int = 1):
    """Every update batch of ``center_batches`` cut into two micro-batches: its first
    ``first`` rows, then the rest (unequal ones: what a mean of their means gets wrong)."""
    return [[[piece for batch in step for piece in (batch[:first], batch[first:])]
             for step in rank] for rank in per_rank]


def test_every_center_mistake_shows_on_uneven_shards_and_mean_of_means_not_on_equal():
    _, per_rank, _ = center_batches(UNEVEN, updates=2)
    per_rank = micro(per_rank)
    correct = sharded.centers(per_rank, 0.9)
    for m in mistakes.of_quantity("center"):
        if m.name in _scale_only():
            continue
        got = sharded.centers(per_rank, 0.9, m.flaws)
        assert any(g is not None and c is not None and not np.allclose(g, c)
                   for gr, cr in zip(got, correct, strict=True) for g, c in zip(gr, cr, strict=True)), m.name
    _, equal, _ = center_batches([3, 3])
    same = sharded.centers(equal, 0.9, flaw("center_mean_of_means"))
    for got, want in zip(same[0][1:], sharded.centers(equal, 0.9)[0][1:], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_micro_batches_of_a_step_give_its_center_on_any_cut():
    """One apply over a step's micro-batches (empty ones included) is the EMA step of the
    step's whole batch: cutting changes nothing."""
    _, per_rank, _ = center_batches(UNEVEN, updates=2)
    whole = sharded.centers(per_rank, 0.9)
    for first in (0, 1, 3):
        for got, want in zip(sharded.centers(micro(per_rank, first), 0.9), whole, strict=True):
            for g, w in zip(got[1:], want[1:], strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-12)


def test_micro_batch_center_mistakes_give_their_known_numbers():
    _, per_rank, _ = center_batches([4, 2], steps=2, views=1)
    cut = micro(per_rank)  # micro-batches of 1 + 1 and 3 + 1 rows: global 2 and 4
    rows = [[cut[r][0][m] for r in range(2)] for m in range(2)]
    means = [np.concatenate(parts).mean(axis=0) for parts in rows]
    first = sharded.centers(cut, 0.9, flaw("center_mean_of_micro_batch_means"))
    np.testing.assert_allclose(first[0][1], (means[0] + means[1]) / 2, rtol=1e-12)
    ema = sharded.centers(cut, 0.9, flaw("center_ema_per_micro_batch"))
    np.testing.assert_allclose(ema[1][1], 0.9 * means[0] + 0.1 * means[1], rtol=1e-12)
    zero = sharded.centers(cut, 0.9, flaw("center_ema_per_micro_batch"), center_init="zero")
    np.testing.assert_allclose(zero[0][1], 0.9 * 0.1 * means[0] + 0.1 * means[1], rtol=1e-12)
    _, equal, _ = center_batches([4, 2], steps=2, views=1)  # two updates of 6 rows each
    for got, want in zip(sharded.centers(equal, 0.9, flaw("center_mean_of_micro_batch_means"))[0],
                         sharded.centers(equal, 0.9)[0], strict=True):
        assert got is None and want is None or np.allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------- micro-batches

def micro_cls(sizes: list[list[int]], *flaws: sharded.Flaws):
    """The CLS model's step per rank (for each of ``flaws``, on the same data), ranks cut
    into micro-batches of ``sizes[r]``."""
    student, teacher, s, t = cls_inputs([sum(n) for n in sizes])
    pieces = [[(np.split(s[r], np.cumsum(sizes[r])[:-1], axis=1)[m],
                np.split(t[r], np.cumsum(sizes[r])[:-1], axis=1)[m]) for r in range(len(sizes))]
              for m in range(len(sizes[0]))]

    def step(f: sharded.Flaws):
        per_micro = [sharded.cls_local([p[0] for p in ps], [p[1] for p in ps], 0.1, f)
                     for ps in pieces]
        return sharded.accumulated(per_micro, sharded.micro_weights(sizes, f), 1)

    return student, teacher, *(step(f) for f in (flaws or (sharded.CORRECT,)))


@pytest.mark.parametrize("sizes", [[[3, 1], [0, 2], [2, 0]], [[1, 0, 0], [2, 2, 2]], [[4], [1]]])
def test_micro_batches_weighed_by_their_share_add_up_to_the_step(sizes):
    student, teacher, step = micro_cls(sizes)
    assert np.mean([loss for loss, _ in step]) == pytest.approx(golden.cls_loss(student, teacher, 0.1))
    grads = np.concatenate([g / len(sizes) for _, g in step], axis=1)
    np.testing.assert_allclose(grads, golden.cls_loss_grad(student, teacher, 0.1), atol=1e-12)


def test_equal_weights_are_a_mean_of_micro_batch_means_right_on_equal_micro_batches_only():
    assert sharded.micro_weights([[3, 1], [0, 2]]) == [0.5, 0.5]  # global 3 and 3
    assert sharded.micro_weights([[3, 1], [1, 0]]) == [0.8, 0.2]
    assert sharded.micro_weights([[3, 1], [1, 0]], flaw("loss_mean_of_micro_batch_means")) == [0.5, 0.5]
    assert sharded.micro_weights([[0, 0], [0, 0]]) == [0.0, 0.0]
    student, teacher, step = micro_cls([[3, 1], [1, 0]], flaw("loss_mean_of_micro_batch_means"))
    first, second = golden.cls_loss(student[:, [0, 1, 2, 4]], teacher[:, [0, 1, 2, 4]], 0.1), \
        golden.cls_loss(student[:, [3]], teacher[:, [3]], 0.1)
    assert np.mean([loss for loss, _ in step]) == pytest.approx((first + second) / 2)
    _, _, equal, correct = micro_cls([[3, 1], [0, 2]], flaw("loss_mean_of_micro_batch_means"),
                                     sharded.CORRECT)
    assert [loss for loss, _ in equal] == pytest.approx([loss for loss, _ in correct])


# ------------------------------------------------------------------------------- Sinkhorn

def test_correct_sinkhorn_is_the_golden_on_any_sharding():
    logits = RNG.normal(size=(sum(UNEVEN), K)) * 2
    want = golden.sinkhorn(logits, 0.1, 3)
    got = np.concatenate(sharded.sinkhorn(split(logits, UNEVEN), 0.1, 3))
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_local_count_is_exact_on_equal_shards_only():
    logits = RNG.normal(size=(8, K))
    model = flaw("sinkhorn_local_count")
    np.testing.assert_allclose(np.concatenate(sharded.sinkhorn(split(logits, [4, 4]), 0.1, 3, model)),
                               golden.sinkhorn(logits, 0.1, 3), atol=1e-12)
    uneven = np.concatenate(sharded.sinkhorn(split(logits, [6, 2]), 0.1, 3, model))
    assert not np.allclose(uneven, golden.sinkhorn(logits, 0.1, 3), atol=1e-6)


def test_seed_local_count_with_world_size_gives_the_same_output():
    """The seed's Q /= B with B = n_local * W: a global factor W that row normalisation
    removes, so one model covers B = n_local and B = n_local * W."""
    logits = RNG.normal(size=(7, K))
    shards = split(logits, [5, 2])
    model = sharded.sinkhorn(shards, 0.2, 3, flaw("sinkhorn_local_count"))
    seed = []
    q = [np.exp(s / 0.2).T for s in shards]
    for _ in range(3):
        rows = sum(x.sum(axis=1, keepdims=True) for x in q)
        q = [x / rows / K for x in q]
        q = [x / x.sum(axis=0, keepdims=True) / (x.shape[1] * 2) for x in q]
    seed = [(x * x.shape[1] * 2).T for x in q]
    for got, want in zip(model, seed, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_no_shift_overflows_like_float32_and_other_sinkhorn_mistakes_differ():
    big = RNG.uniform(-120, 120, size=(6, K))
    out = sharded.sinkhorn(split(big, [4, 2]), 0.04, 3, flaw("sinkhorn_no_shift"))
    assert all(np.isnan(o).all() for o in out)
    small = RNG.normal(size=(9, K)) + np.arange(9)[:, None]
    correct = np.concatenate(sharded.sinkhorn(split(small, [6, 3]), 0.5, 2))
    np.testing.assert_allclose(np.concatenate(sharded.sinkhorn(
        split(small, [6, 3]), 0.5, 2, flaw("sinkhorn_no_shift"))), correct, atol=1e-6)
    for name in ("sinkhorn_per_sample_shift", "sinkhorn_one_iteration_short",
                 "sinkhorn_rows_not_reduced", "sinkhorn_local_count"):
        got = np.concatenate(sharded.sinkhorn(split(small, [6, 3]), 0.5, 2, flaw(name)))
        assert not np.allclose(got, correct, atol=1e-5), name


def test_one_iteration_short_is_the_golden_with_one_fewer():
    logits = RNG.normal(size=(5, K))
    got = sharded.sinkhorn([logits], 0.1, 3, flaw("sinkhorn_one_iteration_short"))[0]
    np.testing.assert_allclose(got, golden.sinkhorn(logits, 0.1, 2), atol=1e-12)


# --------------------------------------------------------------------------------- losses

def cls_inputs(sizes: list[int], views: int = 2):
    student = RNG.normal(size=(views, sum(sizes), K))
    teacher = golden.softmax(RNG.normal(size=(views, sum(sizes), K)))
    return student, teacher, split(student, sizes, 1), split(teacher, sizes, 1)


def pair_ce(teacher: np.ndarray, student: np.ndarray) -> np.ndarray:
    """``[T, S, B]`` cross-entropy of every (teacher view, student view) pair."""
    t, s = np.broadcast_arrays(teacher[:, None], student[None])
    return golden.cross_entropy(t, s, 0.1)


def test_correct_cls_follows_the_ddp_rule_on_uneven_shards():
    sizes = [4, 1, 3]
    student, teacher, s, t = cls_inputs(sizes)
    per_rank = sharded.cls_local(s, t, 0.1)
    assert np.mean([loss for loss, _ in per_rank]) == pytest.approx(golden.cls_loss(student, teacher, 0.1))
    grads = np.concatenate([g / 3 for _, g in per_rank], axis=1)
    np.testing.assert_allclose(grads, golden.cls_loss_grad(student, teacher, 0.1), atol=1e-12)


def test_cls_mistakes_give_their_known_numbers():
    student, teacher, s, t = cls_inputs([4, 2])
    diag = sharded.cls_local([student], [teacher], 0.1, flaw("diagonal_not_excluded"))[0][0]
    ce = pair_ce(teacher, student)  # [T, S, B]
    assert diag == pytest.approx(ce.mean())
    local = sharded.cls_local(s, t, 0.1, flaw("loss_local_batch"))
    assert local[1][0] == pytest.approx(golden.cls_loss(s[1], t[1], 0.1))


def test_ibot_correct_and_per_rank_mean():
    sizes = [5, 0, 2]
    student, teacher = RNG.normal(size=(7, K)), golden.softmax(RNG.normal(size=(7, K)))
    s, t = split(student, sizes), split(teacher, sizes)
    correct = sharded.ibot_local(s, t, 0.1)
    assert np.mean([loss for loss, _ in correct]) == pytest.approx(golden.ibot_loss(student, teacher, 0.1))
    np.testing.assert_allclose(np.concatenate([g / 3 for _, g in correct]),
                               golden.ibot_loss_grad(student, teacher, 0.1), atol=1e-12)
    mean = sharded.ibot_local(s, t, 0.1, flaw("ibot_per_rank_mean"))
    assert mean[0][0] == pytest.approx(golden.ibot_loss(s[0], t[0], 0.1))
    assert np.isnan(mean[1][0])  # 0/0 on the rank with no patch


def test_sum_all_pairs_style_is_local_only_with_the_mistake():
    student, teacher, s, t = cls_inputs([3, 1])
    every = pair_ce(teacher, student).mean(axis=-1).sum()
    got = sharded.cls_local([student], [teacher], 0.1, reduction="sum_all_pairs")[0][0]
    assert got == pytest.approx(every)
    local = sharded.cls_local(s, t, 0.1, sharded.CORRECT._replace(cls_normalisation="local_batch"),
                              reduction="sum_all_pairs")
    ce = pair_ce(t[1], s[1]).mean(axis=-1).sum()
    assert local[1][0] == pytest.approx(ce)


def masked_inputs(images: list[int], n: int = 6):
    """Per rank: ``[images_r, n]`` masks (some images mask nothing), and the global batch."""
    masks = RNG.random(size=(sum(images), n)) < 0.4
    masks[1] = False  # an image that masks nothing still counts in the divisor
    rows = int(masks.sum())
    student, teacher = RNG.normal(size=(rows, K)), golden.softmax(RNG.normal(size=(rows, K)))
    per_image = masks.sum(axis=1)
    starts = np.cumsum([0, *images])
    counts = [int(per_image[a:b].sum()) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return (masks, student, teacher, split(masks, images), split(student, counts),
            split(teacher, counts))


def test_ibot_masked_correct_follows_the_ddp_rule_on_uneven_images():
    masks, student, teacher, m, s, t = masked_inputs([3, 0, 2, 4])
    correct = sharded.ibot_masked_local(s, t, m, 0.1)
    assert np.mean([loss for loss, _ in correct]) == pytest.approx(
        golden.ibot_masked_loss(student, teacher, masks, 0.1))
    np.testing.assert_allclose(np.concatenate([g / 4 for _, g in correct]),
                               golden.ibot_masked_loss_grad(student, teacher, masks, 0.1), atol=1e-12)
    assert correct[1][0] == 0.0  # the rank without images adds nothing


def test_ibot_masked_local_images_is_each_ranks_own_loss():
    _, _, _, m, s, t = masked_inputs([3, 0, 2, 4])
    local = sharded.ibot_masked_local(s, t, m, 0.1, flaw("ibot_masked_local_images"))
    for rank in (0, 2, 3):
        assert local[rank][0] == pytest.approx(golden.ibot_masked_loss(s[rank], t[rank], m[rank], 0.1))
        np.testing.assert_allclose(local[rank][1],
                                   golden.ibot_masked_loss_grad(s[rank], t[rank], m[rank], 0.1),
                                   atol=1e-12)
    assert np.isnan(local[1][0])  # 0/0 on the rank without images, as DINOv2's forward_masked
    _, _, _, m, s, t = masked_inputs([3, 3])  # equal images per rank: the mistake is exact
    for (got, _), (want, _) in zip(sharded.ibot_masked_local(s, t, m, 0.1, flaw("ibot_masked_local_images")),
                                   sharded.ibot_masked_local(s, t, m, 0.1), strict=True):
        assert got == pytest.approx(want)


# ---------------------------------------------------------------------------------- KoLeo

def koleo_features(sizes: list[int], d: int = 8) -> tuple[np.ndarray, list[np.ndarray]]:
    x = RNG.normal(size=(sum(sizes), d))
    return x, split(x, sizes)


@pytest.mark.parametrize("sizes, topk, group", [(UNEVEN, 1, None), ([3, 3, 3], 2, None),
                                                ([4, 1, 6], 1, 4), ([5, 0, 2], 2, 7)])
def test_correct_koleo_follows_the_ddp_rule_on_any_sharding(sizes, topk, group):
    x, shards = koleo_features(sizes)
    per_rank = sharded.koleo_local(shards, topk, group)
    world = len(sizes)
    assert np.mean([loss for loss, _ in per_rank]) == pytest.approx(
        golden_koleo.koleo_loss(x, topk, group), rel=1e-12)
    np.testing.assert_allclose(np.concatenate([g / world for _, g in per_rank]),
                               golden_koleo.koleo_loss_grad(x, topk, group), atol=1e-12)


def test_local_neighbours_are_each_shard_alone():
    x, shards = koleo_features([4, 4, 4])
    local = sharded.koleo_local(shards, 1, None, flaw("koleo_local_neighbours"))
    for (loss, grad), part in zip(local, shards, strict=True):
        assert loss == pytest.approx(golden_koleo.koleo_loss(part), rel=1e-12)
        np.testing.assert_allclose(grad, golden_koleo.koleo_loss_grad(part), atol=1e-12)


def test_a_gather_without_autograd_keeps_the_loss_and_loses_the_neighbours_gradient():
    x, shards = koleo_features([5, 3])
    correct = sharded.koleo_local(shards, 2)
    lost = sharded.koleo_local(shards, 2, flaws=flaw("koleo_gather_no_grad"))
    assert [loss for loss, _ in lost] == pytest.approx([loss for loss, _ in correct], rel=1e-12)
    assert not np.allclose(lost[0][1], correct[0][1], atol=1e-6)
    pairs = sharded.koleo_pairs(shards, 2)  # only the query side: one term per pair of mine
    x_hat = golden_koleo.normalise(x)
    grad_hat = np.zeros_like(x)
    for i, j, scale in pairs:
        np.add.at(grad_hat, i, golden_koleo.pair_terms(x_hat[i], x_hat[j])[1] * scale)
    np.testing.assert_allclose(np.concatenate([g for _, g in lost]),
                               golden_koleo.to_features(x, grad_hat), atol=1e-12)
    one = sharded.koleo_local([x], 2, flaws=flaw("koleo_gather_no_grad"))  # nothing gathered
    np.testing.assert_allclose(one[0][1], golden_koleo.koleo_loss_grad(x, 2), atol=1e-12)


def test_the_rank_times_local_offset_pairs_samples_with_themselves_on_uneven_shards_only():
    _, equal = koleo_features([3, 3, 3])
    assert sharded.koleo_local(equal, flaws=flaw("koleo_self_offset"))[2][0] == pytest.approx(
        sharded.koleo_local(equal)[2][0], rel=1e-12)
    x, shards = koleo_features([5, 2])
    pairs = sharded.koleo_pairs(shards, flaws=flaw("koleo_self_offset"))
    assert list(pairs[1].queries) == list(pairs[1].neighbours) == [5, 6]  # columns 2, 3 masked
    loss = sharded.koleo_local(shards, flaws=flaw("koleo_self_offset"))[1][0]
    alone = -np.log(golden_koleo.EPS * np.sqrt(x.shape[1]) + golden_koleo.EPS)
    assert loss == pytest.approx(2 * alone * 2 / 7, rel=1e-6)  # W / (N * topk) per term


def test_the_local_mean_is_right_on_equal_shards_and_0_over_0_on_an_empty_rank():
    _, equal = koleo_features([4, 4])
    local = sharded.koleo_local(equal, flaws=flaw("koleo_local_mean"))
    assert [loss for loss, _ in local] == pytest.approx(
        [loss for loss, _ in sharded.koleo_local(equal)], rel=1e-12)
    _, shards = koleo_features([5, 0, 2])
    out = sharded.koleo_local(shards, flaws=flaw("koleo_local_mean"))
    assert np.isnan(out[1][0])
    correct = sharded.koleo_local(shards)
    assert out[0][0] == pytest.approx(correct[0][0] * 7 / (3 * 5), rel=1e-12)


def test_every_form_of_a_mistake_flips_one_switch_of_its_own_field():
    """A mistake's other forms (``also``) model it done another way: the same switch
    field, another value -- never a second mistake."""
    for m in mistakes.MISTAKES:
        assert m.models[0] == m.flaws
        for flaws, (field, value) in zip(m.models[1:], m.also, strict=True):
            changed = [f for f in sharded.Flaws._fields
                       if getattr(flaws, f) != getattr(sharded.CORRECT, f)]
            assert changed == [field] == [m.switch[0]] and value != m.switch[1], m.name


# ---------------------------------------------------------------------------- scale only

def test_a_float16_count_is_exact_to_2048_and_wrong_above():
    """The center's row count held in float16: the same centers up to 2048 rows, off by
    float16's rounding of the count above it (2049 -> 2048); a loss's global count: inf
    above 65504, which scales the loss to 0."""
    model = flaw("center_count_float16")
    for rows, off in ((2048, False), (2049, True)):
        batches = [[[np.ones((rows, 2))]]]
        got = sharded.centers(batches, 0.9, model, center_init="first")[0][1]
        assert (not np.allclose(got, 1.0, rtol=1e-12, atol=0)) is off, rows
        np.testing.assert_allclose(got, rows / float(np.float16(rows)))
    loss = flaw("loss_count_float16")
    s = [np.zeros((70000, 3))]
    assert sharded.ibot_local(s, [np.full((70000, 3), 1 / 3)], 0.1, loss)[0][0] == 0.0
    assert sharded.ibot_local(s, [np.full((70000, 3), 1 / 3)], 0.1)[0][0] > 0.0


def test_one_node_world_size_is_right_up_to_8_ranks():
    model = flaw("world_size_of_one_node")
    for world, same in ((8, True), (16, False)):
        s = [RNG.normal(size=(1, 2, K)) for _ in range(world)]
        t = [np.full((2, 2, K), 1 / K) for _ in range(world)]
        got = sharded.cls_local(s, t, 0.1, model)[0][0]
        want = sharded.cls_local(s, t, 0.1)[0][0]
        assert bool(np.isclose(got, want, rtol=1e-12)) is same, world
        if not same:
            assert np.isclose(got, want * 8 / world, rtol=1e-12)

