"""Tests for the float64 NumPy oracles in harness.golden.

Each test checks the golden against something computed a different way: the naive
linear-domain algorithm (float64, or long double where float64 overflows), a hand
derivation, an explicit Python loop, or central finite differences.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.golden as g

GOLDEN_DIR = Path(g.__file__).parent
# Long double is 80-bit extended on x86-64 Linux (exponent range e^+-11356); on some
# platforms it is just float64, and then the wide-range reference is unavailable.
WIDE_LONGDOUBLE = np.finfo(np.longdouble).maxexp > 1024
needs_longdouble = pytest.mark.skipif(
    not WIDE_LONGDOUBLE, reason="np.longdouble has no more range than float64 here"
)
FD_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def central_diff(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar function ``f`` at ``x``."""
    x = np.array(x, dtype=np.float64)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + h
        fp = f(x)
        x[idx] = orig - h
        fm = f(x)
        x[idx] = orig
        out[idx] = (fp - fm) / (2 * h)
    return out


# --------------------------------------------------------------------------- purity


def test_golden_imports_only_numpy_and_stdlib():
    """The oracle must be independent of torch: no module in harness/golden imports it
    (an allow-list, so a transitive path through another harness package fails too)."""
    allowed = {"__future__", "numpy", "math", "operator", "typing", "collections"}
    files = sorted(GOLDEN_DIR.glob("*.py"))
    assert files, GOLDEN_DIR
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:  # relative import inside harness.golden
                    continue
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed, f"{path.name} imports {root!r}"


def test_public_api_is_exported():
    for name in [
        "softmax", "log_softmax", "sinkhorn", "sinkhorn_seed_float", "batch_center",
        "accumulated_center", "center_sequence", "centers_used", "softmax_center",
        "cross_entropy", "cls_loss", "cls_loss_grad", "ibot_loss", "ibot_loss_grad",
        "dinov2_loss", "dinov2_loss_grad",
    ]:
        assert callable(getattr(g, name)), name
        assert name in g.__all__


# --------------------------------------------------------------------------- softmax


def test_softmax_and_log_softmax_are_stable_and_consistent():
    x = rng(1).normal(size=(4, 7))
    p = g.softmax(x)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(g.log_softmax(x), np.log(p), rtol=0, atol=1e-14)
    e = np.exp(x)
    np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=1e-14)
    # Huge logits: shift-invariant, no overflow.
    np.testing.assert_allclose(g.softmax(x + 1e4), p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g.log_softmax(x * 1e3)[..., :].max(-1), 0.0, atol=1e-9)
    assert np.all(np.isfinite(g.log_softmax(x * 1e5)))
    # Other axis.
    np.testing.assert_allclose(g.softmax(x, axis=0).sum(0), 1.0, atol=1e-15)


# --------------------------------------------------------------------------- sinkhorn


@pytest.mark.parametrize("n,k", [(1, 1), (1, 5), (7, 3), (16, 10), (5, 33)])
@pytest.mark.parametrize("n_iterations", [0, 1, 3, 10])
@pytest.mark.parametrize("temp", [0.05, 0.1, 1.0])
def test_sinkhorn_log_domain_equals_naive_float64(n, k, n_iterations, temp):
    x = rng(n * 100 + k).normal(size=(n, k))
    got = g.sinkhorn(x, temp, n_iterations)
    ref = g.sinkhorn_seed_float(x, temp, n_iterations)
    assert np.all(np.isfinite(ref)), "naive must be finite on moderate inputs"
    assert got.dtype == np.float64 and got.shape == (n, k)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)


def test_sinkhorn_zero_iterations_is_exp_over_sum_times_n():
    x = rng(2).normal(size=(6, 4))
    e = np.exp(x / 0.2)
    np.testing.assert_allclose(g.sinkhorn(x, 0.2, 0), e / e.sum() * 6, rtol=1e-13)


@pytest.mark.parametrize("n_iterations", [1, 2, 3, 7])
def test_sinkhorn_rows_sum_to_one(n_iterations):
    x = rng(3).normal(size=(9, 5)) * 3
    q = g.sinkhorn(x, 0.07, n_iterations)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=0, atol=1e-13)
    assert np.all(q >= 0)


