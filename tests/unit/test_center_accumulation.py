"""Who is handed a step's micro-batches at once: the centering program's caller follows
what the target's API can do, so a target is judged on how its own loop must call it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.faults import FAULTS, module_name
from harness.kinds.centering import accumulates_by_caller
from harness.targets import load_target

STYLES = Path(__file__).resolve().parents[1] / "fixtures" / "styles"


def test_a_caller_driven_center_without_the_promise_gets_the_steps_rows_at_once():
    """DINOv2's update_center replaces what an earlier call queued: a loop accumulating
    micro-batches must hand it the step's rows in one call (not a per-micro-batch EMA)."""
    assert accumulates_by_caller(load_target("dinov2.loss", "dinov2"))


@pytest.mark.parametrize("impl, api", [
    ("harness.losses", "seed"),  # promises updates_accumulate: one call per micro-batch
    (str(STYLES / "lightly" / "loss" / "dino_loss.py"), "lightly"),  # forward steps it
    (str(STYLES / "main_dino.py"), "dino"),
])
def test_a_promised_or_forward_center_is_called_per_micro_batch(impl, api):
    assert not accumulates_by_caller(load_target(impl, api))


@pytest.mark.parametrize("fault", sorted(n for n, f in FAULTS.items()
                                         if {"centering", "patch_centering"} & set(f.kinds)))
def test_every_planted_center_fault_is_driven_per_micro_batch(fault):
    """Else the per-micro-batch faults would be called as DINOv2 is, and hide."""
    assert not accumulates_by_caller(load_target(module_name(fault), "seed"))
