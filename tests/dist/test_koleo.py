"""The ``koleo`` catalogue through the real runner.

The reference ``KoLeoLoss`` at world sizes 1-4: global neighbours, exact on uneven shards
and with an empty rank, topk and groups, N ranks equal to one process under the DDP rule and
one process to the oracle. DINOv3's ``KoLeoLossDistributed`` (the fixture following its
conventions) passes the same checks where it runs and is skipped, with the reason, where it
refuses the layout. DINOv2's ``KoLeoLoss`` (the installed package) is per rank by design: it
passes the per-rank checks, and fails the global ones as a distributed difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import default_catalogue_dir, load_cases
from harness.checks.runner import run_case
from harness.results import CaseResult
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target

CASES = {c.name: c for c in load_cases([default_catalogue_dir() / "koleo.toml"])}
PLAN = [(name, ws) for name, case in CASES.items() for ws in (1, 2, 3, 4)
        if ws in case.world_sizes]
COMPARISONS = {(q, c) for q in ("loss", "grad") for c in ("dist_vs_single", "single_vs_oracle")}
#: Cases that ask for more neighbours than there are: the reference refuses them on every
#: rank (after the count gather, so none waits); other codebases never promised to.
REFUSED = {name for name, case in CASES.items() if case.expect_error}


def run(name: str, world_size: int, rank_pools, impl: str = "harness.losses") -> CaseResult:
    return run_case(CASES[name], "gloo", world_size, PoolExecutor(rank_pools), load_target(impl))


def failing(result: CaseResult) -> list[str]:
    return [f"{c.name} {c.comparison} rank={c.rank} ratio={c.ratio} {c.detail}"
            for c in result.checks if not c.passed]


def test_the_catalogue_covers_what_koleo_code_differs_in() -> None:
    cases = CASES.values()
    assert any(c.koleo_topk > 1 for c in cases) and any(c.koleo_topk == 1 for c in cases)
    assert any(c.koleo_group_size for c in cases)
    assert any(0 in c.batch_per_rank for c in cases)  # an empty rank
    assert any(len(set(c.batch_per_rank)) > 1 for c in cases)  # uneven
    assert any(len(c.batch_per_rank) == 1 for c in cases)  # equal
    assert REFUSED == {"koleo-too-few-samples"}


@pytest.mark.parametrize("name, world_size", PLAN, ids=[f"{n}-ws{w}" for n, w in PLAN])
def test_the_reference_passes_every_check(name: str, world_size: int, rank_pools) -> None:
    result = run(name, world_size, rank_pools)
    assert result.status == "pass", failing(result) or str(result.error)
    want = {("raises ValueError", "contract")} if name in REFUSED else COMPARISONS
    assert {(c.name, c.comparison) for c in result.checks} == want


def refused_as_no_promise(result: CaseResult, style: str) -> None:
    assert result.status == "skip"
    assert result.skip_reason.startswith("'raises the expected exception on a bad input' is a "
                                         f"contract of the seed reference that this {style} "
                                         "target does not promise")


# ---------------------------------------------------------------------- the real codebases
DINOV3 = str(Path(__file__).resolve().parents[1] / "fixtures" / "styles" / "dinov3" / "loss"
             / "__init__.py")
#: DINOv3's KoLeoLossDistributed takes equal local batches and groups of whole ranks only.
DINOV3_RUNS = {"koleo-equal-shards", "koleo-one-sample-per-rank", "koleo-topk-equal",
               "koleo-groups-of-two-ranks", "koleo-groups-of-one-rank"}
#: DINOv2's KoLeoLoss: the nearest neighbour (topk 1), no groups, two samples per rank.
DINOV2_RUNS = {"koleo-equal-shards", "koleo-uneven-shards"}
PLAN_3 = [(name, ws) for name, ws in PLAN if ws <= 3]


@pytest.mark.parametrize("name, world_size", PLAN, ids=[f"{n}-ws{w}" for n, w in PLAN])
def test_dinov3_distributed_koleo_is_global_where_it_runs(name: str, world_size: int,
                                                          rank_pools) -> None:
    result = run(name, world_size, rank_pools, impl=DINOV3)
    if name in REFUSED:
        refused_as_no_promise(result, "dinov3")
        return
    if name not in DINOV3_RUNS:
        assert result.status == "skip"
        assert result.skip_reason.startswith("the dinov3 style cannot make: local batches that "
                                             "differ, or groups that are not whole ranks' batches")
        assert "raises ValueError unless loss_group_size % local_B == 0" in result.skip_reason
        return
    assert result.status == "pass", failing(result) or str(result.error)
    assert {(c.name, c.comparison) for c in result.checks} == COMPARISONS


@pytest.mark.parametrize("name, world_size", PLAN_3, ids=[f"{n}-ws{w}" for n, w in PLAN_3])
def test_dinov2_koleo_is_per_rank_by_design_and_passes_as_such(name: str, world_size: int,
                                                               rank_pools) -> None:
    pytest.importorskip("dinov2.loss")
    result = run(name, world_size, rank_pools, impl="dinov2.loss")
    if name in REFUSED:
        refused_as_no_promise(result, "dinov2")
        return
    if name not in DINOV2_RUNS:
        assert result.status == "skip"
        assert result.skip_reason.startswith("the dinov2 style cannot make: ")
        return
    assert result.status == "pass", failing(result) or str(result.error)
    assert {(c.name, c.comparison) for c in result.checks} == COMPARISONS


AS_GLOBAL = '''"""The dinov2 style, but judging its KoLeo as a global one (which it is not)."""
import dataclasses

from harness.styles import dinov2

STYLE = dataclasses.replace(dinov2.STYLE, name="dinov2_as_global", semantics=dataclasses.replace(
    dinov2.STYLE.semantics, koleo_neighbours="global"))
'''


def test_dinov2_koleo_judged_as_a_global_one_is_a_distributed_failure(tmp_path, rank_pools) -> None:
    """What makes the per-rank verdicts above mean something: the same numbers held to the
    global semantics fail, as N ranks against one process, never as one process."""
    pytest.importorskip("dinov2.loss")
    adapter = tmp_path / "dinov2_as_global.py"
    adapter.write_text(AS_GLOBAL)
    target = load_target("dinov2.loss", adapter=str(adapter))
    case = CASES["koleo-equal-shards"]
    assert run_case(case, "gloo", 1, PoolExecutor(rank_pools), target).status == "pass"
    result = run_case(case, "gloo", 2, PoolExecutor(rank_pools), target)
    assert result.status == "fail", str(result.error)
    failed = {(c.name, c.comparison, c.category) for c in result.checks if not c.passed}
    assert failed == {("loss", "dist_vs_single", "distributed"),
                      ("grad", "dist_vs_single", "distributed")}
    # Equal shards: per-rank neighbours and a local mean are exactly the local-neighbours
    # mistake of a global KoLeo, which is what the diagnosis reads it as.
    assert result.extra["mistakes"] == ["koleo_local_neighbours"], result.extra["diagnosis"]
