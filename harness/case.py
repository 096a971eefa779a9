"""The Case model: TOML case files, their validation, deterministic data and sharding.

A case file is DATA (read with ``tomllib``, never imported or evaluated). It holds an
optional ``[defaults]`` table, merged into every ``[[case]]`` table of that file, and one
or more ``[[case]]`` tables::

    [defaults]
    kind = "sinkhorn"
    K = 256

    [[case]]
    name = "sinkhorn-uneven-shards"
    batch_per_rank = [16, 5, 11]
    n_iterations = 3

Everything is validated before anything runs; every problem is a :class:`CaseError`
(a ``ValueError``) whose message names the file, the case (its name, or ``case #N``,
1-based, when the name is missing), the key, what was expected and what was found::

    cases/x.toml: case 'sink-uneven': key 'n_iterations': expected an int >= 1, got -1

Keys (default in brackets; "kinds" lists where a key applies -- a key set in a
``[[case]]`` of a kind it does not apply to is an error, the same key in ``[defaults]``
is silently skipped for that case). ``cases/README.md`` says the same at more length.

=================  =====================================================  ===============
key                meaning [default]                                      kinds
=================  =====================================================  ===============
name               unique across every loaded file; letters, digits,      all (required,
                   ``-_.``; prefix it with the kind so ``-k sinkhorn``    not in defaults)
                   selects it
kind               centering | sinkhorn | cls | ibot | dinov2 | comms     all (required)
description        one line [""]                                          all
K                  prototypes, int >= 1 [128]                             all
views_student      S, int >= 1 [4]                                        cls dinov2 comms
views_teacher      T, int >= 1 [2]                                        centering cls
                                                                          dinov2 comms
batch_per_rank     int >= 0, or a list: rank r gets list[r % len] [8]     centering sinkhorn
                                                                          cls dinov2 comms
masked_per_rank    masked patches per rank, same rules [16]               ibot dinov2 comms
teacher_dtype      float32 | bfloat16 | float16 ["float32"]               all
student_dtype      same ["float32"]                                       cls ibot dinov2
                                                                          comms
teacher_temp       > 0 [0.04]                                             all
student_temp       > 0 [0.1]                                              cls ibot dinov2
                                                                          comms
momentum           center EMA momentum, 0 <= m < 1 [0.9]                  centering comms
steps              training steps, int >= 1 [5]                           centering
updates_per_apply  update_center calls per apply, int >= 1 [1]            centering
teacher_2d         pass ``[N, K]`` rows instead of ``[T, B, K]`` [false]  centering
n_iterations       Sinkhorn iterations, int >= 1 [3]                      sinkhorn cls ibot
                                                                          dinov2 comms
num_samples        global_int | local_tensor | none ["global_int"]        same as above
teacher_norm       how the loss cases get teacher probs:                  cls ibot dinov2
                   sinkhorn | softmax ["sinkhorn"]
logits             sub-table, see below                                   all
dino_weight        [1.0]                                                  dinov2
ibot_weight        [1.0]                                                  dinov2
world_sizes        non-empty list of ints >= 1 [[1, 2, 3, 4]]             all
backends           non-empty list of gloo | nccl [["gloo", "nccl"]]       all
tolerances         {quantity = number > 0}; quantities: center, probs,    all
                   sinkhorn, loss, grad [{} -> defaults, see below]
comms              {API call = max collectives}, see below                comms (required)
expect_error       exception class name: the case passes iff the target   all
                   raises it [none]
seed               int >= 0 [a SHA-256 of the name: stable everywhere]    all
deadline_s         seconds, > 0 [60.0]                                    all
=================  =====================================================  ===============

``logits`` sub-table: ``scale`` (> 0, the std of "normal" or the half-width of "uniform")
[1.0], ``distribution`` ("normal" | "uniform") ["normal"], ``sample_offset`` (std of an
additive offset per row, i.e. per sample and view, >= 0) [0.0], ``prototype_offset`` (std
of an additive offset per prototype, shared by every row of a tensor, >= 0; it is what
makes a center non-zero) [0.0], ``outlier_offset`` (a number: every logit of one sample
is shifted by it) [unset], ``outlier_index`` (which sample of the *global* batch, Python
indexing, must be valid at every world size; only with ``outlier_offset``) [-1, the last].
Sub-tables (``logits``, ``tolerances``, ``comms``) in ``[defaults]`` are merged key by key.

Conditional keys: with ``teacher_2d = true`` the teacher is ``[N, K]`` rows and
``views_teacher`` does not apply (``batch_per_rank`` counts rows); with
``teacher_norm = "softmax"`` ``n_iterations`` and ``num_samples`` do not apply.

``num_samples`` conventions (what a check passes to the Sinkhorn call): "global_int" --
the global number of rows given to Sinkhorn (``T * B_global`` for ``[T, B, K]`` input)
as a Python int, the same on every rank; "local_tensor" -- this rank's row count as a
0-d int64 tensor (the implementation must all-reduce it); "none" -- ``None``.

``comms`` (kind comms): keys are API calls (:data:`COMMS_CALLS`), values either an int >= 0
(the most collectives one call may issue) or a table ``{base = int, per_iteration =
int}`` meaning ``base + per_iteration * n_iterations`` -- e.g. ``sinkhorn_knopp = {base = 1,
per_iteration = 1}``. :meth:`Case.max_collectives` resolves both. Every rank must also
issue the *same* number (a rank that skips one hangs the others).

Data (:meth:`Case.global_data`): float64 arrays, deterministic from the seed and the
world size only (never from the rank or the process), each value already rounded to the
dtype its tensor is given to the target in (teacher tensors: ``teacher_dtype``, student
tensors: ``student_dtype``), so casting to that dtype is exact and the float64 golden
sees exactly the numbers the target sees. Every sample has its own random stream
(``default_rng([seed, tensor id, global sample index])``), so global sample ``i`` is the
same at every world size. The global batch is the concatenation of the rank shards in
rank order along the sample axis (:func:`shard`, :meth:`Case.local_data`).

Tolerances: :meth:`Case.tolerance` (the comments above :data:`FLOAT32_TOLERANCES` justify
every number).
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CaseError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the API-identical backport, if installed
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "BACKENDS",
    "FLOAT32_TOLERANCES",
    "OUTPUT_ROUNDING",
    "COMMS_CALLS",
    "DTYPES",
    "KINDS",
    "QUANTITIES",
    "Case",
    "CaseError",
    "LogitsSpec",
    "default_catalogue_dir",
    "default_seed",
    "expand",
    "load_cases",
    "round_to_dtype",
    "shard",
]

KINDS = ("centering", "sinkhorn", "cls", "ibot", "dinov2", "comms")
DTYPES = ("float32", "bfloat16", "float16")
BACKENDS = ("gloo", "nccl")
NUM_SAMPLES = ("global_int", "local_tensor", "none")
TEACHER_NORMS = ("sinkhorn", "softmax")
DISTRIBUTIONS = ("normal", "uniform")
QUANTITIES = ("center", "probs", "sinkhorn", "loss", "grad")

#: API calls a comms case may bound (DESIGN.md §1). ``sinkhorn_knopp``,
#: ``sinkhorn_knopp_teacher`` and ``dino_forward`` get the CLS data (``teacher_logits``,
#: ``student``); the ``ibot_*`` calls the patch data; ``dinov2_forward`` both.
COMMS_CALLS = (
    "update_center",
    "apply_center_update",
    "softmax_center_teacher",
    "sinkhorn_knopp",
    "sinkhorn_knopp_teacher",
    "ibot_sinkhorn_knopp_teacher",
    "dino_forward",
    "ibot_forward",
    "dinov2_forward",
)

# Tolerances. The project's comparison rule: an element passes iff
#     |actual - expected| <= tol * max(1, |expected|)
# so ``tol`` is relative for values above 1 and absolute below (probabilities, most
# centers, every gradient). Case.tolerance(q) is
#     max(FLOAT32_TOLERANCES[q] * growth(q), OUTPUT_ROUNDING[dtype of q's output] * size(q))
# where growth(q) >= 1 widens float32 compute noise for large logits and the second term
# admits outputs that the API lets an implementation return in a narrower dtype. All
# inputs are exact in their dtype (see global_data), so a bf16/f16 *input* changes
# nothing else: the computation after the upcast is plain float32.
#
# Numbers measured on this catalogue (float32 torch reference vs the float64 golden,
# eps32 = 1.2e-7) and the planted faults they must still catch:
# * center 2e-6 x max(1, rms logit): a float32 mean of a few hundred rows + EMA; noise
#   measured <= 3.5e-7. Faults are >= 1e3 x larger: mean of per-rank means on uneven
#   shards 5e-2..1.5, wrong divisor 6e-2..0.45, EMA weights swapped 0.3..2 (no case uses
#   m = 0.5, where swapping is a no-op), center kept in bf16 5e-3..1.2e-2 (2^-9 relative
#   of an O(1) center). No dtype allowance: a bf16 center IS the fault.
# * probs 1e-6 x max(1, rms logit / teacher_temp): softmax((x - c) / temp) is elementwise;
#   an absolute error d in (x - c) / temp is a relative error d of a probability, and
#   rounding makes d ~ eps32 * |z|. Measured <= 9e-6 at rms/temp = 330, 3.5e-6 at 40.
#   Allowance: an implementation may return probs in the teacher's dtype (the API does
#   not say float32): bf16 2^-8, f16 2^-11 on values <= 1 (2 x the unit roundoff).
# * sinkhorn 1e-5 x max(1, bound logit / teacher_temp / 1000): float32 Sinkhorn that
#   shifts before it divides by temp is accurate to <= 1e-6 even at |logit/temp| = 3000
#   (measured <= 9.4e-7 on every case); the growth term only admits formulations that
#   divide first (error eps32 * |logit / temp|). Faults: one iteration short 2e-3..0.4,
#   per-sample max shift 0.08..1 on this catalogue (both undetectable when K >> N with
#   O(1) logits: then every output is ~N/K; hence the k65536 case's sample offsets).
#   Output is float32 by the API: no dtype allowance.
# * loss 1e-5 x max(1, rms logit / student_temp / 10): a float32 sum of O(log K) terms,
#   log_softmax error ~ eps32 * |s / temp|. Measured <= 7e-7; faults (mean of per-rank
#   mean losses on uneven shards) 9e-4..2.6e-2. Output is float32 by the API.
# * grad 1e-5 x grad bound x max(1, rms logit / student_temp / 10): gradients are
#   (softmax(s/temp) - t) / (temp * pairs * B), far below 1, so the rule compares them
#   absolutely; the tolerance is therefore relative to Case.grad_bound() (the largest
#   gradient the case can produce: T / (student_temp * pairs * B) for CLS, 1 /
#   (student_temp * M) for patches, B / M the smallest global count). Measured
#   float32 noise <= 1e-6 of the bound. Allowance: gradients come back in the student's
#   dtype: bf16 2^-8, f16 2^-11 of the bound (measured bf16 noise 2.4e-3 of max |grad|).
#   Faults (local loss not rescaled on uneven shards) 3e-2..0.5 absolute.
FLOAT32_TOLERANCES: dict[str, float] = {
    "center": 2e-6,
    "probs": 1e-6,
    "sinkhorn": 1e-5,
    "loss": 1e-5,
    "grad": 1e-5,
}
#: Rounding allowance of an output returned in a narrower dtype (2 x the unit roundoff).
OUTPUT_ROUNDING: dict[str, float] = {"float32": 0.0, "bfloat16": 2.0**-8, "float16": 2.0**-11}
#: Quantities whose output the API lets an implementation return in a narrower dtype,
#: and which dtype: probs -> teacher_dtype, grad -> student_dtype.
_OUTPUT_DTYPE = {"probs": "teacher", "grad": "student"}

DEFAULT_WORLD_SIZES = (1, 2, 3, 4)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_EXC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PROTOTYPE_STREAM = 1 << 40  # stream id of a tensor's prototype offsets (> any sample index)
# Stable ids of the generated tensors (part of every random stream's key).
_TENSOR_IDS = {
    "teacher": 1,
    "student": 2,
    "teacher_logits": 3,
    "student_patch": 4,
    "teacher_patch_logits": 5,
}


class _Bad(Exception):
    """Raised by the validators; turned into a CaseError with the file/case context."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


