"""The overlap bench drives every style: where centering lives inside forward with a
blocking all-reduce (the original DINO, lightly, solo-learn), it is reported as hidden
by nothing -- the truth for those codebases -- by construction of the paired figure (the
collective's span ends inside its own issuing call), not by luck of the timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.overlap.cases import OverlapCase
from harness.overlap.runner import PG_TIMEOUT_S, run_case
from harness.runtime.executor import PoolExecutor

STYLES = Path(__file__).resolve().parents[1] / "fixtures" / "styles"
BLOCKING = {"dino": STYLES / "main_dino.py", "lightly": STYLES / "lightly" / "loss" / "dino_loss.py",
            "solo": STYLES / "solo_dino.py"}


@pytest.mark.parametrize("style", list(BLOCKING))
def test_a_blocking_center_update_hides_nothing(style: str) -> None:
    case = OverlapCase("overlap-blocking", K=4096, in_dim=8, hidden_dim=16, bottleneck_dim=8,
                       views_student=2, views_teacher=2, batch_per_rank=4, iterations=6,
                       warmup=1, deadline_s=120)
    with PoolExecutor(pg_timeout_s=PG_TIMEOUT_S) as executor:
        result = run_case(executor, case, "gloo", 2, impl=str(BLOCKING[style]), api=style)
    assert result.status == "pass", result.error
    assert result.metrics["hidden_fraction_paired"] == pytest.approx(0.0, abs=0.05)
    assert result.extra["classification"] == "exposed"
