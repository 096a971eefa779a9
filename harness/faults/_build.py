"""Assemble a complete seed API around one variant of the reference."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from .. import losses as reference
from ..losses.step import dino_step
from ..losses.variants import REFERENCE, Variant


def seed_api(variant: Variant = REFERENCE, *,
             dino: type[reference.DINOv1Loss] | None = None) -> dict[str, Any]:
    """The seed API names with ``variant`` bound everywhere the reference reaches it, and
    the reference step with it (``DINO_HARNESS_STEP``: the step kind drives it). ``dino``
    overrides the CLS loss class (test targets that wrap the reference)."""

    class DINOv1Loss(dino or reference.DINOv1Loss):  # type: ignore[misc]
        pass

    class iBOTPatchLoss(reference.iBOTPatchLoss):  # noqa: N801 - the seed API's name
        pass

    class KoLeoLoss(reference.KoLeoLoss):
        pass

    class DINOv2Loss(reference.DINOv2Loss):  # made of this module's two losses
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            cls, patch = self.dino_loss, self.ibot_patch_loss
            self.dino_loss = DINOv1Loss(cls.student_temp, cls.center_momentum,
                                        process_group=cls.process_group)
            self.ibot_patch_loss = iBOTPatchLoss(patch.student_temp,
                                                 process_group=patch.process_group)

    # The reference's parameters, as a style reads them (a grouped case asks for process_group).
    DINOv2Loss.__init__.__signature__ = inspect.signature(reference.DINOv2Loss.__init__)

    class iBOTMaskedPatchLoss(reference.iBOTMaskedPatchLoss):  # noqa: N801 - the kinds' name
        pass

    class iBOTPatchCenter(reference.iBOTPatchCenter):  # noqa: N801 - the kinds' name
        pass

    for cls in (DINOv1Loss, iBOTPatchLoss, KoLeoLoss, DINOv2Loss, iBOTMaskedPatchLoss,
                iBOTPatchCenter):
        cls.variant = variant
    return {
        "DINO_HARNESS_CONTRACTS": reference.DINO_HARNESS_CONTRACTS,
        "cross_entropy_loss": reference.cross_entropy_loss,
        "sinkhorn_knopp": functools.partial(reference.sinkhorn_knopp, variant=variant),
        "DINOv1Loss": DINOv1Loss,
        "iBOTPatchLoss": iBOTPatchLoss,
        "DINOv2Loss": DINOv2Loss,
        "iBOTMaskedPatchLoss": iBOTMaskedPatchLoss,
        "iBOTPatchCenter": iBOTPatchCenter,
        "KoLeoLoss": KoLeoLoss,
        "DINO_HARNESS_STEP": functools.partial(dino_step, variant=variant),
    }


def planted(module: str) -> dict[str, Any]:
    """The seed API of the fault named by its module (``harness.faults.NAME``)."""
    from . import FAULTS

    return seed_api(FAULTS[module.rpartition(".")[2]].variant)
