"""The matching rule of a diagnosis (harness.checks.diagnose): a mistake is named when its
model reproduces every observed value within that value's tolerance, and none otherwise."""

from __future__ import annotations

import numpy as np

from harness.checks.collect import Checks
from harness.checks.diagnose import NO_MATCH, Diagnosis, explain
from harness.golden import mistakes, sharded
from harness.golden.numerics import round_bf16

RNG = np.random.default_rng(3)
SIZES = [5, 2]


def batches() -> list:
    data = RNG.normal(size=(3, 7, 4)) + 1.0
    return [[[data[s, :5]] for s in range(3)], [[data[s, 5:]] for s in range(3)]]


def predict_from(per_rank: list) -> callable:
    return lambda flaws: [c for rank in sharded.centers(per_rank, 0.9, flaws) for c in rank]


def test_the_mistake_whose_model_gives_the_numbers_is_named():
    per_rank = batches()
    name = "center_mean_of_means"
    observed = [(c, 1e-6) for c in predict_from(per_rank)(mistakes.BY_NAME[name].flaws)]
    diagnosis = explain("center", observed, predict_from(per_rank))
    assert diagnosis.names == [name]
    assert diagnosis.text == "matches: " + mistakes.BY_NAME[name].description


def test_numbers_off_by_a_constant_match_no_known_mistake():
    per_rank = batches()
    correct = predict_from(per_rank)(sharded.CORRECT)
    observed = [(None if c is None else c + 0.05, 1e-6) for c in correct]
    diagnosis = explain("center", observed, predict_from(per_rank))
    assert diagnosis.names == [] and diagnosis.text == NO_MATCH


def test_a_missing_value_or_a_wrong_count_matches_nothing():
    per_rank = batches()
    values = predict_from(per_rank)(mistakes.BY_NAME["ema_weights_swapped"].flaws)
    assert values[0] is None and values[1] is not None
    assert explain("center", [(values[0], 1e-6), (None, 1e-6)] + [(c, 1e-6) for c in values[2:]],
                   predict_from(per_rank)).names == []  # step 1 has a center, not None
    assert explain("center", [(c, 1e-6) for c in values[:-1]], predict_from(per_rank)).names == []


def test_bf16_rounding_ties_are_within_the_models_slack():
    per_rank = batches()
    values = predict_from(per_rank)(mistakes.BY_NAME["center_bf16"].flaws)
    # the neighbouring bfloat16 number: a tie the target rounded the other way
    def next_bf16(c):  # one unit in the last place of bfloat16's 8 significant bits
        return c + 2.0 ** (np.floor(np.log2(np.abs(c))) - 7)

    nudged = [(None if c is None else next_bf16(c), 1e-6) for c in values]
    assert all(c is None or np.array_equal(round_bf16(c), c) for c, _ in nudged)
    assert explain("center", nudged, predict_from(per_rank)).names == ["center_bf16"]


def test_values_off_the_bfloat16_grid_are_no_bf16_center():
    """As close as a float16 count's rounding (2^-11), but not bfloat16 numbers."""
    per_rank = batches()
    values = predict_from(per_rank)(mistakes.BY_NAME["center_bf16"].flaws)
    off = [(None if c is None else c * (1 + 2.0**-11), 1e-6) for c in values]
    assert "center_bf16" not in explain("center", off, predict_from(per_rank)).names


def test_diagnoses_of_two_quantities_add_up_and_ride_on_the_checks():
    a, b = (Diagnosis((mistakes.BY_NAME[n],)) for n in ("center_bf16", "loss_local_batch"))
    checks = Checks()
    checks.add("center", "dist_vs_single", [1.0], [2.0], 1e-6)
    assert checks.failed("center") and not checks.failed("probs")
    checks.diagnose(a)
    checks.diagnose(b + a)
    result = checks.result()
    assert result.diagnosis.names == ["center_bf16", "loss_local_batch"]
    assert isinstance(result, list) and len(result) == 1



def test_numbers_correct_code_computes_name_no_mistake_not_even_one_that_changes_nothing():
    """A CLS-only model ignores the iBOT switch, so that mistake 'reproduces' correct
    numbers as well as correct code does: then nothing is named, and the text says why."""
    from harness.checks.diagnose import AS_CORRECT

    students = [RNG.normal(size=(2, n, 8)) for n in (3, 1)]
    teachers = [np.full((1, n, 8), 1 / 8) for n in (3, 1)]

    def predict(flaws: sharded.Flaws) -> list:
        return [v for loss, grad in sharded.cls_local(students, teachers, 0.1, flaws)
                for v in (loss, grad)]

    same = predict(mistakes.BY_NAME["ibot_per_rank_mean"].flaws)
    assert all(np.array_equal(a, b) for a, b in zip(same, predict(sharded.CORRECT), strict=True))
    diagnosis = explain("loss", [(v, 1e-6) for v in predict(sharded.CORRECT)], predict)
    assert diagnosis.names == [] and diagnosis.as_correct and diagnosis.text == AS_CORRECT
    wrong = explain("loss", [(v, 1e-6) for v in predict(mistakes.BY_NAME["loss_local_batch"].flaws)],
                    predict)
    assert wrong.names == ["loss_local_batch"] and not wrong.as_correct
