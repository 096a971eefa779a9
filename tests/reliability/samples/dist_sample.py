"""A small distributed test file run by test_pool_plugin.py and test_pool_stress.py in a
child pytest (not collected by the main run: the name does not match test_*.py)."""

import pytest

from harness.runtime import RankFailure

P = "harness.runtime.testing_programs:"


def test_sum_on_every_world_size(dist_run, dist_world_size, dist_backend):
    out = dist_run(P + "sum_ranks", 0)
    total = float(sum(range(dist_world_size)))
    assert [r.tolist() for r in out] == [[total, total]] * dist_world_size
    assert dist_backend == "gloo"


@pytest.mark.world_size(2)
def test_marker_picks_the_world_size(dist_run):
    info = dist_run(P + "rank_info", "x")
    assert [r["rank"] for r in info] == [0, 1]


def test_explicit_world_size_and_reuse(dist_run, rank_pools):
    a = dist_run(P + "rank_info", None, world_size=1)
    b = dist_run(P + "rank_info", None, world_size=1)
    assert a[0]["pid"] == b[0]["pid"]  # the same warm worker


@pytest.mark.world_size(2)
def test_failure_then_fresh_pool(dist_run):
    with pytest.raises(RankFailure) as info:
        dist_run(P + "raise_error", {"rank": 0}, deadline_s=20)
    assert info.value.kind == "error" and info.value.ranks == [0]
    assert len(dist_run(P + "noop")) == 2


@pytest.mark.nccl
def test_needs_gpus(dist_run):
    dist_run(P + "noop")
