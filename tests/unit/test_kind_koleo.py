"""The ``koleo`` kind without ranks: its keys and their rules, what one process runs, the
oracle of each neighbour semantics, and the cases a style's KoLeo cannot express."""

from __future__ import annotations

import numpy as np
import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import CaseError, case_from_table
from harness.golden import koleo as oracle
from harness.kinds import koleo

CASE = {"name": "koleo-t", "kind": "koleo", "K": 8, "batch_per_rank": [4, 2, 5]}


def test_keys_default_and_apply_to_koleo_only() -> None:
    case = case_from_table(CASE)
    assert (case.koleo_topk, case.koleo_group_size) == (1, None)
    assert case.tensor_names() == (koleo.FEATURES,)
    assert case.global_data(3)[koleo.FEATURES].shape == (11, 8)  # K is the feature dimension
    with pytest.raises(CaseError, match="expected no 'koleo_topk' in a 'cls' case"):
        case_from_table({"name": "cls-t", "kind": "cls", "koleo_topk": 2})


def test_every_neighbour_set_must_hold_topk_plus_one_samples() -> None:
    with pytest.raises(CaseError, match="key 'koleo_group_size': expected koleo_topk \\+ 1 = 2 "
                                        "samples in every neighbour set at every world size, "
                                        "got a set of 1 at world size 2 \\(global batch 6"):
        case_from_table({**CASE, "koleo_group_size": 5})  # [4, 2]: groups of 5 and 1
    with pytest.raises(CaseError, match="key 'koleo_topk': .* got a set of 4 at world size 1"):
        case_from_table({**CASE, "koleo_topk": 4})
    with pytest.raises(CaseError, match="key 'koleo_group_size': expected an int >= 2, got 1"):
        case_from_table({**CASE, "koleo_group_size": 1})
    refused = case_from_table({**CASE, "koleo_topk": 4, "expect_error": "ValueError"})
    assert refused.expect_error == "ValueError"  # a case may ask the target to refuse it


def test_one_process_runs_each_group_or_each_shard_alone() -> None:
    case = case_from_table({**CASE, "koleo_group_size": 4})
    groups = koleo.neighbour_sets(case, 3, "global")
    assert groups == [(range(0, 4), 4 / 11), (range(4, 8), 4 / 11), (range(8, 11), 3 / 11)]
    shards = koleo.neighbour_sets(case, 3, "rank")
    assert shards == [(range(0, 4), 1 / 3), (range(4, 6), 1 / 3), (range(6, 11), 1 / 3)]


def test_the_per_rank_oracle_is_each_shard_alone_not_the_global_batch() -> None:
    case = case_from_table(CASE)
    x = case.global_data(3)[koleo.FEATURES]
    loss, grad = koleo.expected(case, x, 3, "rank")
    shards = [x[:4], x[4:6], x[6:]]
    assert loss == pytest.approx(np.mean([oracle.koleo_loss(s) for s in shards]), rel=1e-12)
    np.testing.assert_allclose(grad[4:6], oracle.koleo_loss_grad(shards[1]) / 3, rtol=1e-12)
    assert loss != pytest.approx(koleo.expected(case, x, 3, "global")[0], rel=1e-3)


def test_the_gradient_scale_is_the_largest_golden_gradient() -> None:
    case = case_from_table({**CASE, "world_sizes": [2, 3]})
    x3 = case.global_data(3)[koleo.FEATURES]
    assert case.grad_bound() >= np.abs(oracle.koleo_loss_grad(x3)).max() > 0


class _Limited:
    koleo_limits = {"topk": "no topk here", "uneven": "equal batches only"}

    def __init__(self, topk: int = 1, group_size: int | None = None) -> None:
        raise AssertionError("the parent must not construct the loss to ask what it can do")


class _API:
    KoLeoLoss = _Limited


@pytest.mark.parametrize("table, missing", [
    ({"batch_per_rank": 4}, []),
    ({"batch_per_rank": 4, "koleo_topk": 2}, ["koleo_topk > 1 (no topk here)"]),
    (CASE, ["local batches that differ, or groups that are not whole ranks' batches "
            "(equal batches only)"]),
    ({"batch_per_rank": 4, "koleo_group_size": 6, "world_sizes": [3]},  # 6 is not whole ranks
     ["local batches that differ, or groups that are not whole ranks' batches "
      "(equal batches only)"]),
    ({"batch_per_rank": 4, "koleo_group_size": 8, "world_sizes": [2, 4]}, []),
])
def test_a_case_is_refused_for_what_the_face_says_it_cannot(table: dict, missing: list) -> None:
    case = case_from_table({**CASE, **table})
    assert koleo.calls_missing(case, _API) == missing


def test_features_name_every_demand_of_a_case() -> None:
    case = case_from_table({**CASE, "batch_per_rank": [3, 0, 4], "koleo_topk": 2,
                            "koleo_group_size": 7, "world_sizes": [3]})
    assert koleo.features(case) == ["topk", "groups", "uneven", "small_rank"]
    assert koleo.calls_missing(case, object.__new__(type("NoLimits", (), {
        "KoLeoLoss": type("KoLeoLoss", (), {})}))) == []
