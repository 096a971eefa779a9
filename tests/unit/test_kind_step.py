"""The ``step`` kind without ranks: its keys and rules, the styles it cannot drive, its
tolerances, and the reference step on one process (no process group) against the float64
step, through the kind's own rank program and verifier."""

from __future__ import annotations

import pytest
import torch

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import CaseError, case_from_table
from harness.checks.job import Job
from harness.kinds import step
from harness.runtime import RankContext
from harness.targets import load_target

CASE = {"name": "step-t", "kind": "step", "K": 8, "steps": 2, "batch_per_rank": [3, 2],
        "masked_per_rank": [4, 1], "koleo_weight": 0.1}
CPU = RankContext(rank=0, world_size=1, backend="gloo", device=torch.device("cpu"))


def test_keys_default_and_rules() -> None:
    case = case_from_table(CASE)
    assert (case.lr, case.ema_momentum, case.koleo_weight) == (0.05, 0.9, 0.1)
    assert case.global_data(2)[step.CROPS].shape == (2, 4, 5, 8)  # [steps, S, B, K]
    assert case.global_data(2)[step.MASKED_TEACHER].shape == (2, 5, 8)
    with pytest.raises(CaseError, match="key 'lr': expected no 'lr' in a 'cls' case"):
        case_from_table({"name": "cls-t", "kind": "cls", "lr": 0.1})
    with pytest.raises(CaseError, match="key 'K': expected K <= 1024 in a step case"):
        case_from_table({**CASE, "K": 2048})
    with pytest.raises(CaseError, match="key 'views_teacher': expected at most views_student"):
        case_from_table({**CASE, "views_student": 2, "views_teacher": 3})
    with pytest.raises(CaseError, match="key 'views_student': expected a .student, teacher. view "
                                        "pair of different crops"):
        case_from_table({**CASE, "views_student": 1, "views_teacher": 1})


def test_micro_batches_cut_samples_and_masked_tokens_alike_and_the_one_process_not() -> None:
    case = case_from_table({**CASE, "koleo_weight": 0.0, "micro_batches": 2})
    rows, tokens = step.micro_sizes(Job(case, 2, None, "dist"))
    assert rows == [[2, 1], [1, 1]] and tokens == [[2, 2], [1, 0]]
    assert step.micro_sizes(Job(case, 2, None, "single")) == ([[5]], [[5]])
    with pytest.raises(CaseError, match="key 'koleo_weight': expected no KoLeo with micro_batches"):
        case_from_table({**CASE, "micro_batches": 2})
    with pytest.raises(CaseError, match="micro_batches"):  # explicit sizes must add up
        case_from_table({**CASE, "koleo_weight": 0.0, "micro_batches": [[1, 1]]})


def test_what_a_style_lacks_is_said() -> None:
    reference = load_target("harness.losses").api
    assert step.calls_missing(case_from_table(CASE), reference) == []
    dino = load_target("tests/fixtures/styles/main_dino.py").api
    assert step.calls_missing(case_from_table(CASE), dino)[0].startswith(
        "a CLS loss whose center is updated by update_center alone")
    pytest.importorskip("dinov2.loss")
    dinov2 = load_target("dinov2.loss").api
    assert step.calls_missing(case_from_table(CASE), dinov2) == [
        "iBOT (iBOTPatchLoss)", "KoLeo (KoLeoLoss: DINOv2's KoLeoLoss looks in the rank's own "
        "batch, by design: a step on N ranks is not one process's)"]
    cls_only = case_from_table({**CASE, "ibot_weight": 0.0, "koleo_weight": 0.0})
    assert step.calls_missing(cls_only, dinov2) == []


def test_tolerances_grow_with_the_float64_steps_own_spread() -> None:
    calm = case_from_table(CASE)
    assert calm.tolerance("weights", 2).rule.startswith(("floor 1e-05", "100 × float32 spread"))
    steep = case_from_table({**CASE, "lr": 0.5, "steps": 6, "teacher_temp": 0.02})
    tol = steep.tolerance("weights", 2)
    assert "× float32 spread" in tol.rule and tol > calm.tolerance("weights", 2)
    assert step.rounding_spread(steep, "weights", 2) * 100 == pytest.approx(float(tol))


def single_run(table: dict, impl: str = "harness.losses") -> tuple[Job, dict]:
    case = case_from_table(table)
    target = load_target(impl)
    job = Job(case, 2, target.spec, "single")
    return job, step.rank_program(CPU, job)


def test_the_reference_step_on_one_process_is_the_float64_step() -> None:
    job, out = single_run(CASE)
    assert len(out["student"]) == 2 and len(out["centers"]) == 3 and out["overlap"] == []
    assert set(out["losses"][0]) == {"loss", "dino", "ibot", "koleo"}
    verdicts = step.verify(job, load_target("harness.losses"), [out], out)
    assert all(check.passed for check in verdicts), [c for c in verdicts if not c.passed]
    assert {c.name for c in verdicts} >= {"student_weights", "teacher_weights", "center",
                                          "patch_center", "loss", "loss_koleo"}


def test_a_step_that_returns_no_loss_is_refused_with_what_it_returned() -> None:
    with pytest.raises(TypeError, match="returns a mapping with at least 'loss'.*keys \\['total'\\]"):
        step._returned({"total": 1.0})
    assert step._returned({"loss": torch.tensor(2.0), "dino": 1.0, "mine": 3.0}) == {
        "loss": 2.0, "dino": 1.0}


def test_an_update_counts_as_overlapping_only_before_the_first_gradient_all_reduce() -> None:
    class Losses:
        patch_center = object()

    early = ["update:dino", "update:patch", "grad_all_reduce"]
    assert step._overlap(early, Losses) == {"dino": True, "patch": True}
    late = ["update:dino", "grad_all_reduce", "update:patch"]
    assert step._overlap(late, Losses) == {"dino": True, "patch": False}
    assert step._overlap(["grad_all_reduce"], Losses) == {"dino": False, "patch": False}
