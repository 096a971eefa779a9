"""Likely-cause diagnosis through the real runner: each planted numeric fault, run on a
small case that shows it (uneven shards, 2 or 3 ranks), is diagnosed as its own mistake;
a target of another style is diagnosed by the same models; numbers no model explains are
said to match no known mistake; every failed result carries the command that reruns it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import case_from_table
from harness.checks.diagnose import NO_MATCH
from harness.checks.runner import run_case
from harness.faults import FAULTS, mistake_of, module_name
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

CENTERING = {"kind": "centering", "K": 8, "steps": 3, "batch_per_rank": [6, 2, 3],
             "logits": {"scale": 1.0, "sample_offset": 0.5, "prototype_offset": 1.0}}
SINKHORN = {"kind": "sinkhorn", "K": 16, "batch_per_rank": [6, 2, 3],
            "logits": {"scale": 1.0, "sample_offset": 3.0, "prototype_offset": 1.0}}
CLS = {"kind": "cls", "K": 16, "batch_per_rank": [4, 1, 2], "teacher_norm": "softmax"}
IBOT = {"kind": "ibot", "K": 16, "masked_per_rank": [5, 1, 2], "teacher_norm": "softmax"}
IBOT_MASKED = {"kind": "ibot_masked", "K": 16, "patches_per_image": 8, "images_per_rank": [3, 1, 2],
               "mask_ratio": [0.2, 0.6], "teacher_norm": "softmax"}
PATCH_CENTERING = {**{key: value for key, value in CENTERING.items() if key != "batch_per_rank"},
                   "kind": "patch_centering", "masked_per_rank": [6, 2, 3]}
KOLEO = {"kind": "koleo", "K": 16, "batch_per_rank": [5, 2, 4]}
STEP = {"kind": "step", "K": 8, "steps": 2, "batch_per_rank": [3, 2], "masked_per_rank": [4, 1]}

#: The case each numeric fault is diagnosed on, and its world size.
SHOWS = {
    "center_not_all_reduced": (CENTERING, 2),
    "center_divisor_no_world": (CENTERING, 3),
    "center_mean_of_means": (CENTERING, 2),
    "ema_weights_swapped": (CENTERING, 2),
    "center_bf16": (CENTERING, 3),
    "updates_overwrite": ({**CENTERING, "updates_per_apply": 2}, 2),
    # micro-batches: unequal ones (a mean of their means is exact on equal ones), an empty one
    "center_ema_per_micro_batch": ({**CENTERING, "micro_batches": 2}, 2),
    "center_mean_of_micro_batch_means": ({**CENTERING, "micro_batches": [[1, 5], [2, 0], [1, 2]]}, 2),
    "loss_mean_of_micro_batch_means": ({**CLS, "micro_batches": [[1, 3], [1, 0], [0, 2]]}, 2),
    "sinkhorn_per_micro_batch": ({**CLS, "teacher_norm": "sinkhorn", "micro_batches": 2}, 3),
    "sinkhorn_rows_not_reduced": (SINKHORN, 2),
    "sinkhorn_local_count": (SINKHORN, 3),
    "sinkhorn_no_shift": ({**SINKHORN, "teacher_temp": 0.04,
                           "logits": {"distribution": "uniform", "scale": 120.0}}, 2),
    "sinkhorn_per_sample_shift": (SINKHORN, 2),
    "sinkhorn_one_iteration_short": (SINKHORN, 3),
    "diagonal_not_excluded": (CLS, 2),
    "loss_local_batch": (CLS, 3),
    "ibot_per_rank_mean": (IBOT, 2),
    "ibot_masked_local_images": (IBOT_MASKED, 3),
    "koleo_local_neighbours": (KOLEO, 3),
    "koleo_gather_no_grad": ({**KOLEO, "koleo_topk": 2}, 2),
    "koleo_self_offset": (KOLEO, 2),
    "koleo_local_mean": ({**KOLEO, "koleo_group_size": 4, "world_sizes": [3]}, 3),
    "step_patch_center_rank_mean": (STEP, 2),
    "step_center_after_backward": (STEP, 2),
    # micro-batches of unequal global sizes (3 and 2 samples): what a plain mean gets wrong
    "step_center_per_micro_batch": ({**STEP, "micro_batches": 2}, 2),
    "step_ema_per_micro_batch": ({**STEP, "micro_batches": 2}, 2),
    "step_micro_mean": ({**STEP, "micro_batches": 2}, 2),
    # scale-only: the smallest sizes that show them (a count past float16's exact range,
    # more ranks than one node, groups smaller than the world)
    "center_count_float16": ({**CENTERING, "K": 4, "steps": 2, "batch_per_rank": [2063, 0]}, 2),
    "loss_count_float16": ({**IBOT, "K": 4, "masked_per_rank": [65600, 1]}, 2),
    "world_size_of_one_node": ({**CLS, "K": 4, "batch_per_rank": [1, 2]}, 9),
    "collectives_over_world": ({**CENTERING, "group_size": 1, "world_sizes": [2]}, 2),
}


def case_of(table: dict, name: str, source: str = "inline.toml"):
    return case_from_table({"name": name, **table}, source=source)


def run(table: dict, world_size: int, pools, impl: str = "harness.losses", api: str = "seed",
        name: str = "diag", timeout_s: float | None = None):
    return run_case(case_of(table, name), "gloo", world_size, PoolExecutor(pools),
                    load_target(impl, api), timeout_s=timeout_s)


def test_every_numeric_fault_has_a_case_here():
    assert set(SHOWS) == {n for n, f in FAULTS.items() if f.caught_by == "check"}


@pytest.mark.parametrize("fault", sorted(SHOWS))
def test_a_planted_fault_is_diagnosed_as_its_own_mistake(fault, rank_pools):
    table, world_size = SHOWS[fault]
    result = run(table, world_size, rank_pools, module_name(fault))
    mistake = mistake_of(FAULTS[fault])
    assert result.status == "fail", result
    assert result.extra["mistakes"] == [mistake.name], result.extra["diagnosis"]
    assert result.extra["diagnosis"] == f"matches: {mistake.description}"


@pytest.mark.parametrize("fault", sorted(n for n, f in FAULTS.items() if "patch_centering" in f.kinds))
def test_a_center_fault_is_diagnosed_on_the_patch_head_too(fault, rank_pools):
    """The patch center is the CLS center's mechanism: the same switches, the same models
    (and the same micro-batches: its masked tokens per rank are CENTERING's samples)."""
    table, world_size = SHOWS[fault]
    micro = {key: table[key] for key in ("micro_batches",) if key in table}
    result = run({**PATCH_CENTERING, **micro}, world_size, rank_pools, module_name(fault))
    assert result.status == "fail", result
    assert result.extra["mistakes"] == [mistake_of(FAULTS[fault]).name], result.extra["diagnosis"]


@pytest.mark.parametrize("table", [CENTERING, SINKHORN, CLS, IBOT, IBOT_MASKED],
                         ids=["center", "sinkhorn", "cls", "ibot", "ibot_masked"])
def test_numbers_no_model_explains_match_no_known_mistake(table, rank_pools):
    result = run(table, 2, rank_pools, str(FIXTURES / "offset_target.py"))
    assert result.status == "fail"
    assert result.extra["diagnosis"] == NO_MATCH and result.extra["mistakes"] == []


def test_the_reference_passes_and_carries_no_diagnosis_or_repro(rank_pools):
    result = run(CENTERING, 3, rank_pools)
    assert result.status == "pass", result
    assert not {"diagnosis", "mistakes", "repro"} & result.extra.keys()


@pytest.mark.parametrize("table, mistake", [
    (CENTERING, "center_divisor_local_times_world"),
    # O(1) logits: the style has no max shift either, which would overflow first.
    ({**SINKHORN, "teacher_temp": 0.1, "logits": {"scale": 1.0}}, "sinkhorn_local_count"),
    (CLS, "loss_local_batch"),
], ids=["center", "sinkhorn", "cls"])
def test_another_style_is_diagnosed_by_the_same_models(table, mistake, rank_pools):
    """The DINOv2 style (zero center, sum over every pair): its center divided by
    n_local * W, its Sinkhorn B = n_local * W and its local-batch loss, on uneven shards."""
    result = run(table, 2, rank_pools, str(FIXTURES / "dinov2_style.py"), "dinov2")
    assert result.status == "fail"
    assert result.extra["mistakes"] == [mistake], result.extra["diagnosis"]


def test_a_failed_result_carries_the_command_that_reruns_just_it(rank_pools):
    result = run(CENTERING, 2, rank_pools, module_name("center_mean_of_means"),
                 name="uneven.1", timeout_s=20)
    assert "'uneven.1[gloo-ws2]'" in result.extra["repro"]  # quoted for the shell
    args = shlex.split(result.extra["repro"])
    assert args == ["dino-harness", "run", "--impl", "harness.faults.center_mean_of_means",
                    "--api", "seed", "--cases", "inline.toml", "--filter",
                    "uneven.1[gloo-ws2]", "--world-sizes", "2", "--backend", "gloo",
                    "--timeout", "20"]


def test_the_diagnosis_quantises_the_global_teacher_a_fixed_number_of_times(rank_pools,
                                                                          monkeypatch):
    """Not once per rank: each rank's (flawed) Sinkhorn is modelled on shards of one global
    copy. Once per rank, 64 global copies per model filled 17 GB at 64 ranks."""
    import harness.checks.job as job_module

    quantised, calls = job_module.quantised, []

    def counted(*args, **kwargs):
        calls.append(1)
        return quantised(*args, **kwargs)

    monkeypatch.setattr(job_module, "quantised", counted)
    table = {**CLS, "teacher_norm": "sinkhorn", "batch_per_rank": [3, 1, 2, 2]}
    per_world = []
    for world_size in (2, 4):
        calls.clear()
        result = run(table, world_size, rank_pools, module_name("loss_local_batch"))
        assert result.status == "fail" and result.extra["mistakes"] == ["loss_local_batch"]
        per_world.append(len(calls))
    assert per_world[0] == per_world[1] > 0, per_world
