"""Every case-file key, declared once: name, validator, default, doc, and whether every
kind has it (otherwise the kinds that list it in ``harness.kinds`` have it).

Validation (``load.py``), the ``Case`` defaults (``model.py``) and the key table of
``cases/README.md`` (:func:`markdown_table`, kept equal by a unit test) all read this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import validate as v
from .choices import (
    BACKENDS,
    COMMS_CALLS,
    DISTRIBUTIONS,
    DTYPES,
    NUM_SAMPLES,
    QUANTITIES,
    TEACHER_NORMS,
)
from .kind import kind_names, registry
from .validate import MISSING, Validator

DEFAULT_WORLD_SIZES = (1, 2, 3, 4)


@dataclass(frozen=True)
class Key:
    name: str
    check: Validator
    default: Any
    doc: str
    common: bool = False  # every kind has it
    default_doc: str = ""  # README text of a default that is not a plain literal

    @property
    def merged(self) -> bool:
        """Sub-tables merge key by key with ``[defaults]``."""
        return isinstance(self.default, dict)


# ---------------------------------------------------------------- key-specific validators
@v.expecting("an int >= 0 or a non-empty array of ints >= 0")
def _sizes(key: str, value: Any) -> tuple[int, ...]:
    desc = "an int >= 0 or a non-empty array of ints >= 0"
    if v.is_int(value):
        if value < 0:
            raise v.bad(key, desc, value)
        return (int(value),)
    if isinstance(value, list) and value and all(v.is_int(x) and x >= 0 for x in value):
        return tuple(int(x) for x in value)
    raise v.bad(key, desc, value)


_RATIO_DESC = "[lo, hi] with 0 <= lo <= hi <= 1, or a non-empty array of such pairs"


def _ratio_pair(value: Any) -> tuple[float, float] | None:
    if (isinstance(value, list) and len(value) == 2 and all(v.is_num(x) for x in value)
            and 0.0 <= value[0] <= value[1] <= 1.0):
        return float(value[0]), float(value[1])
    return None


@v.expecting(_RATIO_DESC)
def _mask_ratio(key: str, value: Any) -> tuple[tuple[float, float], ...]:
    """One range for every rank, or one per rank (rank r gets ``list[r % len]``)."""
    if (pair := _ratio_pair(value)) is not None:
        return (pair,)
    if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
        pairs = [_ratio_pair(x) for x in value]
        if all(p is not None for p in pairs):
            return tuple(p for p in pairs if p is not None)
    raise v.bad(key, _RATIO_DESC, value)


@v.expecting("a non-empty array of ints >= 1")
def _world_sizes(key: str, value: Any) -> tuple[int, ...]:
    if not (isinstance(value, list) and value and all(v.is_int(x) and x >= 1 for x in value)):
        raise v.bad(key, "a non-empty array of ints >= 1", value)
    if len(set(value)) != len(value):
        raise v.bad(key, "an array without repeated world sizes", value)
    return tuple(int(x) for x in value)


_BACKENDS_DESC = "a non-empty array of " + " and ".join(repr(b) for b in BACKENDS)


@v.expecting(_BACKENDS_DESC)
def _backends(key: str, value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and value):
        raise v.bad(key, _BACKENDS_DESC, value)
    for x in value:
        if not isinstance(x, str) or x not in BACKENDS:
            hint = v.did_you_mean(x, BACKENDS) if isinstance(x, str) else ""
            raise v.bad(key, _BACKENDS_DESC, value, hint)
    if len(set(value)) != len(value):
        raise v.bad(key, "an array without repeated backends", value)
    return tuple(value)


@v.expecting("an int (Python indexing: -1 is the last sample)")
def _index(key: str, value: Any) -> int:
    if not v.is_int(value):
        raise v.bad(key, "an int (Python indexing: -1 is the last sample)", value)
    return int(value)


#: The ``logits`` sub-table (defaults: ``data.LogitsSpec``).
LOGITS_KEYS: dict[str, Validator] = {
    "scale": v.v_num(0.0, lo_open=True),
    "distribution": v.v_enum(DISTRIBUTIONS),
    "sample_offset": v.v_num(0.0),
    "prototype_offset": v.v_num(0.0),
    "outlier_offset": v.v_num(),
    "outlier_index": _index,
}
_logits = v.v_sub_table(LOGITS_KEYS)
_tolerances = v.v_sub_table({q: v.v_num(0.0, lo_open=True) for q in QUANTITIES}, "unknown quantity")

_COMMS_DESC = "an int >= 0 or a table {base = int >= 0, per_iteration = int >= 0}"
_PARTS = ("base", "per_iteration")


@v.expecting("a table {API call = " + _COMMS_DESC + "}")
def _comms(key: str, value: Any) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for call, limit in v.v_table(key, value).items():
        sub = f"{key}.{call}"
        if call not in COMMS_CALLS:
            raise v.unknown(sub, COMMS_CALLS, "unknown API call", listed=True, word=call)
        if v.is_int(limit) and limit >= 0:
            out[call] = (int(limit), 0)
        elif isinstance(limit, dict):
            for part in limit:
                if part not in _PARTS:
                    raise v.unknown(f"{sub}.{part}", _PARTS, listed=True, word=part)
            out[call] = (v.v_int(0)(f"{sub}.base", limit.get("base", 0)),
                         v.v_int(0)(f"{sub}.per_iteration", limit.get("per_iteration", 0)))
        else:
            raise v.bad(sub, _COMMS_DESC, limit)
    return out


# ---------------------------------------------------------------- the keys
_POSITIVE = v.v_num(0.0, lo_open=True)
KEYS: dict[str, Key] = {k.name: k for k in (
    Key("name", v.v_name, MISSING, "unique across all loaded files; start it with the kind so "
        "`-k sinkhorn` selects it; not allowed in `[defaults]`", common=True),
    Key("kind", v.v_enum(kind_names), MISSING, "what the case checks: a module of "
        "`harness/kinds/`", common=True),
    Key("description", v.v_str, "", "one line", common=True),
    Key("K", v.v_int(1), 128, "prototypes", common=True),
    Key("views_student", v.v_int(1), 4, "S, student views"),
    Key("views_teacher", v.v_int(1), 2, "T, teacher views"),
    Key("batch_per_rank", _sizes, (8,), "samples per rank: one int for every rank, or a list, "
        "rank r gets `list[r % len]`", default_doc="`8`"),
    Key("masked_per_rank", _sizes, (16,), "masked patches per rank, same rules", default_doc="`16`"),
    Key("images_per_rank", _sizes, (4,), "images per rank (the rows of the `[images, N]` patch "
        "mask a rank's loss gets), same rules", default_doc="`4`"),
    Key("patches_per_image", v.v_int(1), 16, "N, patches per image (the columns of the mask)"),
    Key("mask_ratio", _mask_ratio, ((0.1, 0.5),), "each image masks `floor(N * u)` of its N "
        "patches (at random places), u uniform in `[lo, hi]`, drawn from the seed and the "
        "image's global index (the same image gets the same mask at every world size); an array "
        "of pairs gives rank r's images `list[r % len]`", default_doc="`[0.1, 0.5]`"),
    Key("teacher_dtype", v.v_enum(DTYPES), "float32", "dtype of the teacher tensors", common=True),
    Key("student_dtype", v.v_enum(DTYPES), "float32", "dtype of the student tensors"),
    Key("student_temp", _POSITIVE, 0.1, "student temperature"),
    Key("teacher_temp", _POSITIVE, 0.04, "teacher temperature", common=True),
    Key("momentum", v.v_num(0.0, 1.0, hi_open=True), 0.9, "center EMA momentum"),
    Key("steps", v.v_int(1), 5, "training steps"),
    Key("updates_per_apply", v.v_int(1), 1, "`update_center` calls per `apply_center_update`"),
    Key("teacher_2d", v.v_bool, False, "teacher as `[N, K]` rows instead of `[T, B, K]`; then "
        "`views_teacher` does not apply and `batch_per_rank` counts rows"),
    Key("n_iterations", v.v_int(1), 3, "Sinkhorn iterations"),
    Key("num_samples", v.v_enum(NUM_SAMPLES), "global_int", "the sample count a check passes "
        "to the Sinkhorn call, see below"),
    Key("teacher_norm", v.v_enum(TEACHER_NORMS), "sinkhorn", "teacher probs of the loss cases: "
        "`sinkhorn` (the target's Sinkhorn over the global batch) or `softmax` (plain "
        "`softmax(logits / teacher_temp)`, no collective); with `softmax`, `n_iterations` / "
        "`num_samples` do not apply"),
    Key("logits", _logits, {}, "how logits are drawn, sub-table below", common=True,
        default_doc="see below"),
    Key("dino_weight", v.v_num(), 1.0, "weight of the DINO (CLS) loss"),
    Key("ibot_weight", v.v_num(), 1.0, "weight of the iBOT (patch) loss"),
    Key("world_sizes", _world_sizes, DEFAULT_WORLD_SIZES, "world sizes the case runs at",
        common=True),
    Key("backends", _backends, BACKENDS, "backends the case runs on", common=True),
    Key("tolerances", _tolerances, {}, "`{quantity = number > 0}` overriding the defaults; "
        "quantities " + " ".join(f"`{q}`" for q in QUANTITIES), common=True,
        default_doc="the defaults below"),
    Key("comms", _comms, {}, "`{API call = max collectives}`, below", default_doc="required"),
    Key("expect_error", v.v_exception, None, "exception class name: the case passes iff the "
        "target raises it", common=True, default_doc="none"),
    Key("seed", v.v_int(0), None, "seed of the case's data", common=True,
        default_doc="from SHA-256 of the name: the same in every process"),
    Key("deadline_s", _POSITIVE, 60.0, "seconds a run of the case may take", common=True),
)}


def applies(key: str, kind: str) -> bool:
    return KEYS[key].common or key in registry()[kind].keys


def kinds_of(key: str) -> list[str]:
    """The kinds ``key`` applies to, in listing order."""
    return [name for name in registry() if applies(key, name)]


def default(name: str) -> Any:
    return KEYS[name].default


# ---------------------------------------------------------------- the README table
def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(x) for x in value) + "]"
    return repr(value)


def markdown_table() -> str:
    """The key table of ``cases/README.md``."""
    rows = ["| key | meaning | value | default | kinds |", "|---|---|---|---|---|"]
    for key in KEYS.values():
        if key.default is MISSING:
            dflt = "required"
        else:
            dflt = key.default_doc or f"`{_literal(key.default)}`"
        kinds = "all" if key.common else " ".join(kinds_of(key.name))
        value = v.expected_of(key.check).replace("|", "\\|")
        rows.append(f"| `{key.name}` | {key.doc} | {value} | {dflt} | {kinds} |")
    return "\n".join(rows) + "\n"
