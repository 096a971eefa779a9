"""A distributed test of your own on the plugin's warm rank pools (shown in the README)."""

import pytest
import torch
import torch.distributed as dist


def global_mean(ctx, batch_per_rank):
    """Runs on every rank: the mean of a sharded batch, all-reduced as a center would be."""
    torch.manual_seed(ctx.rank)
    local = torch.randn(batch_per_rank[ctx.rank], 8)
    packed = torch.cat([local.sum(0), torch.tensor([float(len(local))])])
    dist.all_reduce(packed)
    return packed[:-1] / packed[-1]


@pytest.mark.world_size(2, 3)
def test_every_rank_gets_the_same_global_mean(dist_run, dist_world_size):
    means = dist_run(global_mean, [5, 0, 3][:dist_world_size])  # rank 1 holds nothing
    for mean in means[1:]:
        torch.testing.assert_close(mean, means[0], rtol=0, atol=0)
