"""The search (harness.explore.search) on a judge of its own, no ranks: Hypothesis finds
each planted mistake, shrinks it to its minimal case, keeps one finding per mistake,
stops at its limits, and gives the same findings for the same seed."""

from __future__ import annotations

from typing import Any

import pytest

from harness import kinds  # noqa: F401 - registers the kinds
from harness.cases import case_from_table
from harness.explore import Assumptions, Limits, Space
from harness.explore.findings import merge
from harness.explore.search import Search
from harness.results import CaseResult, Check

SINKHORN = Space(("sinkhorn",), max_world_size=4)


def uneven(table: dict[str, Any]) -> bool:
    counts = table.get("batch_per_rank", 8)
    return isinstance(counts, list) and len(set(counts)) > 1


def judge_with(bugs: dict[str, Any], calls: list | None = None):
    """A judge whose target makes each mistake of ``bugs`` where its predicate holds."""
    def judge(table: dict[str, Any]) -> CaseResult:
        case = case_from_table(table)  # a drawn table is a valid case
        if calls is not None:
            calls.append(table)
        world = case.world_sizes[0]
        for name, (quantity, holds) in bugs.items():
            if holds(table):
                check = Check(quantity, 1.0, 1.0, 1e-5, False, category="distributed")
                return CaseResult(case.name, case.kind, "gloo", world, "fail", 0.0, [check],
                                  extra={"mistakes": [name], "diagnosis": f"matches: {name}"})
        return CaseResult(case.name, case.kind, "gloo", world, "pass", 0.0,
                          [Check("sinkhorn", 0.0, 0.0, 1e-5, True)])
    return judge


def search(space: Space, judge: Any, **limits: Any) -> tuple[Search, list]:
    s = Search(space, judge, Limits(**{"budget_s": 60.0, **limits}))
    return s, merge(s.run())


def test_a_mistake_is_found_and_shrunk_to_its_minimal_case():
    s, found = search(SINKHORN, judge_with({"sinkhorn_local_count": ("sinkhorn", uneven)}),
                      seed=1, max_examples=200)
    assert [f.key for f in found] == ["sinkhorn:sinkhorn_local_count"]
    table = found[0].example.table
    # fewest ranks and samples that are uneven at all; every other key at its simplest
    assert table["world_sizes"] == [2] and sorted(table["batch_per_rank"]) == [0, 1]
    assert table["seed"] == 0 and table.get("K", 128) == 128
    assert found[0].examples >= 1 and s.progress.first_failure_s is not None


def test_two_mistakes_are_two_findings_with_their_counts():
    bugs = {"sinkhorn_local_count": ("sinkhorn", uneven),
            "sinkhorn_one_iteration_short": ("sinkhorn",
                                             lambda t: not uneven(t) and t.get("n_iterations", 3) >= 4)}
    s, found = search(SINKHORN, judge_with(bugs), seed=2, max_examples=300)
    assert sorted(f.key for f in found) == ["sinkhorn:sinkhorn_local_count",
                                            "sinkhorn:sinkhorn_one_iteration_short"]
    short = next(f for f in found if "iteration" in f.key).example.table
    assert short["n_iterations"] == 4 and short["world_sizes"] == [1]
    assert sum(s.progress.examples.values()) == sum(f.examples for f in found)


def test_the_same_seed_gives_the_same_findings_and_minimal_cases():
    bugs = {"sinkhorn_local_count": ("sinkhorn", uneven)}
    runs = [search(SINKHORN, judge_with(bugs), seed=7, max_examples=150)[1] for _ in range(2)]
    assert [(f.key, f.example.table, f.examples) for f in runs[0]] == \
        [(f.key, f.example.table, f.examples) for f in runs[1]]


def test_correct_code_explores_clean_up_to_max_examples():
    calls: list = []
    s, found = search(Space(("sinkhorn", "centering", "cls"), 4), judge_with({}, calls), seed=3,
                      max_examples=120)
    assert found == [] and s.progress.stopped == "max-examples"
    assert s.progress.generated >= 120 and s.progress.configurations == len(calls)
    assert {t["kind"] for t in calls} == {"sinkhorn", "centering", "cls"}


def test_the_budget_stops_a_search_that_found_nothing():
    clock = [0.0]

    def judge(table: dict[str, Any]) -> CaseResult:
        clock[0] += 1.0  # each configuration takes a second
        return judge_with({})(table)

    s = Search(SINKHORN, judge, Limits(budget_s=25.0, seed=4), clock=lambda: clock[0])
    assert s.run() == [] and s.progress.stopped == "budget"
    assert 20 <= s.progress.configurations <= 26


@pytest.mark.parametrize("budget, seed", [(5.0, 4), (8.0, 2), (8.0, 4)])
def test_a_budget_spent_while_a_round_shrinks_keeps_the_finding_and_is_never_flaky(budget, seed):
    """Past the budget a round rejects new configurations, never one it already judged:
    Hypothesis replays a failure before shrinking it, and a failure that replays as
    rejected was a FlakyFailure that ended the search (on these budgets and seeds)."""
    clock = [0.0]
    inner = judge_with({"sinkhorn_local_count": ("sinkhorn", uneven)})

    def judge(table: dict[str, Any]) -> CaseResult:
        clock[0] += 1.0  # each configuration takes a second
        return inner(table)

    s = Search(SINKHORN, judge, Limits(budget_s=budget, seed=seed, max_findings=1),
               clock=lambda: clock[0])
    assert [f.key for f in s.run()] == ["sinkhorn:sinkhorn_local_count"]


def test_max_findings_stops_after_the_round_that_reached_it():
    s, found = search(SINKHORN, judge_with({"sinkhorn_local_count": ("sinkhorn", uneven)}),
                      seed=5, max_findings=1)
    assert len(found) == 1 and s.progress.stopped == "max-findings" and s.progress.rounds == 1


def test_a_found_mistake_is_not_searched_again_in_the_next_round():
    calls: list = []
    bugs = {"sinkhorn_local_count": ("sinkhorn", uneven)}
    s, found = search(SINKHORN, judge_with(bugs, calls), seed=6, max_examples=150)
    assert len(found) == 1 and s.progress.rounds >= 2  # the next round found nothing new
    assert s.progress.examples[found[0].signatures[0]] == sum(uneven(t) for t in calls)


def test_skipped_configurations_are_counted_never_found():
    def judge(table: dict[str, Any]) -> CaseResult:
        result = judge_with({})(table)
        if table.get("n_iterations", 3) > 3:
            result.status, result.skip_reason = "skip", "not promised"
        return result

    s, found = search(SINKHORN, judge, seed=8, max_examples=80)
    assert found == [] and s.progress.skipped > 0


def test_assumptions_bound_what_the_mistake_can_shrink_to():
    space = Space(("sinkhorn",), 4, assumptions=Assumptions(no_empty_rank=True))
    _, found = search(space, judge_with({"sinkhorn_local_count": ("sinkhorn", uneven)}),
                      seed=1, max_examples=200)
    assert sorted(found[0].example.table["batch_per_rank"]) == [1, 2]  # no empty rank
    equal = Space(("sinkhorn",), 4, assumptions=Assumptions(equal_batches=True))
    _, none = search(equal, judge_with({"sinkhorn_local_count": ("sinkhorn", uneven)}),
                     seed=1, max_examples=100)
    assert none == []  # the mistake needs uneven shards: not a bug under equal batches
