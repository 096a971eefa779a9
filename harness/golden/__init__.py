"""Float64 NumPy oracles for DINO-family losses (no torch, on purpose).

The golden is the single-process computation on the whole global batch: the Sinkhorn
output a rank must hold is its rows of ``sinkhorn`` on the concatenated batch, the
center is the EMA of global batch means, and the losses / analytic gradients are what
the mean over ranks of local losses (and the DDP-averaged gradients) must equal. It is
written without torch so a bug in torch or in the reference implementation cannot hide
in both sides of a comparison.

``sharded`` and ``mistakes`` model the other side: what a sharded target with one known
mistake outputs on each rank, so that a failed check can name the mistake it matches.
"""

from .centering import (
    accumulated_center,
    batch_center,
    center_sequence,
    centers_used,
    softmax_center,
)
from .ibot_masked import ibot_masked_loss, ibot_masked_loss_grad, masked_patch_weights
from .losses import (
    cls_loss,
    cls_loss_grad,
    cross_entropy,
    dinov2_loss,
    dinov2_loss_grad,
    ibot_loss,
    ibot_loss_grad,
)
from .numerics import log_softmax, logsumexp, softmax
from .sinkhorn import sinkhorn, sinkhorn_seed_float

__all__ = [
    "accumulated_center",
    "batch_center",
    "center_sequence",
    "centers_used",
    "cls_loss",
    "cls_loss_grad",
    "cross_entropy",
    "dinov2_loss",
    "dinov2_loss_grad",
    "ibot_loss",
    "ibot_loss_grad",
    "ibot_masked_loss",
    "ibot_masked_loss_grad",
    "log_softmax",
    "logsumexp",
    "masked_patch_weights",
    "sinkhorn",
    "sinkhorn_seed_float",
    "softmax",
    "softmax_center",
]