# --------------------------------------------------------------------------------------
# describing values in messages
# --------------------------------------------------------------------------------------
def _got(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the key is missing)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        text = "[" + ", ".join(_short(v) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]"
        return f"an array {text}"
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:6])
        return f"a table {{{keys}}}" if keys else "an empty table"
    return f"{value} (a {type(value).__name__})"


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return repr(value)
    if isinstance(value, list):
        return "[...]"
    if isinstance(value, dict):
        return "{...}"
    return str(value)


def _bad(key: str, expected: str, value: Any, hint: str = "") -> _Bad:
    return _Bad(key, f"expected {expected}, got {_got(value)}{hint}")


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<missing>"


_MISSING: Any = _Missing()


# --------------------------------------------------------------------------------------
# validators: value -> normalised value, or raise _Bad
# --------------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _v_int(minimum: int) -> Callable[[str, Any], int]:
    def check(key: str, v: Any) -> int:
        if not _is_int(v) or v < minimum:
            raise _bad(key, f"an int >= {minimum}", v)
        return int(v)

    return check


def _v_num(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str, Any], float]:
    if lo is not None and hi is not None:
        desc = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        desc = f"a number {'>' if lo_open else '>='} {lo:g}"
    else:
        desc = "a number"

    def check(key: str, v: Any) -> float:
        ok = _is_num(v) and math.isfinite(float(v))
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
        if not ok:
            raise _bad(key, desc, v)
        return float(v)

    return check


