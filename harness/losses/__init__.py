"""Reference implementation of the seed API (README, "The reference implementation"): the system under test.

Written so that on N ranks every output equals the single-process result on the
concatenated global batch, including where the seed's own design does not (uneven
shards, overflow, bf16 centers, two updates before one apply).

Beside the seed API, the iBOT patch head as DINOv2 trains it, under the names the case
kinds drive: ``iBOTMaskedPatchLoss`` (``forward_masked``, per-image weights, and its
Sinkhorn) and ``iBOTPatchCenter`` (the patch head's EMA center, the CLS center's
mechanism), so the reference covers its whole catalogue.
"""

from .centering import iBOTPatchCenter
from .cross_entropy import cross_entropy_loss
from .dino import DINOv1Loss
from .dinov2 import DINOv2Loss
from .ibot import iBOTPatchLoss
from .ibot_masked import iBOTMaskedPatchLoss
from .koleo import KoLeoLoss
from .sinkhorn import sinkhorn_knopp

#: The reference contracts beyond the distributed one that this module promises
#: (harness.styles.CONTRACTS): the seed style checks only what a target lists here.
DINO_HARNESS_CONTRACTS = ("raises", "updates_accumulate", "teacher_2d", "num_samples_none",
                          "float32_compute")

__all__ = ["DINO_HARNESS_CONTRACTS", "DINOv1Loss", "DINOv2Loss", "KoLeoLoss", "cross_entropy_loss",
           "iBOTMaskedPatchLoss", "iBOTPatchCenter", "iBOTPatchLoss", "sinkhorn_knopp"]
