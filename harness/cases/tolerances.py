"""Default tolerances per quantity and dtype, and the measurements behind each number.

The project's comparison rule: an element passes iff
    |actual - expected| <= tol * max(1, |expected|)
so ``tol`` is relative for values above 1 and absolute below (probabilities, most
centers, every gradient). :func:`tolerance` is
    max(FLOAT32_TOLERANCES[q] * growth(q), OUTPUT_ROUNDING[dtype of q's output] * size(q))
where growth(q) >= 1 widens float32 compute noise for large logits and the second term
admits outputs that the API lets an implementation return in a narrower dtype. All
inputs are exact in their dtype (see data.py), so a bf16/f16 *input* changes nothing
else: the computation after the upcast is plain float32.

Numbers measured on this catalogue (float32 torch reference vs the float64 golden,
eps32 = 1.2e-7) and the planted faults they must still catch:
* center 2e-6 x max(1, rms logit): a float32 mean of a few hundred rows + EMA; noise
  measured <= 3.5e-7. Faults are >= 1e3 x larger: mean of per-rank means on uneven
  shards 5e-2..1.5, wrong divisor 6e-2..0.45, EMA weights swapped 0.3..2 (no case uses
  m = 0.5, where swapping is a no-op), center kept in bf16 5e-3..1.2e-2 (2^-9 relative
  of an O(1) center). No dtype allowance: a bf16 center IS the fault.
* probs 1e-6 x max(1, rms logit / teacher_temp): softmax((x - c) / temp) is elementwise;
  an absolute error d in (x - c) / temp is a relative error d of a probability, and
  rounding makes d ~ eps32 * |z|. Measured <= 9e-6 at rms/temp = 330, 3.5e-6 at 40.
  Allowance: an implementation may return probs in the teacher's dtype (the API does
  not say float32): bf16 2^-7, f16 2^-10 on values <= 1 (2 x the unit roundoff: both
  sides of a dist_vs_single comparison may be rounded).
* sinkhorn 1e-5 x max(1, bound logit / teacher_temp / 1000): float32 Sinkhorn that
  shifts before it divides by temp is accurate to <= 1e-6 even at |logit/temp| = 3000
  (measured <= 9.4e-7 on every case); the growth term only admits formulations that
  divide first (error eps32 * |logit / temp|). Faults: one iteration short 2e-3..0.4,
  per-sample max shift 0.08..1 on this catalogue (both undetectable when K >> N with
  O(1) logits: then every output is ~N/K; hence the k65536 case's sample offsets).
  Output is float32 by the API: no dtype allowance.
* loss 1e-5 x max(1, rms logit / student_temp / 10): a float32 sum of O(log K) terms,
  log_softmax error ~ eps32 * |s / temp|. Measured <= 7e-7; faults (mean of per-rank
  mean losses on uneven shards) 9e-4..2.6e-2. Output is float32 by the API.
* grad 1e-5 x grad bound x max(1, rms logit / student_temp / 10): gradients are
  (softmax(s/temp) - t) / (temp * pairs * B), far below 1, so the rule compares them
  absolutely; the tolerance is therefore relative to Case.grad_bound() (the largest
  gradient the case can produce: T / (student_temp * pairs * B) for CLS, 1 /
  (student_temp * M) for patches, B / M the smallest global count). Measured
  float32 noise <= 1e-6 of the bound. Allowance: gradients come back in the student's
  dtype: bf16 2^-7, f16 2^-10 of the bound (measured bf16 noise 2.4e-3 of max |grad|;
  the rank's and the one process's gradients each round by up to u = 2^-8 relative).
  Faults (local loss not rescaled on uneven shards) 3e-2..0.5 absolute.
"""

from __future__ import annotations

from typing import Any

from .choices import QUANTITIES, Dtype, Quantity

FLOAT32_TOLERANCES: dict[Quantity, float] = {
    "center": 2e-6,
    "probs": 1e-6,
    "sinkhorn": 1e-5,
    "loss": 1e-5,
    "grad": 1e-5,
}
#: Rounding allowance of an output returned in a narrower dtype (2 x the unit roundoff).
OUTPUT_ROUNDING: dict[Dtype, float] = {"float32": 0.0, "bfloat16": 2.0**-7, "float16": 2.0**-10}
#: Quantities whose output the API lets an implementation return in a narrower dtype,
#: and which dtype: probs -> teacher_dtype, grad -> student_dtype.
_OUTPUT_DTYPE = {"probs": "teacher_dtype", "grad": "student_dtype"}


def tolerance(case: Any, quantity: Quantity) -> float:
    """``case.tolerance(quantity)``: the case's own ``tolerances`` entry, or the default::

        center    2e-6 * max(1, rms)
        probs     max(1e-6 * max(1, rms / teacher_temp), OUTPUT_ROUNDING[teacher_dtype])
        sinkhorn  1e-5 * max(1, bound / teacher_temp / 1000)
        loss      1e-5 * max(1, rms / student_temp / 10)
        grad      grad_bound() * max(1e-5 * max(1, rms / student_temp / 10),
                                     OUTPUT_ROUNDING[student_dtype])

    with ``rms`` and ``bound`` the typical and the largest |logit| (``LogitsSpec``).
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if quantity in case.tolerances:
        return case.tolerances[quantity]
    rms, bound = case.logits.rms, case.logits.bound
    if quantity == "center":
        growth = max(1.0, rms)
    elif quantity == "probs":
        growth = max(1.0, rms / case.teacher_temp)
    elif quantity == "sinkhorn":
        growth = max(1.0, bound / case.teacher_temp / 1000.0)
    else:  # loss, grad: log_softmax(s / student_temp)
        growth = max(1.0, rms / case.student_temp / 10.0)
    tol = FLOAT32_TOLERANCES[quantity] * growth
    if quantity in _OUTPUT_DTYPE:
        tol = max(tol, OUTPUT_ROUNDING[getattr(case, _OUTPUT_DTYPE[quantity])])
    if quantity == "grad":
        tol *= case.grad_bound()
    return tol