def test_sinkhorn_prototype_marginals_approach_uniform():
    n, k = 12, 5
    x = rng(4).normal(size=(n, k))
    err = [np.abs(g.sinkhorn(x, 0.3, it).sum(axis=0) - n / k).max() for it in (1, 3, 30, 500)]
    assert err[-1] < 1e-9, err
    assert err[0] > 1e-3, "one iteration should not already be balanced: the test would be vacuous"
    assert err[2] < err[0]


@pytest.mark.parametrize("n_iterations", [1, 3, 10])
def test_sinkhorn_invariant_to_per_prototype_and_global_shift(n_iterations):
    r = rng(5)
    x = r.normal(size=(10, 6))
    ref = g.sinkhorn(x, 0.1, n_iterations)
    per_proto = r.normal(size=(1, 6)) * 50
    np.testing.assert_allclose(g.sinkhorn(x + per_proto, 0.1, n_iterations), ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g.sinkhorn(x - 123.0, 0.1, n_iterations), ref, rtol=1e-10, atol=1e-13)


def test_sinkhorn_per_sample_shift_is_not_invariant():
    """A per-sample max shift changes the result at finite iterations: the golden must
    tell that faulty implementation apart (the known ways to miss, README)."""
    x = rng(6).normal(size=(8, 6))
    shifted = x - x.max(axis=1, keepdims=True)
    assert np.abs(g.sinkhorn(shifted, 0.1, 3) - g.sinkhorn(x, 0.1, 3)).max() > 1e-2


def test_sinkhorn_pm3000_identical_samples_give_uniform():
    """Hand-derived: when every sample has the same logits, each prototype row is constant
    over samples, so after one row normalisation Q = 1/(K N) and the output is 1/K --
    whatever the magnitude. Naive float64 overflows to NaN here."""
    n, k, temp = 6, 5, 0.04
    row = np.array([3000.0, -3000.0, 1500.0, 0.0, -2999.0]) * temp
    x = np.tile(row, (n, 1))
    with np.errstate(all="ignore"):
        assert not np.all(np.isfinite(g.sinkhorn_seed_float(x, temp, 3)))
    for it in (1, 3):
        np.testing.assert_allclose(g.sinkhorn(x, temp, it), 1.0 / k, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reps", [1, 2, 3])
def test_sinkhorn_pm3000_well_separated_gives_one_hot(reps):
    """Sample n has logits/temp = +3000 on prototype n % K, -3000 elsewhere: every
    prototype is claimed by ``reps`` samples, so the balanced answer is one-hot."""
    k, temp = 4, 0.1
    n = k * reps
    x = np.full((n, k), -3000.0 * temp)
    x[np.arange(n), np.arange(n) % k] = 3000.0 * temp
    expected = np.zeros((n, k))
    expected[np.arange(n), np.arange(n) % k] = 1.0
    for it in (1, 3, 10):
        q = g.sinkhorn(x, temp, it)
        assert np.all(np.isfinite(q))
        np.testing.assert_allclose(q, expected, rtol=0, atol=1e-12)


@needs_longdouble
def test_sinkhorn_pm3000_random_matches_naive_long_double():
    temp = 0.05
    x = rng(7).uniform(-3000, 3000, size=(10, 6)) * temp
    with np.errstate(all="ignore"):
        assert not np.all(np.isfinite(g.sinkhorn_seed_float(x, temp, 3)))
    for it in (0, 1, 3):
        ref = g.sinkhorn_seed_float(x, temp, it, dtype=np.longdouble)
        assert np.all(np.isfinite(ref))
        got = g.sinkhorn(x, temp, it)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, ref.astype(np.float64), rtol=1e-9, atol=1e-12)


def _outlier_logits(below: float) -> np.ndarray:
    """Logits in [0, 1) except sample 3, which sits ``below`` units under everyone (max)."""
    x = rng(8).uniform(0.0, 1.0, size=(8, 6))
    x[3] = rng(9).uniform(0.0, 1.0, size=6) - 1.0 - below
    return x


