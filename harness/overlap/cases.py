"""Overlap cases: ``cases/overlap/*.toml``, read as data and validated before anything runs.

A file holds an optional ``[defaults]`` table, merged into every ``[[case]]`` table::

    [defaults]
    iterations = 20

    [[case]]
    name = "overlap-k65536"
    K = 65536

Every problem is a :class:`harness.errors.CaseError` (exit code 2) naming the file, the case
(its name, or ``case #N``, 1-based), the key, what was expected and what was found::

    cases/overlap/x.toml: case 'overlap-k65536': key 'K': expected an int >= 1, got 0

Validation uses the correctness catalogue's kit (``harness.cases.validate``) and reader.

Keys (default in brackets):

==================  ==================================================================
name                required, unique across the loaded files; letters, digits ``-_.``
kind                optional; must be "overlap" ["overlap"]
description         one line [""]
K                   prototypes = center size, int >= 1 [65536]
in_dim              head input features, int >= 1 [384]
hidden_dim          head MLP hidden width, int >= 1 [2048]
bottleneck_dim      head bottleneck (L2-normalised), int >= 1 [256]
views_student       S, int >= 1 [4]
views_teacher       T, int >= 1 [2]
batch_per_rank      B, samples per rank, int >= 1 [4]
dtype               head / student dtype: float32 | bfloat16 | float16 ["float32"]
teacher_dtype       teacher logits dtype, same choices [= dtype]
teacher_temp        > 0 [0.04]
student_temp        > 0 [0.1]
momentum            center EMA momentum, 0 <= m < 1 [0.9]
iterations          measured iterations, int >= 20 [20]
warmup              unmeasured iterations first, int >= 1 [3]
world_sizes         non-empty list of ints >= 1 [[1, 2, 3, 4]]
backends            non-empty list of gloo | nccl [["gloo", "nccl"]]
quick               part of ``bench overlap --quick`` [false]
seed                int >= 0 [0]
deadline_s          seconds one run (all ranks) may take, > 0 [300]
==================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..cases import validate as v
from ..cases.choices import BACKENDS, DTYPES
from ..cases.load import case_label, case_tables, load_unique, read_toml
from ..errors import CaseError
from ..paths import catalogue_dir

MIN_ITERATIONS = 20


@dataclass(frozen=True)
class OverlapCase:
    """One overlap workload. Built from TOML by :func:`load_overlap_cases`, or directly
    (tests, controls); a directly built case is not held to ``MIN_ITERATIONS``."""

    name: str
    description: str = ""
    K: int = 65536  # noqa: N815 - the paper's name
    in_dim: int = 384
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    views_student: int = 4
    views_teacher: int = 2
    batch_per_rank: int = 4
    dtype: str = "float32"
    teacher_dtype: str | None = None
    teacher_temp: float = 0.04
    student_temp: float = 0.1
    momentum: float = 0.9
    iterations: int = 20
    warmup: int = 3
    world_sizes: tuple[int, ...] = (1, 2, 3, 4)
    backends: tuple[str, ...] = BACKENDS
    quick: bool = False
    seed: int = 0
    deadline_s: float = 300.0
    file: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        return "overlap"

    @property
    def teacher_dtype_name(self) -> str:
        return self.teacher_dtype or self.dtype

    def test_id(self, backend: str, world_size: int) -> str:
        return f"{self.name}[{backend}-ws{world_size}]"

    def to_payload(self) -> dict[str, Any]:
        """A plain dict (what travels to the ranks)."""
        d = asdict(self)
        d["world_sizes"] = list(self.world_sizes)
        d["backends"] = list(self.backends)
        return d

    @classmethod
    def from_payload(cls, d: Mapping[str, Any]) -> OverlapCase:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["world_sizes"] = tuple(kw.get("world_sizes", (1, 2, 3, 4)))
        kw["backends"] = tuple(kw.get("backends", BACKENDS))
        return cls(**kw)

    def head_shape(self) -> str:
        return f"{self.in_dim}→{self.hidden_dim}→{self.bottleneck_dim}→{self.K}"


# ----------------------------------------------------------------------------- validation
@v.expecting("a number with 0 <= m < 1")
def _momentum(key: str, value: Any) -> float:
    if not v.is_num(value) or not 0 <= value < 1:
        raise v.bad(key, "a number with 0 <= m < 1", value)
    return float(value)


@v.expecting("a non-empty list of ints >= 1")
def _sizes(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(v.is_int(n) and n >= 1 for n in value):
        raise v.bad(key, "a non-empty list of ints >= 1", value)
    return tuple(dict.fromkeys(int(n) for n in value))


@v.expecting("a non-empty list of 'gloo' | 'nccl'")
def _backends(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(b not in BACKENDS for b in value):
        raise v.bad(key, "a non-empty list of 'gloo' | 'nccl'", value)
    return tuple(dict.fromkeys(value))


@v.expecting("'overlap' (correctness kinds belong in cases/correctness/)")
def _kind(key: str, value: Any) -> str:
    if value != "overlap":
        raise v.bad(key, "'overlap' (correctness kinds belong in cases/correctness/)", value)
    return value


_DIM = v.v_int(1)
_POSITIVE = v.v_num(0.0, lo_open=True)
_VALIDATORS: dict[str, v.Validator] = {
    "kind": _kind,
    "description": v.v_str,
    "K": _DIM,
    "in_dim": _DIM,
    "hidden_dim": _DIM,
    "bottleneck_dim": _DIM,
    "views_student": _DIM,
    "views_teacher": _DIM,
    "batch_per_rank": _DIM,
    "dtype": v.v_enum(DTYPES),
    "teacher_dtype": v.v_enum(DTYPES),
    "teacher_temp": _POSITIVE,
    "student_temp": _POSITIVE,
    "momentum": _momentum,
    "iterations": v.v_int(MIN_ITERATIONS),
    "warmup": _DIM,
    "world_sizes": _sizes,
    "backends": _backends,
    "quick": v.v_bool,
    "seed": v.v_int(0),
    "deadline_s": _POSITIVE,
}
KEYS = ("name", *_VALIDATORS)


def _where(source: str, label: str | None) -> str:
    return f"{source}: {label}: " if label else f"{source}: "


def _validate_table(table: Mapping[str, Any], source: str, label: str | None,
                    case_name: str | None, *, allow_name: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        try:
            if key == "name":
                if not allow_name:
                    raise v.Bad(key, "expected no 'name' in [defaults] (every case needs its "
                                f"own), got {v.got(value)}")
                continue
            if key not in _VALIDATORS:
                raise v.unknown(key, KEYS)
            out[key] = _VALIDATORS[key](key, value)
        except v.Bad as bad:
            raise CaseError(f"{_where(source, label)}key {bad.key!r}: {bad.problem}",
                            file=source, case=case_name, key=bad.key) from None
    return out


def _load_file(path: Path) -> list[OverlapCase]:
    source = str(path)
    raw_defaults, raw_cases = case_tables(read_toml(path), source)
    defaults = _validate_table(raw_defaults, source, "[defaults]", None, allow_name=False)
    cases = []
    for index, raw in enumerate(raw_cases):
        case, label = case_label(raw, index)
        name = raw.get("name", v.MISSING)
        if not isinstance(name, str) or not v.NAME_RE.match(name):
            raise CaseError(f"{source}: {label}: key 'name': expected a name of letters, digits "
                            f"and -_. (starting with a letter or digit), got {v.got(name)}",
                            file=source, case=name if isinstance(name, str) else None, key="name")
        values = dict(defaults)
        values.update(_validate_table(raw, source, label, name, allow_name=True))
        values.pop("kind", None)
        cases.append(OverlapCase(name=name, file=source, **values))
    return cases


def load_overlap_cases(paths: Sequence[str | Path] | str | Path) -> list[OverlapCase]:
    """Load and validate overlap case files (files, or directories: recursive ``*.toml``,
    sorted). Raises CaseError on the first problem; names must be unique."""
    return load_unique(paths, _load_file)


def default_overlap_dir() -> Path:
    """The overlap catalogue (``cases/overlap``, or the installed package's copy)."""
    return catalogue_dir("overlap")


def plan(cases: Sequence[OverlapCase], backend: str, world_sizes: Sequence[int],
         *, quick: bool = False) -> list[tuple[OverlapCase, int]]:
    """(case, world size) pairs: the case's world sizes that were asked for, on the
    backend (cases that do not list it are left out); with ``quick`` only quick cases."""
    out = []
    for case in cases:
        if quick and not case.quick:
            continue
        if backend not in case.backends:
            continue
        for ws in world_sizes:
            if ws in case.world_sizes:
                out.append((case, int(ws)))
    return out
