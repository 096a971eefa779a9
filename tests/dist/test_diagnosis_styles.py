"""A mistake is named by its numbers whatever the code that makes them: the seed API
written a second way (tests/fixtures/otherstyle, independent of harness.losses), each
mistake done as other code does it -- a per-sample shift of the raw logits, a bf16 center
whose EMA products round, two mistakes at once -- is diagnosed as the planted mistake.
(benchmarks/bench_diagnosis_styles.py measures it over the whole catalogue.)"""

from __future__ import annotations

import pytest

from .test_diagnosis import CENTERING, CLS, IBOT, SINKHORN, run

STYLE = "tests.fixtures.otherstyle"
SINKHORN_TEACHER = {**CLS, "teacher_norm": "sinkhorn", "logits": {"scale": 1.0}}
#: Milder than test_diagnosis's SINKHORN: this style shifts by one global max, which
#: underflows whole samples to 0/0 on its sample offsets of 3 at temperature 0.04.
SINKHORN = {**SINKHORN, "teacher_temp": 0.1, "logits": {"scale": 1.0, "sample_offset": 1.0}}

#: fixture module -> (case, world size, the mistakes its diagnosis must name)
SHOWS = {
    "per_sample_shift": (SINKHORN, 2, ["sinkhorn_per_sample_shift"]),
    "local_count": (SINKHORN, 3, ["sinkhorn_local_count"]),
    "rows_local": (SINKHORN, 2, ["sinkhorn_rows_not_reduced"]),
    "short": (SINKHORN, 3, ["sinkhorn_one_iteration_short"]),
    "center_gather_means": (CENTERING, 2, ["center_mean_of_means"]),
    "center_local_rows": (CENTERING, 3, ["center_divisor_no_world"]),
    "center_not_reduced": (CENTERING, 2, ["center_not_all_reduced"]),
    "center_ema_swapped": (CENTERING, 2, ["ema_weights_swapped"]),
    "center_bf16": (CENTERING, 3, ["center_bf16"]),
    "cls_local_batch": (CLS, 3, ["loss_local_batch"]),
    "cls_diagonal": (CLS, 2, ["diagonal_not_excluded"]),
    "ibot_local_mean": (IBOT, 2, ["ibot_per_rank_mean"]),
    "two_at_once": (SINKHORN_TEACHER, 3, ["loss_local_batch", "sinkhorn_local_count"]),
}


@pytest.mark.parametrize("fault", sorted(SHOWS))
def test_a_mistake_written_another_way_is_named(fault, rank_pools):
    table, world_size, names = SHOWS[fault]
    result = run(table, world_size, rank_pools, f"{STYLE}.{fault}")
    assert result.status == "fail", result
    assert result.extra["mistakes"] == names, result.extra["diagnosis"]


def test_the_second_style_without_a_mistake_passes(rank_pools):
    for table in (CENTERING, SINKHORN, CLS, IBOT, SINKHORN_TEACHER):
        assert run(table, 3, rank_pools, f"{STYLE}.correct").status == "pass", table