@pytest.mark.parametrize("n_iterations", [1, 3, 10])
def test_sinkhorn_outlier_sample_at_temp_004(n_iterations):
    temp = 0.04
    x = _outlier_logits(5.0)  # exp(-125): representable in float64, 0 in float32
    got = g.sinkhorn(x, temp, n_iterations)
    # The case bites: float32 naive divides 0 by 0 in the outlier's column.
    with np.errstate(all="ignore"):
        assert np.isnan(g.sinkhorn_seed_float(x, temp, n_iterations, dtype=np.float32)).any()
    # float64 naive is still finite here and must agree.
    ref = g.sinkhorn_seed_float(x, temp, n_iterations)
    assert np.all(np.isfinite(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(got[3].sum(), 1.0, atol=1e-13)


@pytest.mark.parametrize("n_iterations", [1, 3])
def test_sinkhorn_outlier_further_down_changes_nothing(n_iterations):
    """Derivation: an outlier scaled by eps = exp(-125) only enters the first row sums, at
    relative size eps; after the first column normalisation its column is O(1) again. So
    pushing it from 5 to 50 or 500 units down changes the output by far less than float64
    can see -- while the naive float64 algorithm turns NaN there."""
    temp = 0.04
    ref = g.sinkhorn(_outlier_logits(5.0), temp, n_iterations)
    for below in (50.0, 500.0):
        x = _outlier_logits(below)
        with np.errstate(all="ignore"):
            assert np.isnan(g.sinkhorn_seed_float(x, temp, n_iterations)).any()
        got = g.sinkhorn(x, temp, n_iterations)
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
        if WIDE_LONGDOUBLE and below == 50.0:  # exp(-1250) fits in 80-bit long double
            wide = g.sinkhorn_seed_float(x, temp, n_iterations, dtype=np.longdouble)
            np.testing.assert_allclose(got, wide.astype(np.float64), rtol=1e-10, atol=1e-12)


def test_sinkhorn_empty_batch():
    q = g.sinkhorn(np.zeros((0, 7)), 0.1, 3)
    assert q.shape == (0, 7) and q.dtype == np.float64


def test_sinkhorn_accepts_array_likes():
    x = [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]]
    np.testing.assert_allclose(g.sinkhorn(x, 0.5, 3), g.sinkhorn(np.array(x), 0.5, 3))
    np.testing.assert_allclose(g.sinkhorn(np.array(x, np.float32), 0.5, 3),
                               g.sinkhorn(np.array(x, np.float32).astype(np.float64), 0.5, 3))


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros(5), 0.1, 3), "logits"),
        ((np.zeros((2, 3, 4)), 0.1, 3), "logits"),
        ((np.zeros((2, 0)), 0.1, 3), "logits"),
        ((np.zeros((2, 3)), 0.0, 3), "temp"),
        ((np.zeros((2, 3)), -1.0, 3), "temp"),
        ((np.zeros((2, 3)), float("nan"), 3), "temp"),
        ((np.zeros((2, 3)), 0.1, -1), "n_iterations"),
        ((np.zeros((2, 3)), 0.1, 2.5), "n_iterations"),
        ((np.zeros((2, 3)), 0.1, True), "n_iterations"),
        ((np.array([[0.0, np.nan]]), 0.1, 3), "logits"),
        ((np.array([[0.0, np.inf]]), 0.1, 3), "logits"),
    ],
)
def test_sinkhorn_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        g.sinkhorn(*args)


# --------------------------------------------------------------------------- centering


