"""The seed API itself (this project's reference, stable-pretraining's ``losses/dino.py``):
``DINOv1Loss``, ``iBOTPatchLoss``, ``DINOv2Loss``, ``sinkhorn_knopp``.

The target is its own namespace, so the kinds drive whatever names it has, as it has them:
the iBOT patch head's ``iBOTMaskedPatchLoss`` (``forward_masked``) and ``iBOTPatchCenter``,
which the reference adds beside the seed API (its five names keep their meaning), are
driven where a target defines them; a target without them (stable-pretraining) skips
those kinds with the reason. The style maps nothing, so what is tested is the target's
own code. The reference contracts beyond the distributed one
(``base.CONTRACTS``) are checked only where the module promises them by listing them in
``DINO_HARNESS_CONTRACTS`` (the reference and its planted faults do; stable-pretraining's
code makes none of them: two updates before an apply overwrite, S = T = 1 gives NaN).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..semantics import Semantics
from ._base import CONTRACTS, Mark, Style

PROMISE = "DINO_HARNESS_CONTRACTS"
#: The names of the seed API (README, "The reference implementation").
SEED_NAMES = ("cross_entropy_loss", "sinkhorn_knopp", "DINOv1Loss", "iBOTPatchLoss", "DINOv2Loss")


def contracts(module: Any) -> frozenset[str]:
    promised = frozenset(getattr(module, PROMISE, ()))
    return promised & frozenset(CONTRACTS)


def adapt(module: ModuleType) -> Any:
    return module


STYLE = Style(
    name="seed",
    summary="the seed API: DINOv1Loss(temperature_student, center_momentum), iBOTPatchLoss, "
            "DINOv2Loss, sinkhorn_knopp, and where defined iBOTMaskedPatchLoss, "
            "iBOTPatchCenter (this project's reference; stable-pretraining)",
    marks=(Mark("DINOv1Loss", methods={"forward": ("student_logits", "teacher_probs")}),),
    adapt=adapt,
    semantics=Semantics(center_init="first", cls_reduction="mean_off_diagonal"),
    contracts=contracts,
    specificity=10,
)
