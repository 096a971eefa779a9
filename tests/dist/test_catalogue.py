"""The whole correctness catalogue against the reference implementation.

Covers, on uneven shards at every world size asked for: the exact global center
(equal, uneven, zero-sample rank, bf16 teacher, two updates per apply, 2-D teacher) of
the CLS head and of the iBOT patch head, Sinkhorn on the global batch (every num_samples
convention, zero-sample rank, ±3000, an outlier 5 below at temperature 0.04), and
losses/gradients under the DDP rule, DINOv2's masked iBOT loss on uneven images included.
The reference has every API its catalogue drives: a case may skip only for want of a
backend or devices here, never for want of a reference API.
"""

from __future__ import annotations

import pytest

import harness.kinds  # noqa: F401 - registers the case kinds
from harness.cases import default_catalogue_dir, load_cases
from harness.checks.runner import run_case, skip_reason
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target
from tests.cli.test_cli import FIXTURES


def test_the_reference_covers_its_whole_catalogue():
    target = load_target()
    cases = load_cases([default_catalogue_dir()])
    assert {case.kind for case in cases} >= {"ibot_masked", "patch_centering"}
    unasked = {case.name: reason for case in cases if (reason := skip_reason(case, target))}
    assert unasked == {}


def test_a_seed_target_without_the_patch_head_skips_its_kinds_with_the_reason():
    seed_only = load_target(str(FIXTURES / "styles" / "stable_pretraining" / "losses" / "dino.py"))
    cases = {case.kind: case for case in load_cases([default_catalogue_dir()])}
    assert skip_reason(cases["ibot_masked"], seed_only) == (
        "the seed style has no ibot_masked API (the names it drives lack "
        "iBOTMaskedPatchLoss.forward_masked)")
    assert skip_reason(cases["patch_centering"], seed_only) == (
        "the seed style has no patch_centering API (the names it drives lack iBOTPatchCenter)")


def test_reference_passes(catalogue_case, rank_pools):
    case, backend, world_size = catalogue_case
    result = run_case(case, backend, world_size, PoolExecutor(rank_pools), load_target())
    if result.status == "skip":
        pytest.skip(result.skip_reason)
    failing = [f"{c.name} {c.comparison} rank={c.rank} index={c.index} actual={c.actual} "
               f"expected={c.expected} ratio={c.ratio} {c.detail}"
               for c in result.checks if not c.passed]
    assert result.status == "pass", "\n".join(failing) or str(result.error)
