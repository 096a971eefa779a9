"""The ``ibot_masked`` catalogue through the real runner at world sizes 1-3, against the
REAL dinov2 ``iBOTPatchLoss.forward_masked`` (the installed ``dinov2.loss``, driven through
the dinov2 style, which --api auto picks). (The reference passes all of it:
tests/dist/test_catalogue.py.)

DINOv2 divides each rank's loss by its LOCAL image count: right with equal images per
rank (its training), a distributed bug with uneven ones -- and only there, where the
diagnosis names it.
"""

from __future__ import annotations


import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import default_catalogue_dir, load_cases
from harness.checks.runner import run_case
from harness.results import CaseResult
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target

pytest.importorskip("dinov2.loss")

TARGET = "dinov2.loss"
CASES = {c.name: c for c in load_cases([default_catalogue_dir() / "ibot_masked.toml"])}
EQUAL = ["ibot_masked-equal-images", "ibot_masked-equal-images-softmax",
         "ibot_masked-images-without-masks", "ibot_masked-rank-without-masks"]
UNEVEN = ["ibot_masked-uneven-images", "ibot_masked-uneven-images-softmax"]
WORLD_SIZES = [1, 2, 3]


def _run(name: str, world_size: int, rank_pools) -> CaseResult:
    return run_case(CASES[name], "gloo", world_size, PoolExecutor(rank_pools), load_target(TARGET))


def _failing(result: CaseResult) -> list[str]:
    return [f"{c.name} {c.comparison} rank={c.rank} ratio={c.ratio} {c.detail}"
            for c in result.checks if not c.passed]


def test_the_catalogue_is_the_one_tested() -> None:
    assert sorted(CASES) == sorted(EQUAL + UNEVEN)


@pytest.mark.parametrize("world_size", WORLD_SIZES)
@pytest.mark.parametrize("name", EQUAL)
def test_equal_images_per_rank_pass_every_check(name: str, world_size: int, rank_pools) -> None:
    result = _run(name, world_size, rank_pools)
    assert result.status == "pass", _failing(result) or str(result.error)
    comparisons = {(c.name, c.comparison) for c in result.checks}
    assert {("loss", "dist_vs_single"), ("grad_patch", "dist_vs_single"),
            ("loss", "single_vs_oracle"), ("grad_patch", "single_vs_oracle")} <= comparisons
    if CASES[name].teacher_norm == "sinkhorn":
        assert {("sinkhorn", "dist_vs_single"), ("sinkhorn", "single_vs_oracle")} <= comparisons


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("name", UNEVEN)
def test_uneven_images_per_rank_fail_as_distributed(name: str, world_size: int, rank_pools) -> None:
    result = _run(name, world_size, rank_pools)
    assert result.status == "fail", str(result.error)
    by_key = {(c.name, c.comparison): c for c in result.checks}
    for quantity in ("loss", "grad_patch"):
        dist = by_key[(quantity, "dist_vs_single")]
        assert not dist.passed and dist.category == "distributed", dist
        assert by_key[(quantity, "single_vs_oracle")].passed  # one process is right
    failed = {key for key, check in by_key.items() if not check.passed}
    assert failed == {("loss", "dist_vs_single"), ("grad_patch", "dist_vs_single")}
    assert result.extra["mistakes"] == ["ibot_masked_local_images"], result.extra.get("diagnosis")


@pytest.mark.parametrize("name", UNEVEN)
def test_uneven_images_on_one_rank_are_just_one_batch(name: str, rank_pools) -> None:
    assert _run(name, 1, rank_pools).status == "pass"
