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

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.cases import CaseError, load_unique, read_toml

DTYPES = ("float32", "bfloat16", "float16")
BACKENDS = ("gloo", "nccl")
MIN_ITERATIONS = 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


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

class _Bad(Exception):
    def __init__(self, key: str, expected: str, got: Any) -> None:
        super().__init__(expected)
        self.key = key
        self.expected = expected
        self.got = got


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return f"a list {value!r}" if len(repr(value)) < 60 else "a list"
    return repr(value)


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _Bad(key, f"an int >= {minimum}", value)
    return int(value)


def _positive(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _Bad(key, "a number > 0", value)
    return float(value)


def _choice(key: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _Bad(key, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def _validators() -> dict[str, Any]:
    def momentum(key: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise _Bad(key, "a number with 0 <= m < 1", v)
        return float(v)

    def text(key: str, v: Any) -> str:
        if not isinstance(v, str):
            raise _Bad(key, "a string", v)
        return v

    def sizes(key: str, v: Any) -> tuple[int, ...]:
        if (not isinstance(v, list) or not v
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in v)):
            raise _Bad(key, "a non-empty list of ints >= 1", v)
        return tuple(dict.fromkeys(int(n) for n in v))

    def backends(key: str, v: Any) -> tuple[str, ...]:
        if not isinstance(v, list) or not v or any(b not in BACKENDS for b in v):
            raise _Bad(key, "a non-empty list of 'gloo' | 'nccl'", v)
        return tuple(dict.fromkeys(v))

    def boolean(key: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise _Bad(key, "true or false", v)
        return v

    def kind(key: str, v: Any) -> str:
        if v != "overlap":
            raise _Bad(key, "'overlap' (correctness kinds belong in cases/correctness/)", v)
        return v

    return {
        "kind": kind,
        "description": text,
        "K": lambda k, v: _int(k, v, 1),
        "in_dim": lambda k, v: _int(k, v, 1),
        "hidden_dim": lambda k, v: _int(k, v, 1),
        "bottleneck_dim": lambda k, v: _int(k, v, 1),
        "views_student": lambda k, v: _int(k, v, 1),
        "views_teacher": lambda k, v: _int(k, v, 1),
        "batch_per_rank": lambda k, v: _int(k, v, 1),
        "dtype": lambda k, v: _choice(k, v, DTYPES),
        "teacher_dtype": lambda k, v: _choice(k, v, DTYPES),
        "teacher_temp": _positive,
        "student_temp": _positive,
        "momentum": momentum,
        "iterations": lambda k, v: _int(k, v, MIN_ITERATIONS),
        "warmup": lambda k, v: _int(k, v, 1),
        "world_sizes": sizes,
        "backends": backends,
        "quick": boolean,
        "seed": lambda k, v: _int(k, v, 0),
        "deadline_s": _positive,
    }


_VALIDATORS = _validators()
KEYS = ("name", *_VALIDATORS)


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _where(source: str, label: str | None) -> str:
    return f"{source}: {label}: " if label else f"{source}: "


def _validate_table(table: Mapping[str, Any], source: str, label: str | None,
                    case_name: str | None, *, allow_name: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "name":
            if not allow_name:
                raise CaseError(f"{_where(source, label)}key 'name': expected no 'name' in "
                                "[defaults] (every case needs its own), got "
                                f"{_got(value)}", file=source, case=case_name, key=key)
            continue
        if key not in _VALIDATORS:
            raise CaseError(f"{_where(source, label)}key {key!r}: unknown key"
                            f"{_did_you_mean(key, KEYS)}", file=source, case=case_name, key=key)
        try:
            out[key] = _VALIDATORS[key](key, value)
        except _Bad as bad:
            raise CaseError(f"{_where(source, label)}key {bad.key!r}: expected {bad.expected}, "
                            f"got {_got(bad.got)}", file=source, case=case_name,
                            key=bad.key) from None
    return out


def _load_file(path: Path) -> list[OverlapCase]:
    source = str(path)
    doc = read_toml(path)
    for key in doc:
        if key not in ("defaults", "case"):
            raise CaseError(f"{source}: key {key!r}: unknown top-level key, expected only a "
                            f"[defaults] table and [[case]] tables"
                            f"{_did_you_mean(key, ('defaults', 'case'))}", file=source, key=key)
    raw_defaults = doc.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise CaseError(f"{source}: key 'defaults': expected a table [defaults], got "
                        f"{_got(raw_defaults)}", file=source, key="defaults")
    defaults = _validate_table(raw_defaults, source, "[defaults]", None, allow_name=False)
    raw_cases = doc.get("case")
    if raw_cases is None:
        raise CaseError(f"{source}: key 'case': expected one or more [[case]] tables, got none",
                        file=source, key="case")
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        raise CaseError(f"{source}: key 'case': expected [[case]] tables, got "
                        f"{_got(raw_cases)}", file=source, key="case")
    cases = []
    for i, raw in enumerate(raw_cases, start=1):
        name = raw.get("name")
        label = f"case {name!r}" if isinstance(name, str) and name else f"case #{i}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise CaseError(f"{source}: {label}: key 'name': expected a name of letters, digits "
                            f"and -_. (starting with a letter or digit), got "
                            f"{_got(name) if name is not None else 'nothing'}",
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
    """``<repo>/cases/overlap``."""
    return Path(__file__).resolve().parent.parent.parent / "cases" / "overlap"


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
