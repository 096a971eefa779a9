"""The ``koleo`` catalogue through the real runner at world sizes 1-4 against the reference
``KoLeoLoss``: global neighbours, exact on uneven shards and with an empty rank, topk and
groups, N ranks equal to one process under the DDP rule and one process to the oracle."""

from __future__ import annotations

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


@pytest.mark.parametrize("name, world_size", PLAN, ids=[f"{n}-ws{w}" for n, w in PLAN])
def test_the_reference_passes_every_check(name: str, world_size: int, rank_pools) -> None:
    result = run(name, world_size, rank_pools)
    assert result.status == "pass", failing(result) or str(result.error)
    assert {(c.name, c.comparison) for c in result.checks} == COMPARISONS
