"""PoolSpec, world sizes and thread caps: no processes started."""

from __future__ import annotations

import pickle

import pytest

from harness.runtime.spec import (
    PoolSpec,
    auto_world_sizes,
    parse_world_sizes,
    pg_timeout_for,
    threads_per_rank,
    usable_cpu_count,
    visible_gpu_count,
)


def test_spec_is_a_hashable_value() -> None:
    a, b = PoolSpec("gloo", 2), PoolSpec("gloo", 2, pg_timeout_s=30.0)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert PoolSpec("gloo", 2, pg_timeout_s=5) != a
    assert a.label == "gloo-ws2"
    assert pickle.loads(pickle.dumps(a)) == a


@pytest.mark.parametrize("kwargs", [
    {"backend": "mpi", "world_size": 2},
    {"backend": "gloo", "world_size": 0},
    {"backend": "gloo", "world_size": 1.5},
    {"backend": "gloo", "world_size": 2, "pg_timeout_s": 0},
])
def test_spec_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PoolSpec(**kwargs)


def test_gloo_is_available() -> None:
    assert PoolSpec("gloo", 4).unavailable_reason() is None


def test_nccl_needs_one_gpu_per_rank() -> None:
    gpus = visible_gpu_count()
    reason = PoolSpec("nccl", gpus + 1).unavailable_reason()
    assert reason is not None and "NCCL" in reason
    if gpus == 0:
        assert auto_world_sizes("nccl") == []
    else:
        assert "cannot put two ranks on one GPU" in reason
        assert auto_world_sizes("nccl") == list(range(1, gpus + 1))
        assert PoolSpec("nccl", gpus).unavailable_reason() is None


def test_auto_world_sizes_gloo() -> None:
    sizes = auto_world_sizes("gloo")
    assert sizes[:2] == [1, 2] and set(sizes) <= {1, 2, 4}
    if usable_cpu_count() >= 2:
        assert sizes == [1, 2, 4]
    with pytest.raises(ValueError):
        auto_world_sizes("mpi")


def test_parse_world_sizes() -> None:
    assert parse_world_sizes("1,2, 4", "gloo") == [1, 2, 4]
    assert parse_world_sizes("2,2,1", "gloo") == [2, 1]
    assert parse_world_sizes("auto", "gloo") == auto_world_sizes("gloo")
    for bad in ("", "two", "0", "1,-2"):
        with pytest.raises(ValueError):
            parse_world_sizes(bad, "gloo")


def test_threads_per_rank_caps_intra_op_threads() -> None:
    cpus = usable_cpu_count()
    assert threads_per_rank(1) == cpus
    assert threads_per_rank(cpus * 4) == 1
    assert all(threads_per_rank(w) * w <= max(cpus, w) for w in range(1, 9))


def test_pg_timeout_sits_below_the_deadline() -> None:
    assert pg_timeout_for(60) == 30
    assert pg_timeout_for(10) == 5
    assert pg_timeout_for(600) == 30
    assert pg_timeout_for(1) == 1.0
