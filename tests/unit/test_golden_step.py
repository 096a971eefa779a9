"""The float64 training step (harness.golden.step): its hand-written backward is the
derivative of its loss, W ranks of M micro-batches with every switch off are the one
process (the DDP rule, in float64), and each caller mistake gives its known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.golden import step as gs
from harness.golden.mistakes import BY_NAME, of_quantity
from harness.golden.sharded import CORRECT

RNG = np.random.default_rng(11)
K, S, T = 6, 4, 2
CONFIG = gs.StepConfig(global_crops=T, student_temp=0.1, teacher_temp=0.04, center_momentum=0.9,
                       ema_momentum=0.8, lr=0.05, dino_weight=1.0, ibot_weight=0.7,
                       koleo_weight=0.3)
NO_KOLEO = CONFIG._replace(koleo_weight=0.0)


def data(batch: int, masked: int) -> gs.MicroData:
    return gs.MicroData(RNG.normal(size=(S, batch, K)), RNG.normal(size=(masked, K)),
                        RNG.normal(size=(masked, K)))


def split(whole: gs.MicroData, rows: list[int], tokens: list[int]) -> list[gs.MicroData]:
    """``whole`` cut into consecutive parts of ``rows`` samples and ``tokens`` masked tokens."""
    r, t = np.cumsum([0, *rows]), np.cumsum([0, *tokens])
    return [gs.MicroData(whole.crops[:, a:b], whole.masked_student[c:d], whole.masked_teacher[c:d])
            for a, b, c, d in zip(r[:-1], r[1:], t[:-1], t[1:], strict=True)]


def layout(steps: int, rows: list[list[int]], tokens: list[list[int]]):
    """(one process's batches, the ranks' batches): ``rows[rank][micro]`` samples and
    ``tokens[rank][micro]`` masked tokens of every step's global batch."""
    whole = [data(sum(map(sum, rows)), sum(map(sum, tokens))) for _ in range(steps)]
    per_rank = [[split(w, [sum(r) for r in rows], [sum(t) for t in tokens]) for w in whole]]
    ranks = [[split(per_rank[0][k][rank], rows[rank], tokens[rank]) for k in range(steps)]
             for rank in range(len(rows))]
    return [[[w] for w in whole]], ranks


def params(config: gs.StepConfig = CONFIG) -> gs.Params:
    return gs.initial_params(5, K, config.heads)


def largest_gap(a: gs.Trajectory, b: gs.Trajectory) -> float:
    return max(float(np.abs(x[p] - y[p]).max()) for xs, ys in ((a.student, b.student),
                                                                (a.teacher, b.teacher))
               for x, y in zip(xs, ys, strict=True) for p in x)


def test_initial_weights_are_float32_numbers_of_the_seed_and_heads():
    a, b = gs.initial_params(3, K, ("cls", "patch")), gs.initial_params(3, K, ("cls", "patch"))
    assert sorted(a) == sorted(f"{h}.{p}" for h in ("cls", "patch") for p in gs.PARAMETERS)
    for name, value in a.items():
        assert np.array_equal(value, b[name])
        assert np.array_equal(value, value.astype(np.float32).astype(np.float64))
    assert list(gs.initial_params(3, K, ("cls",))) == [f"cls.{p}" for p in gs.PARAMETERS]
    assert not np.array_equal(a["cls.w1"], gs.initial_params(4, K, ("cls",))["cls.w1"])


def test_the_hand_written_backward_is_the_derivative_of_the_step_loss():
    """Central differences of the one-process loss (the teacher held fixed) against the
    update SGD made: ``(w0 - w1) / lr``."""
    batch = [[[data(5, 7)]]]
    p0 = params()
    after = gs.simulate(CONFIG, p0, batch).student[0]

    def loss(p: gs.Params) -> float:
        return gs.simulate(CONFIG, p, batch, teacher=p0).losses[0][0]["loss"]

    worst = 0.0
    for name, value in p0.items():
        for index in list(np.ndindex(value.shape))[::5]:
            up, down = dict(p0), dict(p0)
            up[name], down[name] = value.copy(), value.copy()
            up[name][index] += 1e-6
            down[name][index] -= 1e-6
            numeric = (loss(up) - loss(down)) / 2e-6
            analytic = (value[index] - after[name][index]) / CONFIG.lr
            worst = max(worst, abs(numeric - analytic) / max(1.0, abs(analytic)))
    assert worst < 1e-6


@pytest.mark.parametrize("config, rows, tokens", [
    (CONFIG, [[5], [2], [0], [3]], [[4], [1], [2], [0]]),
    (NO_KOLEO, [[3, 2], [1, 1], [2, 0]], [[2, 3], [1, 0], [0, 2]]),
], ids=["uneven-ranks-with-koleo", "uneven-micro-batches"])
def test_every_switch_off_w_ranks_of_m_micro_batches_are_one_process(config, rows, tokens):
    whole, ranks = layout(3, rows, tokens)
    one, many = gs.simulate(config, params(config), whole), gs.simulate(config, params(config), ranks)
    assert largest_gap(one, many) < 1e-12
    for k in range(3):
        for term in ("loss", *gs.TERMS):
            mean = np.mean([many.losses[r][k][term] for r in range(len(rows))])
            assert mean == pytest.approx(one.losses[0][k][term], rel=1e-12, abs=1e-12)
        for rank in range(len(rows)):
            for head in config.centers:
                np.testing.assert_allclose(many.centers[rank][k + 1][head],
                                           one.centers[0][k + 1][head], rtol=1e-12, atol=1e-14)
    assert all(all(flags.values()) for rank in many.overlap for flags in rank)


