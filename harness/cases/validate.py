"""The validator kit shared by the correctness and the overlap catalogues.

A validator takes ``(key, value)`` and returns the normalised value or raises :class:`Bad`;
the loader adds the file and the case. Every message reads ``expected X, got Y`` (plus a
did-you-mean hint), and a validator built here carries its ``expected`` text so the key
table of ``cases/README.md`` says exactly what the errors say.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Validator = Callable[[str, Any], Any]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_EXC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class Bad(Exception):
    """Raised by the validators; turned into a CaseError with the file/case context."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = problem


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<missing>"


MISSING: Any = _Missing()


# ---------------------------------------------------------------- describing values
def got(value: Any) -> str:
    """How a message shows what the file holds (TOML words: array, table, boolean)."""
    if value is MISSING:
        return "nothing (the key is missing)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, (int, float, str)):
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


def bad(key: str, expected: str, value: Any, hint: str = "") -> Bad:
    return Bad(key, f"expected {expected}, got {got(value)}{hint}")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(key: str, known: Iterable[str], what: str = "unknown key", *, listed: bool = False,
            word: str | None = None) -> Bad:
    """``unknown key[ (known: ...)][; did you mean ...?]``; ``word`` is what was typed
    (the last part of a dotted ``key``)."""
    known = list(known)
    listing = " (known: " + ", ".join(known) + ")" if listed else ""
    return Bad(key, what + listing + did_you_mean(key if word is None else word, known))


def expecting(expected: str) -> Callable[[Validator], Validator]:
    """Attach the ``expected`` text a validator's messages use (for the key table)."""
    def mark(check: Validator) -> Validator:
        check.expected = expected  # type: ignore[attr-defined]
        return check

    return mark


def expected_of(check: Validator) -> str:
    describe = getattr(check, "describe", None)
    return describe() if describe else getattr(check, "expected", "")


# ---------------------------------------------------------------- validators
def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def v_int(minimum: int, expected: str | None = None) -> Validator:
    desc = expected or f"an int >= {minimum}"

    @expecting(desc)
    def check(key: str, v: Any) -> int:
        if not is_int(v) or v < minimum:
            raise bad(key, desc, v)
        return int(v)

    return check


def v_num(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
          hi_open: bool = False, expected: str | None = None) -> Validator:
    if expected:
        desc = expected
    elif lo is not None and hi is not None:
        desc = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        desc = f"a number {'>' if lo_open else '>='} {lo:g}"
    else:
        desc = "a number"

    @expecting(desc)
    def check(key: str, v: Any) -> float:
        ok = is_num(v) and math.isfinite(float(v))
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
        if not ok:
            raise bad(key, desc, v)
        return float(v)

    return check


def v_enum(choices: Sequence[str] | Callable[[], Sequence[str]]) -> Validator:
    """One of ``choices`` (a callable is asked at each check: the registered kinds)."""
    def listed() -> Sequence[str]:
        return choices() if callable(choices) else choices

    def describe() -> str:
        return "one of " + ", ".join(repr(c) for c in listed())

    def check(key: str, v: Any) -> str:
        options = listed()
        if not isinstance(v, str) or v not in options:
            hint = did_you_mean(v, options) if isinstance(v, str) else ""
            raise bad(key, describe(), v, hint)
        return v

    check.describe = describe  # type: ignore[attr-defined]
    return check


@expecting("true or false")
def v_bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise bad(key, "true or false", v)
    return v


@expecting("a string")
def v_str(key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise bad(key, "a string", v)
    return v


@expecting("a non-empty name of letters, digits, '-', '_' and '.'")
def v_name(key: str, v: Any) -> str:
    if not isinstance(v, str) or not NAME_RE.match(v):
        raise bad(key, "a non-empty name of letters, digits, '-', '_' and '.'", v)
    return v


@expecting("an exception class name such as 'ValueError'")
def v_exception(key: str, v: Any) -> str:
    if not isinstance(v, str) or not _EXC_RE.match(v):
        raise bad(key, "an exception class name such as 'ValueError'", v)
    return v


@expecting("a table")
def v_table(key: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise bad(key, "a table", v)
    return v


def v_sub_table(subkeys: dict[str, Validator], what: str = "unknown key") -> Validator:
    """A table whose keys are ``subkeys``; ``key.sub`` names a bad entry."""
    @expecting("a table")
    def check(key: str, v: Any) -> dict[str, Any]:
        out = {}
        for sub, value in v_table(key, v).items():
            if sub not in subkeys:
                raise unknown(f"{key}.{sub}", subkeys, what, listed=True, word=sub)
            out[sub] = subkeys[sub](f"{key}.{sub}", value)
        return out

    return check
