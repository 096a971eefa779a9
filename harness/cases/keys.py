"""How a case-file key is declared: one dataclass field, made by :func:`key` or :func:`table`.

The field's name is the key, its annotation the normalised type, and its metadata a
:class:`Key`: validator, doc, default, whether every kind has it. ``schema.KEYS`` reads
them back from the fields (:func:`keys_of`), so the loader, ``Case`` and the key table of
``cases/README.md`` cannot disagree. Here too: the validators of particular keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import validate as v
from .choices import BACKENDS, COMMS_CALLS
from .validate import MISSING, Validator

_META = "harness.key"


@dataclass(frozen=True)
class Key:
    """A key beside its name and type (the field has those)."""

    check: Validator
    doc: str
    default: Any  # what a case that omits the key gets (MISSING: required; {} for a table)
    common: bool  # every kind has it (otherwise the kinds that list it in harness.kinds)
    default_doc: str  # README text of a default that is not a plain literal
    merged: bool  # a sub-table: merges key by key with [defaults]


def key(default: Any, check: Validator, doc: str, *, common: bool = False,
        default_doc: str = "") -> Any:
    """A key field; ``default`` MISSING makes it required (the field gets no default)."""
    spec = Key(check, doc, default, common, default_doc, merged=False)
    if default is MISSING:
        return dataclasses.field(metadata={_META: spec})
    return dataclasses.field(default=default, metadata={_META: spec})


def table(factory: Callable[[], Any], check: Validator, doc: str, *, default_doc: str,
          common: bool = False) -> Any:
    """A sub-table key: the field defaults to ``factory()``; the file's table merges key by
    key with ``[defaults]`` and starts empty (what the loader builds the field from)."""
    spec = Key(check, doc, {}, common, default_doc, merged=True)
    return dataclasses.field(default_factory=factory, hash=False if factory is dict else None,
                             metadata={_META: spec})


def keys_of(cls: type) -> dict[str, Key]:
    """The keys of a dataclass, in field order (fields made otherwise are not keys)."""
    return {f.name: f.metadata[_META] for f in dataclasses.fields(cls) if _META in f.metadata}


# ---------------------------------------------------------------- validators of particular keys
POSITIVE = v.v_num(0.0, lo_open=True)


@v.expecting("an int >= 0 or a non-empty array of ints >= 0")
def sizes(key: str, value: Any) -> tuple[int, ...]:
    desc = "an int >= 0 or a non-empty array of ints >= 0"
    if v.is_int(value):
        if value < 0:
            raise v.bad(key, desc, value)
        return (int(value),)
    if isinstance(value, list) and value and all(v.is_int(x) and x >= 0 for x in value):
        return tuple(int(x) for x in value)
    raise v.bad(key, desc, value)


_MICRO_DESC = ("an int >= 1, an array of ints >= 0 (every rank's micro-batch sizes), or an "
               "array of such arrays, all of one length (rank r's: list[r % len])")


@v.expecting(_MICRO_DESC)
def micro_batches(key: str, value: Any) -> int | tuple[tuple[int, ...], ...]:
    """An int M, or explicit sizes as a tuple of per-rank tuples (one for every rank)."""
    if v.is_int(value):
        if value < 1:
            raise v.bad(key, _MICRO_DESC, value)
        return int(value)

    def sizes(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(v.is_int(n) and n >= 0 for n in x)

    if sizes(value):
        return (tuple(int(n) for n in value),)
    if isinstance(value, list) and value and all(sizes(x) for x in value):
        if len({len(x) for x in value}) != 1:
            raise v.bad(key, "arrays of one length (every rank makes the same number of "
                        "micro-batch calls)", value)
        return tuple(tuple(int(n) for n in x) for x in value)
    raise v.bad(key, _MICRO_DESC, value)


_RATIO_DESC = "[lo, hi] with 0 <= lo <= hi <= 1, or a non-empty array of such pairs"


def _ratio_pair(value: Any) -> tuple[float, float] | None:
    if (isinstance(value, list) and len(value) == 2 and all(v.is_num(x) for x in value)
            and 0.0 <= value[0] <= value[1] <= 1.0):
        return float(value[0]), float(value[1])
    return None


@v.expecting(_RATIO_DESC)
def mask_ratio(key: str, value: Any) -> tuple[tuple[float, float], ...]:
    """One range for every rank, or one per rank (rank r gets ``list[r % len]``)."""
    if (pair := _ratio_pair(value)) is not None:
        return (pair,)
    if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
        pairs = [_ratio_pair(x) for x in value]
        if all(p is not None for p in pairs):
            return tuple(p for p in pairs if p is not None)
    raise v.bad(key, _RATIO_DESC, value)


@v.expecting("a non-empty array of ints >= 1")
def world_sizes(key: str, value: Any) -> tuple[int, ...]:
    if not (isinstance(value, list) and value and all(v.is_int(x) and x >= 1 for x in value)):
        raise v.bad(key, "a non-empty array of ints >= 1", value)
    if len(set(value)) != len(value):
        raise v.bad(key, "an array without repeated world sizes", value)
    return tuple(int(x) for x in value)


_BACKENDS_DESC = "a non-empty array of " + " and ".join(repr(b) for b in BACKENDS)


@v.expecting(_BACKENDS_DESC)
def backends(key: str, value: Any) -> tuple[str, ...]:
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
def index(key: str, value: Any) -> int:
    if not v.is_int(value):
        raise v.bad(key, "an int (Python indexing: -1 is the last sample)", value)
    return int(value)


_COMMS_DESC = "an int >= 0 or a table {base = int >= 0, per_iteration = int >= 0}"
_PARTS = ("base", "per_iteration")


@v.expecting("a table {API call = " + _COMMS_DESC + "}")
def comms(key: str, value: Any) -> dict[str, tuple[int, int]]:
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
