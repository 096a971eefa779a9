"""Planted fault: Sinkhorn returns at once on a rank with no samples, skipping the
collectives every other rank waits in: a hang on any world size with an empty shard."""

import torch

from ..losses import sinkhorn_knopp as _reference
from ._build import seed_api


def _returns_early(teacher_output, teacher_temp, num_samples=None, n_iterations=3, **kwargs):
    if teacher_output.shape[0] == 0:
        return torch.empty(teacher_output.shape, dtype=torch.float32, device=teacher_output.device)
    return _reference(teacher_output, teacher_temp, num_samples, n_iterations, **kwargs)


globals().update(seed_api(sinkhorn=_returns_early))
