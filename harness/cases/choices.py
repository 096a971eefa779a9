"""Every closed set of values a case holds, written once as a ``Literal``.

The type is what fields and signatures are annotated with; the tuple beside it
(``typing.get_args``: same values, same order) is what validators, messages and the key
table of ``cases/README.md`` list. Adding a value is editing one ``Literal``.
"""

from __future__ import annotations

from typing import Literal, get_args

Dtype = Literal["float32", "bfloat16", "float16"]
Backend = Literal["gloo", "nccl"]
#: The sample count a check passes to a Sinkhorn call (``cases/README.md``).
NumSamples = Literal["global_int", "local_tensor", "local_int", "none"]
TeacherNorm = Literal["sinkhorn", "softmax"]
Distribution = Literal["normal", "uniform"]
#: What a tolerance applies to (``tolerances.py``).
Quantity = Literal["center", "probs", "sinkhorn", "loss", "grad", "weights"]
#: API calls a comms case may bound. ``sinkhorn_knopp``, ``sinkhorn_knopp_teacher`` and
#: ``dino_forward`` get the CLS data (``teacher_logits``, ``student``); the ``ibot_*``
#: calls the patch data; ``dinov2_forward`` both.
CommsCall = Literal[
    "update_center",
    "apply_center_update",
    "softmax_center_teacher",
    "sinkhorn_knopp",
    "sinkhorn_knopp_teacher",
    "ibot_sinkhorn_knopp_teacher",
    "dino_forward",
    "ibot_forward",
    "dinov2_forward",
]

DTYPES: tuple[Dtype, ...] = get_args(Dtype)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
NUM_SAMPLES: tuple[NumSamples, ...] = get_args(NumSamples)
TEACHER_NORMS: tuple[TeacherNorm, ...] = get_args(TeacherNorm)
DISTRIBUTIONS: tuple[Distribution, ...] = get_args(Distribution)
QUANTITIES: tuple[Quantity, ...] = get_args(Quantity)
COMMS_CALLS: tuple[CommsCall, ...] = get_args(CommsCall)