def test_batch_center_3d_and_2d():
    x = rng(10).normal(size=(3, 5, 4))
    np.testing.assert_allclose(g.batch_center(x), x.reshape(-1, 4).mean(0), rtol=1e-15)
    # A 2-D [N, K] array is one view.
    y = x[0]
    np.testing.assert_allclose(g.batch_center(y), y.mean(0), rtol=1e-15)
    np.testing.assert_allclose(g.batch_center(y), g.batch_center(y[None]), rtol=0, atol=0)
    assert g.batch_center(y).shape == (4,)
    assert g.batch_center(x.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("bad", [np.zeros(4), np.float64(1.0), np.zeros((0, 4)), np.zeros((2, 0, 4)),
                                 np.zeros((3, 0)), np.array([[np.nan, 1.0]])])
def test_batch_center_rejects(bad):
    with pytest.raises(ValueError, match="batch"):
        g.batch_center(bad)


def test_accumulated_center_is_row_weighted_not_mean_of_means():
    r = rng(11)
    a = r.normal(size=(2, 1, 6)) + 5.0  # 2 rows
    b = r.normal(size=(2, 7, 6))  # 14 rows
    c = r.normal(size=(3, 6)) - 2.0  # 3 rows, 2-D
    got = g.accumulated_center([a, b, c])
    concat = np.concatenate([a.reshape(-1, 6), b.reshape(-1, 6), c], axis=0)
    np.testing.assert_allclose(got, concat.mean(0), rtol=1e-14, atol=1e-15)
    mean_of_means = np.mean([a.reshape(-1, 6).mean(0), b.reshape(-1, 6).mean(0), c.mean(0)], axis=0)
    assert np.abs(got - mean_of_means).max() > 0.1, "uneven sizes must make the two differ"
    # A batch with zero rows is allowed as long as something is left.
    np.testing.assert_allclose(g.accumulated_center([a, np.zeros((2, 0, 6))]), g.batch_center(a))


def test_accumulated_center_rejects():
    with pytest.raises(ValueError):
        g.accumulated_center([])
    with pytest.raises(ValueError, match="zero rows"):
        g.accumulated_center([np.zeros((0, 3)), np.zeros((2, 0, 3))])
    with pytest.raises(ValueError, match="K"):
        g.accumulated_center([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"batches\[1\]"):
        g.accumulated_center([np.zeros((2, 3)), np.zeros(3)])


def test_center_sequence_matches_hand_rolled_loop():
    r = rng(12)
    m = 0.9
    batches = [r.normal(size=(2, b, 5)) + i for i, b in enumerate([3, 1, 4, 2, 6])]
    batches.append(r.normal(size=(7, 5)))  # a 2-D teacher tensor mid-sequence
    expected = []
    center = None
    for bt in batches:
        rows = np.asarray(bt).reshape(-1, 5)
        bc = rows.sum(0) / rows.shape[0]
        center = bc if center is None else m * center + (1 - m) * bc
        expected.append(center)
    got = g.center_sequence(batches, m)
    assert len(got) == len(batches)
    for gk, ek in zip(got, expected, strict=True):
        assert gk.shape == (5,)
        np.testing.assert_allclose(gk, ek, rtol=1e-13, atol=1e-15)
    # The first batch center becomes the center (not (1 - m) * it).
    np.testing.assert_array_equal(got[0], g.batch_center(batches[0]))


def test_center_sequence_momentum_extremes_and_returns_copies():
    r = rng(13)
    batches = [r.normal(size=(2, 3, 4)) for _ in range(4)]
    seq0 = g.center_sequence(batches, 0.0)
    for s, b in zip(seq0, batches, strict=True):
        np.testing.assert_allclose(s, g.batch_center(b), rtol=1e-15)
    seq1 = g.center_sequence(batches, 1.0)
    for s in seq1:
        np.testing.assert_array_equal(s, g.batch_center(batches[0]))
    seq1[0][:] = 99.0
    assert not np.any(seq1[1] == 99.0)
    assert g.center_sequence([], 0.9) == []


def test_center_sequence_rejects():
    with pytest.raises(ValueError, match="momentum"):
        g.center_sequence([np.zeros((2, 3))], 1.5)
    with pytest.raises(ValueError, match="momentum"):
        g.center_sequence([np.zeros((2, 3))], float("nan"))
    with pytest.raises(ValueError, match="K"):
        g.center_sequence([np.zeros((2, 3)), np.zeros((2, 4))], 0.9)
    with pytest.raises(ValueError, match=r"batches\[1\]"):
        g.center_sequence([np.zeros((2, 3)), np.zeros((0, 3))], 0.9)


def test_centers_used_has_one_step_lag():
    r = rng(14)
    batches = [r.normal(size=(2, 4, 3)) for _ in range(5)]
    seq = g.center_sequence(batches, 0.8)
    used = g.centers_used(batches, 0.8)
    assert len(used) == len(batches)
    assert used[0] is None
    for k in range(1, len(batches)):
        np.testing.assert_array_equal(used[k], seq[k - 1])
        # Built from batches 0..k-1 only: changing batch k must not change it.
        changed = list(batches)
        changed[k] = changed[k] + 100.0
        np.testing.assert_array_equal(g.centers_used(changed, 0.8)[k], used[k])
    assert g.centers_used([], 0.8) == []


def test_softmax_center():
    r = rng(15)
    x = r.normal(size=(2, 3, 6))
    c = r.normal(size=6)
    temp = 0.04
    e = np.exp((x - c) / temp - ((x - c) / temp).max(-1, keepdims=True))
    expected = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(g.softmax_center(x, c, temp), expected, rtol=1e-13)
    np.testing.assert_allclose(g.softmax_center(x, c[None], temp), expected, rtol=1e-13)
    np.testing.assert_allclose(g.softmax_center(x, None, temp), g.softmax(x / temp), rtol=1e-15)
    big = g.softmax_center(x * 1e3, c, temp)
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big.sum(-1), 1.0, atol=1e-14)
    with pytest.raises(ValueError, match="center"):
        g.softmax_center(x, np.zeros(5), temp)
    with pytest.raises(ValueError, match="center"):
        g.softmax_center(x, np.zeros((2, 6)), temp)
    with pytest.raises(ValueError, match="temp"):
        g.softmax_center(x, c, 0.0)


# --------------------------------------------------------------------------- losses


def _ce_loop(t_row, s_row, temp) -> float:
    """Cross-entropy of one row, with Python floats only."""
    z = [v / temp for v in s_row]
    mx = max(z)
    lse = mx + math.log(sum(math.exp(v - mx) for v in z))
    return -sum(tk * (zk - lse) for tk, zk in zip(t_row, z, strict=True))


def _cls_loop(student, teacher, temp) -> float:
    S, B, _ = student.shape
    T = teacher.shape[0]
    total, n = 0.0, 0
    for s in range(S):
        for t in range(T):
            if s == t:
                continue
            for b in range(B):
                total += _ce_loop(teacher[t, b].tolist(), student[s, b].tolist(), temp)
            n += 1
    return total / (n * B)


def test_cross_entropy_per_row():
    r = rng(16)
    s = r.normal(size=(2, 3, 5))
    t = g.softmax(r.normal(size=(2, 3, 5)))
    got = g.cross_entropy(t, s, 0.1)
    assert got.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        assert got[idx] == pytest.approx(_ce_loop(t[idx].tolist(), s[idx].tolist(), 0.1), rel=1e-13)
    with pytest.raises(ValueError, match="shape"):
        g.cross_entropy(t, s[..., :4], 0.1)


def test_cls_loss_two_by_two_equals_double_loop():
    r = rng(17)
    student = r.normal(size=(2, 4, 6))
    teacher = g.softmax(r.normal(size=(2, 4, 6)) / 0.04)
    temp = 0.1
    # Explicitly: pairs (s=0, t=1) and (s=1, t=0), averaged over 2 pairs and 4 samples.
    hand = 0.0
    for b in range(4):
        hand += _ce_loop(teacher[1, b].tolist(), student[0, b].tolist(), temp)
        hand += _ce_loop(teacher[0, b].tolist(), student[1, b].tolist(), temp)
    hand /= 2 * 4
    assert g.cls_loss(student, teacher, temp) == pytest.approx(hand, rel=1e-13)


@pytest.mark.parametrize("S,T", [(1, 2), (2, 1), (3, 1), (4, 2), (10, 2), (3, 3), (2, 3)])
def test_cls_loss_multi_crop_equals_loop(S, T):
    r = rng(S * 10 + T)
    student = r.normal(size=(S, 3, 5))
    teacher = g.softmax(r.normal(size=(T, 3, 5)))
    assert g.cls_loss(student, teacher, 0.2) == pytest.approx(_cls_loop(student, teacher, 0.2), rel=1e-13)


def test_cls_loss_rejects():
    with pytest.raises(ValueError, match="pairs"):
        g.cls_loss(np.zeros((1, 2, 3)), np.full((1, 2, 3), 1 / 3), 0.1)
    with pytest.raises(ValueError, match="B = 0"):
        g.cls_loss(np.zeros((2, 0, 3)), np.zeros((2, 0, 3)), 0.1)
    with pytest.raises(ValueError, match="teacher_probs"):
        g.cls_loss(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)), 0.1)
    with pytest.raises(ValueError, match="student_logits"):
        g.cls_loss(np.zeros((2, 3)), np.zeros((2, 2, 3)), 0.1)
    with pytest.raises(ValueError, match="temp"):
        g.cls_loss(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)), -0.1)
    with pytest.raises(ValueError, match="pairs"):
        g.cls_loss_grad(np.zeros((1, 2, 3)), np.full((1, 2, 3), 1 / 3), 0.1)


