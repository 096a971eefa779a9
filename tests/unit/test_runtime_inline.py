"""InlineExecutor on a one-rank group made in this process (torchrun runs are in
tests/reliability/test_pool_torchrun.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch.distributed as dist

from harness.runtime import InlineExecutor, RankFailure

P = "harness.runtime.testing_programs:"


def test_inline_executor_single_rank(tmp_path: Path) -> None:
    if dist.is_initialized():
        pytest.skip("a default process group already exists in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ex = InlineExecutor("gloo")
        ex.start()
        out = ex.run(P + "smoke_allreduce", None, deadline_s=30)
        assert out is not None and out[0]["sum"] == 1.0 and out[0]["rank"] == 0
        with pytest.raises(RankFailure) as info:
            ex.run(P + "raise_error", {"rank": 0}, deadline_s=30)
        assert info.value.kind == "error" and info.value.ranks == [0]
        assert not ex.alive
        with pytest.raises(RuntimeError):
            ex.run(P + "noop", None, deadline_s=30)
        ex.close()
        assert dist.is_initialized()  # the executor did not create the group: not its to destroy
    finally:
        dist.destroy_process_group()
