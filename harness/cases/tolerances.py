"""Default tolerances per quantity and dtype, and the measurements behind each number.

The project's comparison rule: an element passes iff
    |actual - expected| <= tol * max(1, |expected|)
so ``tol`` is relative for values above 1 and absolute below (probabilities, most
centers, every gradient). :func:`tolerance` at world size W is

    max(FLOOR[q] * growth(q),  LAMBDA * u * sqrt(n(q, W)) * scale(q)),
    then max(., OUTPUT_ROUNDING[dtype of q's output]), and for grad times the grad bound

* the floor: the float32 compute noise measured on the catalogue (below), widened by
  growth(q) >= 1 for large logits;
* the reduction term: a quantity that adds up n float32 terms carries a rounding error
  of about sqrt(n) * u relative (u = 2^-24, the unit roundoff of float32, the compute
  dtype of every quantity; Higham & Mary 2019, "A new approach to probabilistic rounding
  error analysis"), with LAMBDA = 2. n is what the quantity's longest reduction adds up
  at that world size: a center, the teacher rows of one step over every rank; a Sinkhorn
  output, the rows of every rank in its prototype sums; a loss, every student element
  (views x samples x K) of every rank. Probabilities and gradients add up nothing over the
  batch: their floor is the rule at every size. The term takes over from the floor only
  at production sizes (a CLS loss over 10 views x 512 samples x K = 4096: 5.3e-4, where
  the worst correct formulation measured, one einsum over every element, is off by
  1.3e-4; the reference, one dot per sample, by 2e-6 at any size);
* the output allowance admits outputs that the API lets an implementation return in a
  narrower dtype. All inputs are exact in their dtype (see data.py), so a bf16/f16
  *input* changes nothing else: the computation after the upcast is plain float32.

Each tolerance is a :class:`Tolerance`, a float that carries its ``rule`` as text: every
check of a report shows how its tolerance was derived.

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
* weights 1e-5 (absolute below 1): a training step's weights (the step kind) after k
  optimizer steps; measured float32 drift <= 7e-6 over 6 steps of K = 64 at lr 0.05.
  A training step also amplifies rounding, step after step, by as much as its
  conditioning says (a sharp teacher, a large learning rate): a kind with a float64
  model of its steps (``Kind.rounding_spread``) reports how far holding the model's
  weights in float32 moves each quantity, s; every quantity of that kind is held to at
  least SPREAD_FACTOR x s. Measured: the float32 run's error is 1.3-46 x s on the
  weights, 3-45 x s on the centers (the floor covers the loss, up to 241 x s at K = 128,
  where float32 dots over K add what weight rounding does not), across K 16-128, teacher
  temperatures 0.02-0.1, learning rates 0.05-0.5, 3-8 steps, one to three ranks.
  Faults move the weights by 1e-3..1 at lr 0.05.
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

import math
from typing import Any

from . import kind as kinds
from .choices import QUANTITIES, Dtype, Quantity

#: The float32 compute noise measured on the catalogue (see above), per quantity.
FLOOR: dict[Quantity, float] = {
    "center": 2e-6,
    "probs": 1e-6,
    "sinkhorn": 1e-5,
    "loss": 1e-5,
    "grad": 1e-5,
    "weights": 1e-5,
}
FLOAT32_TOLERANCES = FLOOR  # the name other modules and older notes use
UNIT_ROUNDOFF = 2.0**-24  # float32
LAMBDA = 2.0
#: A kind's tolerances are at least this many times its model's float32 spread (above).
SPREAD_FACTOR = 100.0
#: Rounding allowance of an output returned in a narrower dtype (2 x the unit roundoff).
OUTPUT_ROUNDING: dict[Dtype, float] = {"float32": 0.0, "bfloat16": 2.0**-7, "float16": 2.0**-10}
#: Quantities whose output the API lets an implementation return in a narrower dtype,
#: and which dtype: probs -> teacher_dtype, grad -> student_dtype.
_OUTPUT_DTYPE = {"probs": "teacher_dtype", "grad": "student_dtype"}


class Tolerance(float):
    """A tolerance that carries how it was derived: ``rule``, one line of text."""

    rule: str

    def __new__(cls, value: float, rule: str) -> Tolerance:
        self = super().__new__(cls, value)
        self.rule = rule
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Tolerance, (float(self), self.rule))


def _g(x: float) -> str:
    return f"{x:.3g}"


def reduction_size(case: Any, quantity: Quantity, world_size: int) -> tuple[int, str]:
    """(n, how n is made) of the longest reduction behind ``quantity`` at ``world_size``:
    (1, "") for a quantity that adds up nothing over the batch (probs, grad). A center
    adds the teacher rows of one step; a Sinkhorn output every teacher row; a loss every
    student element (its views x samples x K), over every rank."""
    total, terms = 0, []
    for name, spec in kinds.get(case.kind).tensors.items():
        factors = [*spec.lead(case), case.global_count(name, world_size)]
        if quantity == "center" and spec.role == "teacher":
            factors = factors[1:]  # [steps, ...]: the rows of one step
        elif quantity == "loss" and spec.role == "student":
            factors.append(case.K)
        elif not (quantity == "sinkhorn" and spec.role == "teacher"):
            continue
        total += math.prod(factors)
        terms.append("·".join(str(f) for f in factors))
    if not total:
        return 1, ""
    return total, " + ".join(terms)


def tolerance(case: Any, quantity: Quantity, world_size: int | None = None) -> Tolerance:
    """``case.tolerance(quantity, world_size)``: the case's own ``tolerances`` entry, or the
    rule of this module at ``world_size`` (default: the case's largest)::

        center    max(2e-6, 2u·sqrt(n)) * max(1, rms)
        probs     max(1e-6 * max(1, rms / teacher_temp), OUTPUT_ROUNDING[teacher_dtype])
        sinkhorn  max(1e-5 * max(1, bound / teacher_temp / 1000), 2u·sqrt(n))
        loss      max(1e-5 * max(1, rms / student_temp / 10), 2u·sqrt(n))
        grad      grad_bound() * max(1e-5 * max(1, rms / student_temp / 10),
                                     OUTPUT_ROUNDING[student_dtype])
        weights   1e-5

    and, for a kind with a float64 model of its steps, at least SPREAD_FACTOR times how far
    holding that model's weights in float32 moves the quantity (``Kind.rounding_spread``).

    with ``rms`` and ``bound`` the typical and the largest |logit| (``LogitsSpec``) and n
    from :func:`reduction_size`.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    if quantity in case.tolerances:
        value = case.tolerances[quantity]
        return Tolerance(value, f"{_g(value)}, set by the case's tolerances.{quantity}")
    world = world_size if world_size is not None else max(case.world_sizes)
    rms, bound = case.logits.rms, case.logits.bound
    scale, scale_text = 1.0, ""
    if quantity == "center":
        growth, scale, scale_text = 1.0, max(1.0, rms), f" × max(1, rms {_g(rms)})"
    elif quantity == "probs":
        growth = max(1.0, rms / case.teacher_temp)
    elif quantity == "sinkhorn":
        growth = max(1.0, bound / case.teacher_temp / 1000.0)
    elif quantity == "weights":
        growth = 1.0
    else:  # loss, grad: log_softmax(s / student_temp)
        growth = max(1.0, rms / case.student_temp / 10.0)
    floor = FLOOR[quantity] * growth
    n, terms = reduction_size(case, quantity, world)
    reduced = LAMBDA * UNIT_ROUNDOFF * math.sqrt(n)
    value = max(floor, reduced) * scale
    rule = f"floor {_g(floor)}"
    if terms:
        made = "" if terms == str(n) else f"{terms} = "
        rule = f"max(floor {_g(floor)}, 2u·√n = {_g(reduced)}; n = {made}{n:,} at ws{world})"
    rule += scale_text
    if quantity in _OUTPUT_DTYPE:
        dtype = getattr(case, _OUTPUT_DTYPE[quantity])
        if OUTPUT_ROUNDING[dtype] > value:
            value, rule = OUTPUT_ROUNDING[dtype], f"{dtype} output rounding {_g(OUTPUT_ROUNDING[dtype])}"
    if quantity == "grad":
        bound_ = case.grad_bound()
        value, rule = value * bound_, f"({rule}) × grad bound {_g(bound_)}"
    spread = kinds.get(case.kind).rounding_spread
    if spread is not None:
        value, rule = at_least_spread(value, rule, spread(case, quantity, world), "float64 model",
                                      world)
    return Tolerance(value, f"{rule} = {_g(value)}")


def at_least_spread(value: float, rule: str, spread: float, model: str,
                    world: int) -> tuple[float, str]:
    """``value`` raised to SPREAD_FACTOR x ``spread`` (how far holding ``model``'s weights in
    float32 moves the quantity) where that is larger, with the rule that says so."""
    if SPREAD_FACTOR * spread <= value:
        return value, rule
    return SPREAD_FACTOR * spread, (f"{SPREAD_FACTOR:g} × float32 spread {_g(spread)} of the "
                                    f"{model} at ws{world} (above {rule})")
