"""One finding per mistake (harness.explore.findings) and the case file of its shrunk case
(harness.explore.casefile): what groups failures, what merges, what a file holds."""

from __future__ import annotations

import pytest

from harness import kinds  # noqa: F401 - registers the kinds
from harness.cases import case_from_table, load_cases
from harness.explore import casefile
from harness.explore.findings import (
    Example,
    Finding,
    Signature,
    exception_for,
    merge,
    signature_of,
)
from harness.results import CaseResult, Check, RankError


def result(status: str, checks=(), **extra) -> CaseResult:
    return CaseResult("c", "sinkhorn", "gloo", 2, status, 0.1, list(checks), extra=extra)


FAILED = Check("sinkhorn", 1.0, 1.0, 1e-5, False, category="distributed")


def test_a_signature_is_the_named_mistakes_with_their_quantity():
    named = result("fail", [FAILED], mistakes=["sinkhorn_local_count"])
    assert signature_of(named) == Signature("sinkhorn", ("sinkhorn_local_count",))
    assert signature_of(named).slug == "sinkhorn-local-count"
    two = result("fail", [FAILED], mistakes=["center_bf16", "loss_local_batch"])
    assert signature_of(two).quantity == "center+loss"
    # a mistake that changes several quantities (collectives over the world, not the group)
    wide = result("fail", [FAILED], mistakes=["collectives_over_world"])
    assert signature_of(wide) == Signature("center+loss+sinkhorn", ("collectives_over_world",))


def test_an_unknown_cause_is_the_first_failing_quantity_and_its_category():
    passed = Check("probs", 0.0, 0.0, 1e-5, True)
    unknown = result("fail", [passed, FAILED], mistakes=[])
    assert signature_of(unknown) == Signature("sinkhorn", ("unknown", "distributed"))
    assert signature_of(unknown).key == "sinkhorn:unknown+distributed"


def test_a_rank_failure_is_what_happened_in_which_kind_and_a_pass_is_nothing():
    hang = result("error", failure="hang")
    raised = result("fail", failure="raised")
    raised.error = RankError(1, "ValueError", "bad shape")
    assert signature_of(hang) == Signature("sinkhorn", ("hang",))
    assert signature_of(raised) == Signature("sinkhorn", ("raised ValueError",))
    assert signature_of(result("pass")) is None and signature_of(result("skip")) is None


def test_each_signature_is_its_own_exception_type_made_once():
    a, b = Signature("center", ("x",)), Signature("center", ("y",))
    assert exception_for(a) is exception_for(a) and exception_for(a) is not exception_for(b)
    assert exception_for(a)(Example({}, result("fail"), 0.0)).signature == a


def finding(sig: Signature, table: dict, seen: float, examples: int = 1) -> Finding:
    return Finding([sig], Example(table, result("fail"), seen), examples, seen)


def test_signatures_naming_a_common_mistake_merge_into_the_smaller_example():
    both = Signature("center", ("center_mean_of_means", "center_divisor_local_times_world"))
    one = Signature("center", ("center_mean_of_means",))
    other = Signature("sinkhorn", ("sinkhorn_no_shift",))
    big = {"world_sizes": [3], "batch_per_rank": [4, 1, 0]}
    small = {"world_sizes": [2], "batch_per_rank": [1, 0]}
    merged = merge([finding(both, big, 1.0, 5), finding(one, small, 2.0, 3),
                    finding(other, small, 0.5)])
    assert [f.signatures for f in merged] == [[other], [both, one]]
    assert merged[1].examples == 8 and merged[1].example.table is small
    assert merged[1].key == "center:center_mean_of_means | " \
        "center:center_mean_of_means+center_divisor_local_times_world"


DRAWN = {"name": "explore", "kind": "sinkhorn", "world_sizes": [2], "backends": ["gloo"],
         "batch_per_rank": [1, 0], "n_iterations": 3, "K": 128, "teacher_temp": 0.04,
         "logits": {"scale": 3.0}, "seed": 0}


def test_a_case_file_keeps_what_differs_from_the_defaults_and_loads_as_the_same_case(tmp_path):
    table = casefile.file_table(DRAWN, "sinkhorn-explore-x", 'said "this" \\ and 3×tol')
    assert table == {"name": "sinkhorn-explore-x", "kind": "sinkhorn",
                     "description": 'said "this" \\ and 3×tol', "batch_per_rank": [1, 0],
                     "logits": {"scale": 3.0}, "world_sizes": [2], "seed": 0}
    path = tmp_path / "x.toml"
    case = casefile.write(path, table, ["Likely cause: a \"quoted\" thing"])
    text = path.read_text()
    assert "batch_per_rank = [1, 0]\n" in text and "logits = { scale = 3.0 }\n" in text
    assert text.startswith("# Likely cause")
    assert case == load_cases(path)[0]
    drawn = case_from_table(DRAWN)
    assert (case.batch_per_rank, case.K, case.seed, case.logits) == \
        (drawn.batch_per_rank, drawn.K, drawn.seed, drawn.logits)
    assert case.backends == ("gloo", "nccl")  # a file runs on every backend, as the catalogue's


def test_a_file_that_would_not_load_as_the_case_is_never_handed_out(tmp_path, monkeypatch):
    original = casefile.literal
    monkeypatch.setattr(casefile, "literal", lambda v: "7" if v == 0 else original(v))
    table = casefile.file_table(DRAWN, "sinkhorn-explore-x", "")  # its seed 0 written as 7
    with pytest.raises(RuntimeError, match="does not load as the case it was written from"):
        casefile.write(tmp_path / "x.toml", table, [])