def _v_enum(choices: Sequence[str]) -> Callable[[str, Any], str]:
    desc = "one of " + ", ".join(repr(c) for c in choices)

    def check(key: str, v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            hint = _did_you_mean(v, choices) if isinstance(v, str) else ""
            raise _bad(key, desc, v, hint)
        return v

    return check


def _v_bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _bad(key, "true or false", v)
    return v


def _v_str(key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _bad(key, "a string", v)
    return v


def _v_name(key: str, v: Any) -> str:
    if not isinstance(v, str) or not _NAME_RE.match(v):
        raise _bad(key, "a non-empty name of letters, digits, '-', '_' and '.'", v)
    return v


def _v_exception(key: str, v: Any) -> str:
    if not isinstance(v, str) or not _EXC_RE.match(v):
        raise _bad(key, "an exception class name such as 'ValueError'", v)
    return v


def _v_sizes(key: str, v: Any) -> tuple[int, ...]:
    desc = "an int >= 0 or a non-empty array of ints >= 0"
    if _is_int(v):
        if v < 0:
            raise _bad(key, desc, v)
        return (int(v),)
    if isinstance(v, list) and v and all(_is_int(x) and x >= 0 for x in v):
        return tuple(int(x) for x in v)
    raise _bad(key, desc, v)


def _v_world_sizes(key: str, v: Any) -> tuple[int, ...]:
    if not (isinstance(v, list) and v and all(_is_int(x) and x >= 1 for x in v)):
        raise _bad(key, "a non-empty array of ints >= 1", v)
    if len(set(v)) != len(v):
        raise _bad(key, "an array without repeated world sizes", v)
    return tuple(int(x) for x in v)


def _v_backends(key: str, v: Any) -> tuple[str, ...]:
    desc = "a non-empty array of " + " and ".join(repr(b) for b in BACKENDS)
    if not (isinstance(v, list) and v):
        raise _bad(key, desc, v)
    for x in v:
        if not isinstance(x, str) or x not in BACKENDS:
            hint = _did_you_mean(x, BACKENDS) if isinstance(x, str) else ""
            raise _bad(key, desc, v, hint)
    if len(set(v)) != len(v):
        raise _bad(key, "an array without repeated backends", v)
    return tuple(v)


def _v_table(key: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _bad(key, "a table", v)
    return v


# logits sub-table ---------------------------------------------------------------------
_LOGITS_KEYS: dict[str, Callable[[str, Any], Any]] = {
    "scale": _v_num(0.0, lo_open=True),
    "distribution": _v_enum(DISTRIBUTIONS),
    "sample_offset": _v_num(0.0),
    "prototype_offset": _v_num(0.0),
    "outlier_offset": _v_num(),
    "outlier_index": lambda k, v: _v_int_any(k, v),
}


def _v_int_any(key: str, v: Any) -> int:
    if not _is_int(v):
        raise _bad(key, "an int (Python indexing: -1 is the last sample)", v)
    return int(v)


def _check_logits(key: str, v: Any) -> dict[str, Any]:
    table = _v_table(key, v)
    out = {}
    for sub, value in table.items():
        if sub not in _LOGITS_KEYS:
            raise _Bad(f"{key}.{sub}", "unknown key" + _known(_LOGITS_KEYS)
                       + _did_you_mean(sub, _LOGITS_KEYS))
        out[sub] = _LOGITS_KEYS[sub](f"{key}.{sub}", value)
    return out


def _known(keys: Iterable[str]) -> str:
    return " (known: " + ", ".join(keys) + ")"


def _check_tolerances(key: str, v: Any) -> dict[str, float]:
    table = _v_table(key, v)
    out = {}
    pos = _v_num(0.0, lo_open=True)
    for q, value in table.items():
        if q not in QUANTITIES:
            raise _Bad(f"{key}.{q}", "unknown quantity" + _known(QUANTITIES)
                       + _did_you_mean(q, QUANTITIES))
        out[q] = pos(f"{key}.{q}", value)
    return out


def _check_comms(key: str, v: Any) -> dict[str, tuple[int, int]]:
    table = _v_table(key, v)
    out: dict[str, tuple[int, int]] = {}
    desc = "an int >= 0 or a table {base = int >= 0, per_iteration = int >= 0}"
    for call, value in table.items():
        if call not in COMMS_CALLS:
            raise _Bad(f"{key}.{call}", "unknown API call" + _known(COMMS_CALLS)
                       + _did_you_mean(call, COMMS_CALLS))
        sub = f"{key}.{call}"
        if _is_int(value) and value >= 0:
            out[call] = (int(value), 0)
        elif isinstance(value, dict):
            for part in value:
                if part not in ("base", "per_iteration"):
                    raise _Bad(f"{sub}.{part}", "unknown key"
                               + _known(("base", "per_iteration"))
                               + _did_you_mean(part, ("base", "per_iteration")))
            base = _v_int(0)(f"{sub}.base", value.get("base", 0))
            per = _v_int(0)(f"{sub}.per_iteration", value.get("per_iteration", 0))
            out[call] = (base, per)
        else:
            raise _bad(sub, desc, value)
    return out


# --------------------------------------------------------------------------------------
# the key table
# --------------------------------------------------------------------------------------
_ALL = frozenset(KINDS)
_LOSS = frozenset({"cls", "ibot", "dinov2", "comms"})
_SINKHORN_USERS = frozenset({"sinkhorn", "cls", "ibot", "dinov2", "comms"})


@dataclass(frozen=True)
class _Key:
    check: Callable[[str, Any], Any]
    default: Any
    kinds: frozenset[str]


_KEYS: dict[str, _Key] = {
    "name": _Key(_v_name, _MISSING, _ALL),
    "kind": _Key(_v_enum(KINDS), _MISSING, _ALL),
    "description": _Key(_v_str, "", _ALL),
    "K": _Key(_v_int(1), 128, _ALL),
    "views_student": _Key(_v_int(1), 4, frozenset({"cls", "dinov2", "comms"})),
    "views_teacher": _Key(_v_int(1), 2, frozenset({"centering", "cls", "dinov2", "comms"})),
    "batch_per_rank": _Key(_v_sizes, (8,),
                           frozenset({"centering", "sinkhorn", "cls", "dinov2", "comms"})),
    "masked_per_rank": _Key(_v_sizes, (16,), frozenset({"ibot", "dinov2", "comms"})),
    "teacher_dtype": _Key(_v_enum(DTYPES), "float32", _ALL),
    "student_dtype": _Key(_v_enum(DTYPES), "float32", _LOSS),
    "teacher_temp": _Key(_v_num(0.0, lo_open=True), 0.04, _ALL),
    "student_temp": _Key(_v_num(0.0, lo_open=True), 0.1, _LOSS),
    "momentum": _Key(_v_num(0.0, 1.0, hi_open=True), 0.9, frozenset({"centering", "comms"})),
    "steps": _Key(_v_int(1), 5, frozenset({"centering"})),
    "updates_per_apply": _Key(_v_int(1), 1, frozenset({"centering"})),
    "teacher_2d": _Key(_v_bool, False, frozenset({"centering"})),
    "n_iterations": _Key(_v_int(1), 3, _SINKHORN_USERS),
    "num_samples": _Key(_v_enum(NUM_SAMPLES), "global_int", _SINKHORN_USERS),
    "teacher_norm": _Key(_v_enum(TEACHER_NORMS), "sinkhorn", frozenset({"cls", "ibot", "dinov2"})),
    "logits": _Key(_check_logits, {}, _ALL),
    "dino_weight": _Key(_v_num(), 1.0, frozenset({"dinov2"})),
    "ibot_weight": _Key(_v_num(), 1.0, frozenset({"dinov2"})),
    "world_sizes": _Key(_v_world_sizes, DEFAULT_WORLD_SIZES, _ALL),
    "backends": _Key(_v_backends, BACKENDS, _ALL),
    "tolerances": _Key(_check_tolerances, {}, _ALL),
    "comms": _Key(_check_comms, {}, frozenset({"comms"})),
    "expect_error": _Key(_v_exception, None, _ALL),
    "seed": _Key(_v_int(0), None, _ALL),
    "deadline_s": _Key(_v_num(0.0, lo_open=True), 60.0, _ALL),
}
_MERGED_TABLES = ("logits", "tolerances", "comms")


def _kinds_text(kinds: frozenset[str]) -> str:
    return ", ".join(k for k in KINDS if k in kinds)


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogitsSpec:
    """How logits are drawn (see the module docstring)."""

    scale: float = 1.0
    distribution: str = "normal"
    sample_offset: float = 0.0
    prototype_offset: float = 0.0
    outlier_offset: float | None = None
    outlier_index: int = -1

    @property
    def rms(self) -> float:
        """The typical |logit| (root mean square of base draw and offsets, outlier aside)."""
        std = self.scale if self.distribution == "normal" else self.scale / math.sqrt(3.0)
        return math.sqrt(std**2 + self.sample_offset**2 + self.prototype_offset**2)

    @property
    def bound(self) -> float:
        """A bound on |logit| that holds in practice: the uniform half-width (exact) or 5
        std of a normal draw, plus 5 std of each offset, plus |outlier_offset|."""
        base = self.scale if self.distribution == "uniform" else 5.0 * self.scale
        return base + 5.0 * (self.sample_offset + self.prototype_offset) + abs(self.outlier_offset or 0.0)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "scale": self.scale,
            "distribution": self.distribution,
            "sample_offset": self.sample_offset,
            "prototype_offset": self.prototype_offset,
        }
        if self.outlier_offset is not None:
            d["outlier_offset"] = self.outlier_offset
            d["outlier_index"] = self.outlier_index
        return d


# tensor name -> (which per-rank counts shard it: "batch" | "masked", student or teacher)
_TENSORS: dict[str, tuple[str, str]] = {
    "teacher": ("batch", "teacher"),
    "student": ("batch", "student"),
    "teacher_logits": ("batch", "teacher"),
    "student_patch": ("masked", "student"),
    "teacher_patch_logits": ("masked", "teacher"),
}
_KIND_TENSORS: dict[str, tuple[str, ...]] = {
    "centering": ("teacher",),
    "sinkhorn": ("teacher",),
    "cls": ("student", "teacher_logits"),
    "ibot": ("student_patch", "teacher_patch_logits"),
    "dinov2": ("student", "teacher_logits", "student_patch", "teacher_patch_logits"),
    "comms": ("student", "teacher_logits", "student_patch", "teacher_patch_logits"),
}


@dataclass(frozen=True)
class Case:
    """One validated correctness case. Build it with :func:`load_cases` or :meth:`from_dict`.

    ``batch_per_rank`` / ``masked_per_rank`` are tuples (an int ``n`` in the file is
    ``(n,)``); rank ``r`` gets ``sizes[r % len(sizes)]``. ``comms`` maps an API call to
    ``(base, per_iteration)``; use :meth:`max_collectives`.
    """

    name: str
    kind: str
    source: str = "<dict>"
    description: str = ""
    K: int = 128
    views_student: int = 4
    views_teacher: int = 2
    batch_per_rank: tuple[int, ...] = (8,)
    masked_per_rank: tuple[int, ...] = (16,)
    teacher_dtype: str = "float32"
    student_dtype: str = "float32"
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    momentum: float = 0.9
    steps: int = 5
    updates_per_apply: int = 1
    teacher_2d: bool = False
    n_iterations: int = 3
    num_samples: str = "global_int"
    teacher_norm: str = "sinkhorn"
    logits: LogitsSpec = field(default_factory=LogitsSpec)
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    world_sizes: tuple[int, ...] = DEFAULT_WORLD_SIZES
    backends: tuple[str, ...] = BACKENDS
    tolerances: dict[str, float] = field(default_factory=dict, hash=False, compare=True)
    comms: dict[str, tuple[int, int]] = field(default_factory=dict, hash=False, compare=True)
    expect_error: str | None = None
    seed: int = 0
    deadline_s: float = 60.0

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        table: Mapping[str, Any],
        *,
        defaults: Mapping[str, Any] | None = None,
        source: str = "<dict>",
    ) -> Case:
        """Validate one case table (as in a TOML file) and build the Case."""
        defaults_checked = _check_defaults(dict(defaults or {}), source)
        return _build_case(dict(table), defaults_checked, source, index=0)

    # -- sharding ----------------------------------------------------------------------
    def batch_sizes(self, world_size: int) -> list[int]:
        """Per-rank B (rows per rank when ``teacher_2d``): rank r gets list[r % len]."""
        return _cycle(self.batch_per_rank, world_size)

    def masked_counts(self, world_size: int) -> list[int]:
        """Per-rank number of masked patches M_r."""
        return _cycle(self.masked_per_rank, world_size)

    def tensor_names(self) -> tuple[str, ...]:
        """The keys :meth:`global_data` returns for this kind."""
        return _KIND_TENSORS[self.kind]

    def sample_axis(self, tensor: str) -> int:
        """The axis of ``tensor`` that ranks shard (its second-to-last axis)."""
        return len(self._lead_shape(tensor))

    def shard_sizes(self, tensor: str, world_size: int) -> list[int]:
        """Per-rank sizes along :meth:`sample_axis` of ``tensor``."""
        counts = _TENSORS[tensor][0]
        return self.batch_sizes(world_size) if counts == "batch" else self.masked_counts(world_size)

    def global_count(self, tensor: str, world_size: int) -> int:
        return sum(self.shard_sizes(tensor, world_size))

    def dtype_of(self, tensor: str) -> str:
        """The dtype name ``tensor`` is given to the target in."""
        return self.teacher_dtype if _TENSORS[tensor][1] == "teacher" else self.student_dtype

    def torch_dtype_name(self, which: str = "teacher") -> str:
        """``"float32"`` / ``"bfloat16"`` / ``"float16"``: ``getattr(torch, name)`` gives the
        dtype. ``which`` is "teacher", "student" or a tensor name of :meth:`global_data`."""
        if which == "teacher":
            return self.teacher_dtype
        if which == "student":
            return self.student_dtype
        if which in _TENSORS:
            return self.dtype_of(which)
        raise ValueError(f"which must be 'teacher', 'student' or one of {list(_TENSORS)}, got {which!r}")

    # -- data --------------------------------------------------------------------------
    def global_data(self, world_size: int) -> dict[str, np.ndarray]:
        """The global batch for ``world_size``: float64 arrays, exact in their dtype.

        centering: ``teacher`` [steps, updates_per_apply, T, B, K] ([steps, upa, N, K]
        when teacher_2d); sinkhorn: ``teacher`` [N, K]; cls: ``student`` [S, B, K],
        ``teacher_logits`` [T, B, K]; ibot: ``student_patch`` [M, K],
        ``teacher_patch_logits`` [M, K]; dinov2 and comms: all four. B, N, M are global.
        """
        _check_world_size(world_size)
        return {name: self._tensor(name, world_size) for name in self.tensor_names()}

    def local_data(self, world_size: int, rank: int) -> dict[str, np.ndarray]:
        """Rank ``rank``'s shard of every tensor of :meth:`global_data`."""
        _check_world_size(world_size)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        data = self.global_data(world_size)
        return {
            name: shard(arr, self.shard_sizes(name, world_size), rank, self.sample_axis(name))
            for name, arr in data.items()
        }

    def _lead_shape(self, tensor: str) -> tuple[int, ...]:
        if tensor == "teacher":
            if self.kind == "centering":
                lead = (self.steps, self.updates_per_apply)
                return lead if self.teacher_2d else (*lead, self.views_teacher)
            return ()
        if tensor == "student":
            return (self.views_student,)
        if tensor == "teacher_logits":
            return (self.views_teacher,)
        if tensor in ("student_patch", "teacher_patch_logits"):
            return ()
        raise ValueError(f"unknown tensor {tensor!r}")

    def _tensor(self, tensor: str, world_size: int) -> np.ndarray:
        n = self.global_count(tensor, world_size)
        lead = self._lead_shape(tensor)
        spec = self.logits
        tid = _TENSOR_IDS[tensor]
        out = np.empty((*lead, n, self.K), dtype=np.float64)
        row_shape = (*lead, self.K)
        for i in range(n):
            rng = np.random.default_rng([self.seed, tid, i])
            if spec.distribution == "normal":
                x = rng.standard_normal(row_shape) * spec.scale
            else:
                x = rng.uniform(-spec.scale, spec.scale, row_shape)
            if spec.sample_offset:
                x += rng.standard_normal((*lead, 1)) * spec.sample_offset
            out[..., i, :] = x
        if spec.prototype_offset:
            rng = np.random.default_rng([self.seed, tid, _PROTOTYPE_STREAM])
            out += rng.standard_normal(self.K) * spec.prototype_offset
        if spec.outlier_offset is not None and n:
            out[..., spec.outlier_index, :] += spec.outlier_offset
        return round_to_dtype(out, self.dtype_of(tensor))

    # -- checks ------------------------------------------------------------------------
    def tolerance(self, quantity: str) -> float:
        """The tolerance of ``quantity``: one of center, probs, sinkhorn, loss, grad.

        An element passes iff ``|actual - expected| <= tol * max(1, |expected|)``. An
        entry of the case's ``tolerances`` table wins; otherwise (see the comments above
        FLOAT32_TOLERANCES for the measurements behind each number)::

            center    2e-6 * max(1, rms)
            probs     max(1e-6 * max(1, rms / teacher_temp), OUTPUT_ROUNDING[teacher_dtype])
            sinkhorn  1e-5 * max(1, bound / teacher_temp / 1000)
            loss      1e-5 * max(1, rms / student_temp / 10)
            grad      grad_bound() * max(1e-5 * max(1, rms / student_temp / 10),
                                         OUTPUT_ROUNDING[student_dtype])

        with ``rms`` and ``bound`` the typical and the largest |logit|
        (:attr:`LogitsSpec.rms`, :attr:`LogitsSpec.bound`).
        """
        if quantity not in QUANTITIES:
            raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
        if quantity in self.tolerances:
            return self.tolerances[quantity]
        rms, bound = self.logits.rms, self.logits.bound
        if quantity == "center":
            growth = max(1.0, rms)
        elif quantity == "probs":
            growth = max(1.0, rms / self.teacher_temp)
        elif quantity == "sinkhorn":
            growth = max(1.0, bound / self.teacher_temp / 1000.0)
        else:  # loss, grad: log_softmax(s / student_temp)
            growth = max(1.0, rms / self.student_temp / 10.0)
        tol = FLOAT32_TOLERANCES[quantity] * growth
        if quantity in _OUTPUT_DTYPE:
            dtype = self.teacher_dtype if _OUTPUT_DTYPE[quantity] == "teacher" else self.student_dtype
            tol = max(tol, OUTPUT_ROUNDING[dtype])
        if quantity == "grad":
            tol *= self.grad_bound()
        return tol

    def grad_bound(self) -> float:
        """The largest |d loss / d student logit| this case can produce at any of its world
        sizes (the scale gradients are compared at; 1.0 for kinds without a loss).

        CLS: ``T / (student_temp * pairs * B)``; patches: ``1 / (student_temp * M)``; each
        times its dinov2 weight; B and M the smallest non-zero global counts.
        """
        bounds = []
        if self.kind in ("cls", "dinov2") and self.n_pairs:
            b = min((n for w in self.world_sizes if (n := sum(self.batch_sizes(w)))), default=1)
            weight = abs(self.dino_weight) if self.kind == "dinov2" else 1.0
            bounds.append(weight * self.views_teacher / (self.student_temp * self.n_pairs * b))
        if self.kind in ("ibot", "dinov2"):
            m = min((n for w in self.world_sizes if (n := sum(self.masked_counts(w)))), default=1)
            weight = abs(self.ibot_weight) if self.kind == "dinov2" else 1.0
            bounds.append(weight / (self.student_temp * m))
        return max(bounds, default=1.0) or 1.0

    def max_collectives(self, call: str) -> int:
        """The most collectives one ``call`` may issue (comms cases)."""
        if call not in self.comms:
            raise KeyError(f"case {self.name!r} bounds no collectives of {call!r}")
        base, per_iteration = self.comms[call]
        return base + per_iteration * self.n_iterations

    def applies_to(self, backend: str, world_size: int) -> bool:
        return backend in self.backends and world_size in self.world_sizes

    def test_id(self, backend: str, world_size: int) -> str:
        """``name[backend-wsN]``, as in harness.results.CaseResult.test_id."""
        return f"{self.name}[{backend}-ws{world_size}]"

    @property
    def n_pairs(self) -> int:
        """CLS (student, teacher) view pairs with s != t."""
        return self.views_student * self.views_teacher - min(self.views_student, self.views_teacher)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field (for reports and for other processes)."""
        d: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, LogitsSpec):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif name == "comms":
                value = {k: {"base": b, "per_iteration": p} for k, (b, p) in value.items()}
            elif isinstance(value, dict):
                value = dict(value)
            d[name] = value
        return d


def _cycle(sizes: tuple[int, ...], world_size: int) -> list[int]:
    _check_world_size(world_size)
    return [sizes[r % len(sizes)] for r in range(world_size)]


def _check_world_size(world_size: int) -> None:
    if not _is_int(world_size) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")


# --------------------------------------------------------------------------------------
# data helpers
# --------------------------------------------------------------------------------------
def default_seed(name: str) -> int:
    """A 63-bit seed from SHA-256 of the case name: the same in every process and run
    (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.sha256(b"dino-harness/case/" + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def round_to_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    """float64 copy of ``array`` rounded (to nearest even) to the values of ``dtype``.

    bfloat16 is rounded from float32 exactly as torch's ``.to(torch.bfloat16)`` does.
    """
    a = np.asarray(array, dtype=np.float64)
    if dtype == "float32":
        return a.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):  # beyond float16's range: inf, as torch gives
            return a.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        f32 = np.ascontiguousarray(a.astype(np.float32))
        bits = f32.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        out = rounded.astype(np.uint32).view(np.float32)
        out = np.where(np.isnan(f32), f32, out)  # keep NaN a NaN
        return out.astype(np.float64)
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")


def shard(array: np.ndarray, sizes: list[int], rank: int, axis: int) -> np.ndarray:
    """Rank ``rank``'s slice of ``array`` along ``axis`` when ranks hold ``sizes`` in rank
    order (a copy, contiguous). ``sum(sizes)`` must equal the axis length."""
    arr = np.asarray(array)
    ax = axis if axis >= 0 else arr.ndim + axis
    if not 0 <= ax < arr.ndim:
        raise ValueError(f"axis {axis} out of range for an array of shape {arr.shape}")
    if any((not _is_int(s)) or s < 0 for s in sizes):
        raise ValueError(f"sizes must be ints >= 0, got {sizes}")
    if sum(sizes) != arr.shape[ax]:
        raise ValueError(
            f"sizes {sizes} sum to {sum(sizes)} but axis {axis} of shape {arr.shape} has "
            f"{arr.shape[ax]} entries"
        )
    if not 0 <= rank < len(sizes):
        raise ValueError(f"rank must be in [0, {len(sizes)}), got {rank}")
    start = sum(sizes[:rank])
    index = [slice(None)] * arr.ndim
    index[ax] = slice(start, start + sizes[rank])
    return np.ascontiguousarray(arr[tuple(index)])


# --------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------
def default_catalogue_dir() -> Path:
    """``<repo>/cases/correctness``."""
    return Path(__file__).resolve().parent.parent / "cases" / "correctness"


def load_cases(paths: Sequence[str | Path] | str | Path) -> list[Case]:
    """Load and validate case files: files, or directories (recursive ``*.toml``, sorted).

    Raises CaseError on the first problem, before anything runs. Names must be unique
    across every loaded file; a file reached twice is loaded once.
    """
    return load_unique(paths, _load_file)


def load_unique(paths: Sequence[str | Path] | str | Path,
                load_file: Callable[[Path], list[Any]]) -> list[Any]:
    """Every ``*.toml`` under ``paths`` through ``load_file``, names unique across files
    (shared by the correctness and the overlap catalogues)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.rglob("*.toml"))
            if not found:
                raise CaseError(f"{path}: no *.toml case files in this directory", file=str(path))
        elif path.is_file():
            found = [path]
        else:
            raise CaseError(f"{path}: no such case file or directory", file=str(path))
        for f in found:
            resolved = f.resolve()
            if resolved not in seen:
                seen.add(resolved)
                files.append(f)
    cases: list[Any] = []
    where: dict[str, str] = {}
    for f in files:
        for case in load_file(f):
            if case.name in where:
                raise CaseError(
                    f"{f}: case {case.name!r}: key 'name': expected a name unique across "
                    f"the loaded files, got {case.name!r} (already defined in {where[case.name]})",
                    file=str(f), case=case.name, key="name",
                )
            where[case.name] = str(f)
            cases.append(case)
    return cases


_SYNTAX_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_toml(path: Path) -> dict[str, Any]:
    """A case file's table; unreadable or malformed files are a CaseError naming the file
    (and line and column for a syntax error). Shared with the overlap catalogue."""
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError(f"{source}: not UTF-8 text ({exc})", file=source) from exc
    except OSError as exc:
        raise CaseError(f"{source}: cannot read: {exc}", file=source) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _SYNTAX_RE.search(msg)
        if m:
            detail = _SYNTAX_RE.sub("", msg).strip()
            where = f"line {m.group(1)}, column {m.group(2)}"
        else:
            detail, where = msg, "unknown position"
        raise CaseError(f"{source}: TOML syntax error at {where}: {detail}", file=source) from exc


def _load_file(path: Path) -> list[Case]:
    source = str(path)
    doc = read_toml(path)

    for key in doc:
        if key not in ("defaults", "case"):
            raise CaseError(
                f"{source}: key {key!r}: unknown top-level key, expected only a [defaults] "
                f"table and [[case]] tables{_did_you_mean(key, ('defaults', 'case'))}",
                file=source, key=key,
            )
    raw_defaults = doc.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise CaseError(
            f"{source}: key 'defaults': expected a table [defaults], got {_got(raw_defaults)}",
            file=source, key="defaults",
        )
    defaults = _check_defaults(raw_defaults, source)
    raw_cases = doc.get("case", _MISSING)
    if raw_cases is _MISSING:
        raise CaseError(f"{source}: key 'case': expected one or more [[case]] tables, got "
                        "none", file=source, key="case")
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        raise CaseError(
            f"{source}: key 'case': expected an array of tables ([[case]], double brackets), "
            f"got {_got(raw_cases)}", file=source, key="case",
        )
    cases = [_build_case(raw, defaults, source, index) for index, raw in enumerate(raw_cases)]
    names: dict[str, int] = {}
    for i, c in enumerate(cases):
        if c.name in names:
            raise CaseError(
                f"{source}: case {c.name!r}: key 'name': expected a unique name, got "
                f"{c.name!r} (also case #{names[c.name] + 1} of this file)",
                file=source, case=c.name, key="name",
            )
        names[c.name] = i
    return cases


def _check_defaults(raw: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            if key == "name":
                raise _Bad("name", "expected no 'name' in [defaults] (every case needs its own "
                           f"unique name), got {_got(value)}")
            if key not in _KEYS:
                raise _Bad(key, "unknown key" + _did_you_mean(key, _KEYS))
            out[key] = _KEYS[key].check(key, value)
        except _Bad as bad:
            raise CaseError(f"{source}: [defaults]: key {bad.key!r}: {bad.problem}",
                            file=source, case="[defaults]", key=bad.key) from None
    return out


def _build_case(raw: dict[str, Any], defaults: dict[str, Any], source: str, index: int) -> Case:
    name = raw.get("name", _MISSING)
    case = name if isinstance(name, str) and _NAME_RE.match(name) else f"#{index + 1}"
    label = f"case {case!r}" if case == name else f"case {case}"
    try:
        return _build(raw, defaults, source)
    except _Bad as bad:
        raise CaseError(f"{source}: {label}: key {bad.key!r}: {bad.problem}",
                        file=source, case=case, key=bad.key) from None


def _build(raw: dict[str, Any], defaults: dict[str, Any], source: str) -> Case:
    # 1. name and kind first: every later message names the case, and applicability needs the kind.
    name = _v_name("name", raw.get("name", _MISSING))
    for key in raw:
        if key not in _KEYS:
            raise _Bad(key, "unknown key" + _did_you_mean(key, _KEYS))
    kind_value = raw.get("kind", defaults.get("kind", _MISSING))
    kind = _v_enum(KINDS)("kind", kind_value)

    # 2. every explicit key: applies to this kind, and a valid value.
    explicit: dict[str, Any] = {}
    for key, value in raw.items():
        spec = _KEYS[key]
        if kind not in spec.kinds:
            raise _Bad(key, f"expected no {key!r} in a {kind!r} case (it applies to "
                       f"{_kinds_text(spec.kinds)}), got {_got(value)}")
        explicit[key] = spec.check(key, value)

    # 3. merge: case > [defaults] (if it applies) > built-in default.
    values: dict[str, Any] = {}
    for key, spec in _KEYS.items():
        if key in ("name",):
            continue
        from_defaults = defaults.get(key, _MISSING) if kind in spec.kinds else _MISSING
        if key in _MERGED_TABLES:
            merged = dict(spec.default)
            if from_defaults is not _MISSING:
                merged.update(from_defaults)
            merged.update(explicit.get(key, {}))
            values[key] = merged
        elif key in explicit:
            values[key] = explicit[key]
        elif from_defaults is not _MISSING:
            values[key] = from_defaults
        else:
            values[key] = spec.default

    # 4. conditional applicability (explicit keys only; defaults are skipped silently).
    if values["teacher_2d"] and "views_teacher" in explicit:
        raise _Bad("views_teacher", "expected no 'views_teacher' with teacher_2d = true (the teacher "
                   f"is [N, K] rows; batch_per_rank counts rows), got {_got(raw['views_teacher'])}")
    if kind in ("cls", "ibot", "dinov2") and values["teacher_norm"] == "softmax":
        for key in ("n_iterations", "num_samples"):
            if key in explicit:
                raise _Bad(key, f"expected no {key!r} with teacher_norm = 'softmax' (no Sinkhorn "
                           f"runs), got {_got(raw[key])}")
            values[key] = _KEYS[key].default  # a [defaults] value does not apply either
    logits_raw = values["logits"]
    if "outlier_index" in logits_raw and "outlier_offset" not in logits_raw:
        raise _Bad("logits.outlier_index", "expected logits.outlier_offset alongside it (the index "
                   f"says which sample gets the offset), got {_got(logits_raw['outlier_index'])}"
                   " without it")
    if kind == "comms" and not values["comms"]:
        raise _Bad("comms", "expected a non-empty table of API call = max collectives "
                   f"(calls: {', '.join(COMMS_CALLS)}), got {_got(values['comms'])}")
    logits = LogitsSpec(**logits_raw)

    seed = values["seed"] if values["seed"] is not None else default_seed(name)
    case = Case(
        name=name,
        kind=kind,
        source=source,
        description=values["description"],
        K=values["K"],
        views_student=values["views_student"],
        views_teacher=1 if values["teacher_2d"] else values["views_teacher"],
        batch_per_rank=tuple(values["batch_per_rank"]),
        masked_per_rank=tuple(values["masked_per_rank"]),
        teacher_dtype=values["teacher_dtype"],
        student_dtype=values["student_dtype"],
        student_temp=values["student_temp"],
        teacher_temp=values["teacher_temp"],
        momentum=values["momentum"],
        steps=values["steps"],
        updates_per_apply=values["updates_per_apply"],
        teacher_2d=values["teacher_2d"],
        n_iterations=values["n_iterations"],
        num_samples=values["num_samples"],
        teacher_norm=values["teacher_norm"],
        logits=logits,
        dino_weight=values["dino_weight"],
        ibot_weight=values["ibot_weight"],
        world_sizes=tuple(values["world_sizes"]),
        backends=tuple(values["backends"]),
        tolerances=dict(values["tolerances"]),
        comms=dict(values["comms"]),
        expect_error=values["expect_error"],
        seed=seed,
        deadline_s=values["deadline_s"],
    )
    _check_counts(case, explicit)
    return case


def _check_counts(case: Case, explicit: dict[str, Any]) -> None:
    """Every world size must give a usable global batch (unless an error is expected),
    and the outlier index must exist at every world size."""
    for tensor in case.tensor_names():
        counts = _TENSORS[tensor][0]
        key = "batch_per_rank" if counts == "batch" else "masked_per_rank"
        for w in case.world_sizes:
            n = case.global_count(tensor, w)
            if n == 0 and case.expect_error is None:
                raise _Bad(key, f"expected a non-empty global batch at every world size, got "
                           f"{case.shard_sizes(tensor, w)} at world size {w} (0 in total; "
                           "reorder the list or narrow world_sizes)")
            if case.logits.outlier_offset is not None and n and not -n <= case.logits.outlier_index < n:
                raise _Bad("logits.outlier_index", f"expected an index into the global batch at every "
                           f"world size ({n} samples of {tensor!r} at world size {w}), got "
                           f"{case.logits.outlier_index}")


# --------------------------------------------------------------------------------------
# expansion
# --------------------------------------------------------------------------------------
def expand(
    cases: Iterable[Case],
    backends: Sequence[str] | None = None,
    world_sizes: Sequence[int] | None = None,
) -> list[tuple[Case, str, int]]:
    """Every (case, backend, world size) to run: the requested ones (None: each case's
    own lists) that the case itself allows, in case, then backend, then world-size order."""
    out: list[tuple[Case, str, int]] = []
    for case in cases:
        for backend in backends if backends is not None else case.backends:
            for w in world_sizes if world_sizes is not None else case.world_sizes:
                if case.applies_to(backend, w):
                    out.append((case, backend, w))
    return out