def test_cls_loss_is_shard_size_weighted_mean_of_rank_losses():
    """What distributed-correct scaling must reproduce: with uneven shards, the global loss
    is sum_r (B_r / B) * loss_r, and the global gradient is the concatenation of
    (B_r / B) * grad_r -- not the plain mean over ranks."""
    r = rng(18)
    student = r.normal(size=(4, 9, 5))
    teacher = g.softmax(r.normal(size=(2, 9, 5)))
    cuts = [0, 2, 3, 9]
    total = g.cls_loss(student, teacher, 0.1)
    parts = [(student[:, a:b], teacher[:, a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    weighted = sum(s.shape[1] / 9 * g.cls_loss(s, t, 0.1) for s, t in parts)
    assert weighted == pytest.approx(total, rel=1e-13)
    plain = np.mean([g.cls_loss(s, t, 0.1) for s, t in parts])
    assert abs(plain - total) > 1e-3
    grad = g.cls_loss_grad(student, teacher, 0.1)
    stitched = np.concatenate([s.shape[1] / 9 * g.cls_loss_grad(s, t, 0.1) for s, t in parts], axis=1)
    np.testing.assert_allclose(stitched, grad, rtol=1e-12, atol=1e-16)


@st.composite
def cls_shapes(draw):
    S = draw(st.integers(1, 4))
    T = draw(st.integers(1, 3).filter(lambda t: S * t - min(S, t) > 0))
    return S, T, draw(st.integers(1, 5)), draw(st.integers(2, 9))


@FD_SETTINGS
@given(
    shape=cls_shapes(),
    temp=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**31 - 1),
    normalised=st.booleans(),
)
def test_cls_loss_grad_matches_finite_differences(shape, temp, seed, normalised):
    S, T, B, K = shape
    r = rng(seed)
    student = r.normal(size=(S, B, K))
    if normalised:
        teacher = g.softmax(r.normal(size=(T, B, K)) / 0.1)
    else:  # rows not summing to 1 exercise the sum_k(t) factor
        teacher = r.uniform(0.1, 2.0, size=(T, B, K))
    grad = g.cls_loss_grad(student, teacher, temp)
    assert grad.shape == (S, B, K) and grad.dtype == np.float64
    fd = central_diff(lambda x: g.cls_loss(x, teacher, temp), student)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7 * max(scale, 1.0))


def test_ibot_loss_and_empty():
    r = rng(19)
    s = r.normal(size=(7, 5))
    t = g.softmax(r.normal(size=(7, 5)))
    expected = np.mean([_ce_loop(t[i].tolist(), s[i].tolist(), 0.1) for i in range(7)])
    assert g.ibot_loss(s, t, 0.1) == pytest.approx(expected, rel=1e-13)
    assert g.ibot_loss(np.zeros((0, 5)), np.zeros((0, 5)), 0.1) == 0.0
    empty_grad = g.ibot_loss_grad(np.zeros((0, 5)), np.zeros((0, 5)), 0.1)
    assert empty_grad.shape == (0, 5) and empty_grad.dtype == np.float64
    with pytest.raises(ValueError, match="teacher_patch_probs"):
        g.ibot_loss(s, t[:, :4], 0.1)
    with pytest.raises(ValueError, match="student_patch_logits"):
        g.ibot_loss(s[None], t, 0.1)


@FD_SETTINGS
@given(
    m=st.integers(1, 6),
    k=st.integers(2, 9),
    temp=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**31 - 1),
    normalised=st.booleans(),
)
def test_ibot_loss_grad_matches_finite_differences(m, k, temp, seed, normalised):
    r = rng(seed)
    s = r.normal(size=(m, k))
    t = g.softmax(r.normal(size=(m, k))) if normalised else r.uniform(0.1, 2.0, size=(m, k))
    grad = g.ibot_loss_grad(s, t, temp)
    fd = central_diff(lambda x: g.ibot_loss(x, t, temp), s)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7 * max(np.abs(fd).max(), 1.0))


