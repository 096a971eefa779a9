"""How much of the center all-reduce hides behind backward (``dino-harness bench overlap``).

=================  ===============================================================
``cases``          overlap case files (``cases/overlap/*.toml``): loader, validation
``workload``       the DINO-like head, its frozen teacher, one rank's views
``program``        the rank program: the four-phase protocol per iteration
``clock_host``     gloo's clock: host ``perf_counter_ns``
``clock_cuda``     NCCL's clock: CUDA events on the compute stream + ``Work._get_duration``
``trace``          the center collective traced inside the overlapped step
``stats``          median, p10/p90, bootstrap interval of the median
``metrics``        raw times -> the report's metrics (slowest rank), verdicts, timeline
``runner``         one case on a warm pool -> a CaseResult
``controls``       negative (``fake_async``) and positive (reference) controls
``fake_async``     the negative-control target (a full seed-API module)
=================  ===============================================================

README.md in this folder defines every number of the report. Importing this package does
not import torch.
"""

from __future__ import annotations

from .cases import OverlapCase, load_overlap_cases
from .controls import controls
from .runner import run_case

__all__ = ["OverlapCase", "controls", "load_overlap_cases", "run_case"]
