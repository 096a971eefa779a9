"""The ``ibot_masked`` kind without ranks: its mask layout, its keys, its API needs."""

from __future__ import annotations

import numpy as np
import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import CaseError, case_from_table
from harness.cases.kind import get
from harness.kinds.ibot_masked import masked_counts, masks

CASE = {"name": "ibot_masked-t", "kind": "ibot_masked", "K": 8, "patches_per_image": 10,
        "images_per_rank": [3, 1, 2], "mask_ratio": [[0.0, 0.6], [0.0, 0.0], [0.3, 0.3]]}


def test_an_image_has_the_same_mask_at_every_world_size() -> None:
    case = case_from_table(CASE)
    widest = masks(case, 3)
    assert widest.shape == (6, 10)
    for w in (1, 2):
        np.testing.assert_array_equal(masks(case, w), widest[:sum(case.image_counts(w))])
    counts = widest.sum(axis=1)
    assert counts[3] == 0 and list(counts[4:]) == [3, 3]  # rank 1 masks nothing; floor(10 * 0.3)
    assert masked_counts(case, 3) == [int(counts[:3].sum()), 0, 6]


def test_masked_rows_follow_the_layout_and_are_prefixes() -> None:
    case = case_from_table(CASE)
    data3, data2 = case.global_data(3), case.global_data(2)
    assert data3["student_masked"].shape == (sum(masked_counts(case, 3)), 8)
    assert case.shard_sizes("teacher_masked_logits", 3) == masked_counts(case, 3)
    m2 = sum(masked_counts(case, 2))
    np.testing.assert_array_equal(data2["student_masked"], data3["student_masked"][:m2])


def test_mask_keys_are_validated() -> None:
    for ratio in ([0.5, 0.1], [0.1, 1.5], [[0.1, 0.2], 0.3], []):
        with pytest.raises(CaseError, match="key 'mask_ratio': expected \\[lo, hi\\]"):
            case_from_table({**CASE, "mask_ratio": ratio})
    with pytest.raises(CaseError, match="key 'mask_ratio': expected a non-empty global batch"):
        case_from_table({**CASE, "mask_ratio": [0.0, 0.05]})  # floor(10 * u) = 0 everywhere
    with pytest.raises(CaseError, match="expected no 'n_iterations' with teacher_norm = 'softmax'"):
        case_from_table({**CASE, "teacher_norm": "softmax", "n_iterations": 2})
    with pytest.raises(CaseError, match="expected no 'masked_per_rank' in a 'ibot_masked' case"):
        case_from_table({**CASE, "masked_per_rank": 4})


class _Loss:
    def __init__(self, student_temp: float) -> None:
        raise AssertionError("the parent must not construct the loss to ask what it has")

    def forward_masked(self) -> None: ...


class _API:
    iBOTMaskedPatchLoss = _Loss  # noqa: N815 - the name the dinov2 style gives it


def test_needs_are_checked_on_the_class_without_building_it() -> None:
    import harness.losses
    from tests.fixtures import partial_target

    kind = get("ibot_masked")
    assert kind.missing(partial_target) == ["iBOTMaskedPatchLoss.forward_masked"]
    assert kind.missing(harness.losses) == []  # the reference has the masked loss
    assert kind.missing(_API) == []
    sinkhorn, softmax = case_from_table(CASE), case_from_table({**CASE, "teacher_norm": "softmax"})
    assert kind.calls_missing(sinkhorn, _API) == [
        "teacher_norm = 'sinkhorn' needs iBOTMaskedPatchLoss.sinkhorn_knopp_teacher"]
    assert kind.calls_missing(softmax, _API) == []