def test_dinov2_loss_combination():
    r = rng(20)
    s_cls = r.normal(size=(4, 3, 6))
    t_cls = g.softmax(r.normal(size=(2, 3, 6)))
    s_p = r.normal(size=(5, 6))
    t_p = g.softmax(r.normal(size=(5, 6)))
    kw = dict(cls_temp=0.1, patch_temp=0.2, dino_weight=0.7, ibot_weight=1.3)
    expected = 0.7 * g.cls_loss(s_cls, t_cls, 0.1) + 1.3 * g.ibot_loss(s_p, t_p, 0.2)
    assert g.dinov2_loss(s_cls, t_cls, s_p, t_p, **kw) == pytest.approx(expected, rel=1e-14)
    # Patch terms None -> CLS only (weighted).
    assert g.dinov2_loss(s_cls, t_cls, **kw) == pytest.approx(0.7 * g.cls_loss(s_cls, t_cls, 0.1), rel=1e-14)
    # Defaults: temps 0.1, weights 1.
    assert g.dinov2_loss(s_cls, t_cls, s_p, t_p) == pytest.approx(
        g.cls_loss(s_cls, t_cls, 0.1) + g.ibot_loss(s_p, t_p, 0.1), rel=1e-14)
    # Zero masked patches contribute 0.
    z = np.zeros((0, 6))
    assert g.dinov2_loss(s_cls, t_cls, z, z, **kw) == pytest.approx(0.7 * g.cls_loss(s_cls, t_cls, 0.1))

    g_cls, g_p = g.dinov2_loss_grad(s_cls, t_cls, s_p, t_p, **kw)
    np.testing.assert_allclose(g_cls, 0.7 * g.cls_loss_grad(s_cls, t_cls, 0.1), rtol=1e-15)
    np.testing.assert_allclose(g_p, 1.3 * g.ibot_loss_grad(s_p, t_p, 0.2), rtol=1e-15)
    fd_cls = central_diff(lambda x: g.dinov2_loss(x, t_cls, s_p, t_p, **kw), s_cls)
    fd_p = central_diff(lambda x: g.dinov2_loss(s_cls, t_cls, x, t_p, **kw), s_p)
    np.testing.assert_allclose(g_cls, fd_cls, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(g_p, fd_p, rtol=1e-5, atol=1e-8)
    g_only, none = g.dinov2_loss_grad(s_cls, t_cls, **kw)
    assert none is None
    np.testing.assert_allclose(g_only, g_cls, rtol=1e-15)

    with pytest.raises(ValueError, match="both"):
        g.dinov2_loss(s_cls, t_cls, s_p, None)
    with pytest.raises(ValueError, match="both"):
        g.dinov2_loss_grad(s_cls, t_cls, None, t_p)
    with pytest.raises(ValueError, match="dino_weight"):
        g.dinov2_loss(s_cls, t_cls, dino_weight=float("inf"))
