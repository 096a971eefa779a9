"""Micro-batches (``cases/correctness/micro_batches.toml``) through the real runner.

One optimizer step in several calls, against one call on the whole step. The reference
weighs its own micro-batches (each loss term inside its ``micro_batches``: the catalogue
run holds it at 1-4 ranks); the seed API written a second way (``tests/fixtures/otherstyle``)
has no ``micro_batches`` and is weighed by the loop, each micro-batch by its share of the
step: it too accumulates the single-process gradient on uneven micro-batches and uneven
ranks, an empty micro-batch included, at 1-4 ranks. A loss of two terms that cannot weigh
each by its own share (the second style's DINOv2Loss) is skipped with the reason. A loss
that centers inside ``forward`` (the lightly style's fixture) steps its EMA at every
micro-batch -- lightly-train issue 968 -- and fails as ``distributed``, named so.
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

CASES = {c.name: c for c in load_cases([default_catalogue_dir() / "micro_batches.toml"])}
SECOND_STYLE = "tests.fixtures.otherstyle.correct"
LIGHTLY = str(Path(__file__).resolve().parents[1] / "fixtures" / "styles" / "lightly" / "loss"
              / "dino_loss.py")
#: The one-term loss cases the second style can be asked (it has the seed CLS and iBOT losses).
LOOP_WEIGHED = [(name, ws) for name, case in CASES.items() if case.kind in ("cls", "ibot")
                for ws in (1, 2, 3, 4)]


def run(name: str, world_size: int, rank_pools, impl: str) -> CaseResult:
    return run_case(CASES[name], "gloo", world_size, PoolExecutor(rank_pools), load_target(impl))


def failing(result: CaseResult) -> list[str]:
    return [f"{c.name} {c.comparison} rank={c.rank} ratio={c.ratio} {c.detail}"
            for c in result.checks if not c.passed] or [str(result.error)]


def test_the_catalogue_has_uneven_micro_batches_for_the_loop_to_weigh() -> None:
    cases = [CASES[name] for name, ws in LOOP_WEIGHED if ws == 4]
    shares = [[sum(col) for col in zip(*c.micro_sizes(counts), strict=True)]
              for c in cases for counts in c.micro_counts(4).values()]
    assert any(len(set(s)) > 1 for s in shares)  # loss / M would be wrong there
    assert any(0 in sizes for c in cases for counts in c.micro_counts(4).values()
               for sizes in c.micro_sizes(counts))


@pytest.mark.parametrize("name, world_size", LOOP_WEIGHED,
                         ids=[f"{n}-ws{w}" for n, w in LOOP_WEIGHED])
def test_a_target_without_micro_batches_is_weighed_by_the_loop(name: str, world_size: int,
                                                               rank_pools) -> None:
    result = run(name, world_size, rank_pools, SECOND_STYLE)
    assert result.status == "pass", failing(result)


def test_a_loss_of_two_terms_that_cannot_weigh_them_is_skipped_with_the_reason(rank_pools) -> None:
    result = run("dinov2-micro-uneven", 2, rank_pools, SECOND_STYLE)
    assert result.status == "skip"
    assert "DINOv2Loss.micro_batches" in result.skip_reason
    assert "its own share of the step" in result.skip_reason


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_center_stepped_in_every_forward_is_named(world_size: int, rank_pools) -> None:
    result = run("centering-micro-equal", world_size, rank_pools, LIGHTLY)
    assert result.status == "fail", result
    assert {c.category for c in result.checks if not c.passed} == {"distributed"}
    assert result.extra["mistakes"] == ["center_ema_per_micro_batch"], result.extra["diagnosis"]