def test_the_first_center_is_the_first_batch_mean_and_then_an_ema():
    whole, _ = layout(2, [[4]], [[3]])
    out = gs.simulate(NO_KOLEO, params(NO_KOLEO), whole)
    assert out.centers[0][0] == {"dino": None, "patch": None}
    first = gs.head(params(NO_KOLEO), "cls", whole[0][0][0].crops[:T])[1].reshape(-1, K).mean(axis=0)
    np.testing.assert_allclose(out.centers[0][1]["dino"], first, rtol=1e-12)
    zero = NO_KOLEO._replace(center_init="zero")
    np.testing.assert_allclose(gs.simulate(zero, params(zero), whole).centers[0][1]["dino"],
                               0.1 * first, rtol=1e-12)


def flaws(name: str):
    return BY_NAME[name].flaws


def test_per_micro_batch_updates_and_ema_change_nothing_with_one_micro_batch_only():
    one_micro, _ = layout(3, [[6]], [[5]])
    _, two_micro = layout(3, [[3, 3]], [[2, 3]])
    correct = gs.simulate(NO_KOLEO, params(NO_KOLEO), two_micro)
    for name in ("step_center_per_micro_batch", "step_ema_per_micro_batch"):
        same = gs.simulate(NO_KOLEO, params(NO_KOLEO), one_micro, flaws(name))
        assert largest_gap(same, gs.simulate(NO_KOLEO, params(NO_KOLEO), one_micro)) == 0.0
        assert largest_gap(gs.simulate(NO_KOLEO, params(NO_KOLEO), two_micro, flaws(name)),
                           correct) > 1e-3, name


def test_the_ema_per_micro_batch_follows_the_unchanged_student_m_minus_1_times_first():
    _, micro = layout(1, [[2, 2, 2]], [[1, 1, 1]])
    p0 = params(NO_KOLEO)
    teacher = {k: v + 0.5 for k, v in p0.items()}
    out = gs.simulate(NO_KOLEO, p0, micro, flaws("step_ema_per_micro_batch"), teacher=teacher)
    m = NO_KOLEO.ema_momentum
    for name in p0:
        pre = m**2 * teacher[name] + (1 - m**2) * p0[name]
        np.testing.assert_allclose(out.teacher[0][name],
                                   m * pre + (1 - m) * out.student[0][name], rtol=1e-12)


def test_the_plain_mean_of_micro_batch_losses_is_right_on_equal_micro_batches_only():
    _, equal = layout(2, [[3, 3], [2, 2]], [[2, 2], [1, 1]])
    _, unequal = layout(2, [[4, 2], [1, 3]], [[3, 1], [2, 0]])
    mean = flaws("step_micro_mean")
    for micro, differs in ((equal, False), (unequal, True)):
        gap = largest_gap(gs.simulate(NO_KOLEO, params(NO_KOLEO), micro, mean),
                          gs.simulate(NO_KOLEO, params(NO_KOLEO), micro))
        assert (gap > 1e-6) is differs, gap


def test_a_1_m_k_patch_center_input_is_the_mean_of_per_rank_mean_tokens():
    _, uneven = layout(2, [[3], [2]], [[5], [1]])
    p0 = params(NO_KOLEO)
    out = gs.simulate(NO_KOLEO, p0, uneven, flaws("step_patch_center_rank_mean"))
    tokens = [gs.head(p0, "patch", uneven[r][0][0].masked_teacher)[1] for r in range(2)]
    np.testing.assert_allclose(out.centers[0][1]["patch"],
                               (tokens[0].mean(axis=0) + tokens[1].mean(axis=0)) / 2, rtol=1e-12)
    assert largest_gap(out, gs.simulate(NO_KOLEO, p0, uneven)) > 1e-3
    _, equal = layout(2, [[3], [2]], [[3], [3]])
    assert largest_gap(gs.simulate(NO_KOLEO, p0, equal, flaws("step_patch_center_rank_mean")),
                       gs.simulate(NO_KOLEO, p0, equal)) < 1e-12


def test_an_update_after_backward_changes_no_number_only_the_order():
    _, ranks = layout(2, [[3], [2]], [[2], [4]])
    late = gs.simulate(CONFIG, params(), ranks, flaws("step_center_after_backward"))
    assert largest_gap(late, gs.simulate(CONFIG, params(), ranks)) == 0.0
    assert late.overlap[0][0] == {"dino": False, "patch": False}


def test_every_step_mistake_is_modelled_here():
    assert {m.name for m in of_quantity("step")} == {
        "step_center_per_micro_batch", "step_ema_per_micro_batch", "step_micro_mean",
        "step_patch_center_rank_mean", "step_center_after_backward"}


def test_weights_held_in_float32_are_float32_numbers_a_little_off():
    whole, _ = layout(3, [[4]], [[3]])
    exact = gs.simulate(CONFIG, params(), whole)
    held = gs.simulate(CONFIG, params(), whole, held_in_float32=True)
    for weights in held.student + held.teacher:
        for value in weights.values():
            assert np.array_equal(value, value.astype(np.float32).astype(np.float64))
    assert 0.0 < largest_gap(exact, held) < 1e-5
    assert CORRECT.step_center_timing == "before_backward"
