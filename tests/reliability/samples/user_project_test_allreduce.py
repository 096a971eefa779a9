"""A user's own distributed test, as the README shows it: a plain top-level function is
the rank program. Copied into a fresh project by test_pool_plugin.py (whose conftest.py
defines --backend and --world-sizes of its own) and run there."""

import pytest
import torch
import torch.distributed as dist


def allreduce_program(ctx, payload):
    """Runs on every rank: all-reduce a tensor holding the rank."""
    x = torch.tensor([float(ctx.rank) + payload])
    dist.all_reduce(x)
    return x


@pytest.mark.world_size(2)
def test_allreduce_sums_ranks(dist_run):
    out = dist_run(allreduce_program, 1.0)
    assert [t.item() for t in out] == [3.0, 3.0]  # (0 + 1) + (1 + 1)


def test_the_project_keeps_its_own_options(request):
    assert request.config.getoption("--backend") == "project-own"
    assert request.config.getoption("--world-sizes") == "8"


@pytest.mark.world_size(1)
def test_a_lambda_is_refused_before_any_rank_runs(dist_run):
    with pytest.raises(ValueError, match="is a lambda.*top level of an importable module"):
        dist_run(lambda ctx, payload: None)


@pytest.mark.world_size(1)
def test_a_local_function_is_refused(dist_run):
    def local(ctx, payload):
        return payload

    with pytest.raises(ValueError, match="local function or closure"):
        dist_run(local)


@pytest.mark.world_size(1)
def test_a_string_still_works(dist_run):
    assert dist_run("harness.runtime.testing_programs:noop") == [None]
