"""Every failed check names its kind of mistake: distributed, numerics or semantics."""

from __future__ import annotations

import numpy as np

from harness.checks.collect import Checks

NAN = float("nan")


def categories(*adds: tuple) -> dict[str, str | None]:
    checks = Checks()
    for name, comparison, actual, expected in adds:
        checks.add(name, comparison, np.asarray(actual), np.asarray(expected), 1e-6)
    return {c.name: c.category for c in checks.result()}


def test_n_ranks_against_one_process_is_distributed() -> None:
    assert categories(("center", "dist_vs_single", [0.3], [0.2]))["center"] == "distributed"
    assert categories(("center", "rank_agreement", [0.3], [0.2]))["center"] == "distributed"
    # one rank's NaN where the single process is finite: the distributed code made it
    assert categories(("loss", "dist_vs_single", [NAN], [1.0]))["loss"] == "distributed"


def test_non_finite_where_the_oracle_is_finite_is_numerics() -> None:
    assert categories(("probs", "single_vs_oracle", [NAN], [0.5]))["probs"] == "numerics"
    # the single process overflowed too: not the distributed code's fault
    assert categories(("probs", "dist_vs_single", [0.1], [NAN]))["probs"] == "numerics"


def test_one_process_against_its_oracle_is_semantics() -> None:
    assert categories(("loss", "single_vs_oracle", [2.0], [1.0]))["loss"] == "semantics"


def test_passing_checks_have_no_category() -> None:
    assert categories(("loss", "single_vs_oracle", [1.0], [1.0]))["loss"] is None


def test_contract_checks_say_what_they_blame() -> None:
    checks = Checks()
    checks.expect("collectives:update_center", False, "3 > 1", rank=0, category="distributed")
    checks.expect("raises ValueError", False, "no exception")
    assert {c.name: c.category for c in checks.result()} == {
        "collectives:update_center": "distributed", "raises ValueError": "semantics"}
