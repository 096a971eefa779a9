"""The whole correctness catalogue against the reference implementation.

Covers, on uneven shards at every world size asked for: the exact global center
(equal, uneven, zero-sample rank, bf16 teacher, two updates per apply, 2-D teacher),
Sinkhorn on the global batch (every num_samples convention, zero-sample rank, ±3000,
an outlier 5 below at temperature 0.04), and losses/gradients under the DDP rule.
"""

from __future__ import annotations

import pytest

from harness.checks.runner import run_case
from harness.runtime.executor import PoolExecutor
from harness.targets import load_target


def test_reference_passes(catalogue_case, rank_pools):
    case, backend, world_size = catalogue_case
    result = run_case(case, backend, world_size, PoolExecutor(rank_pools), load_target())
    if result.status == "skip":
        pytest.skip(result.skip_reason)
    failing = [f"{c.name} {c.comparison} rank={c.rank} index={c.index} actual={c.actual} "
               f"expected={c.expected} ratio={c.ratio} {c.detail}"
               for c in result.checks if not c.passed]
    assert result.status == "pass", "\n".join(failing) or str(result.error)
