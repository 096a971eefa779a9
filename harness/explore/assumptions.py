"""What the user's training guarantees (``explore --assume``): the search stays inside it.

An assumption is a named promise about the inputs -- ``equal-batches``, ``no-empty-rank``,
``head-like-logits``, ``float32``, ``world-size=N`` -- or a case key pinned to one value,
``KEY=VALUE`` (the value in TOML syntax, a bare word read as a string, checked by the
key's own validator: the same message a case file would get). What the search reports
under assumptions is a bug under the user's own conditions; the report lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cases.schema import KEYS
from ..cases.validate import Bad, did_you_mean
from ..errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the API-identical backport
    import tomli as tomllib  # type: ignore[no-redef]

#: Each named assumption: the field of :class:`Assumptions` it sets, and what it promises.
NAMED: dict[str, tuple[str, str]] = {
    "equal-batches": ("equal_batches", "every rank holds the same number of samples, masked "
                      "patches and images, in every call (micro-batch) too"),
    "no-empty-rank": ("no_empty_rank", "every rank holds at least one sample, masked patch and "
                      "image, in every call (micro-batch) too"),
    "head-like-logits": ("head_like_logits", "logits are a DINO head's: cosines, uniform in "
                         "[-1, 1], no offsets or outliers"),
    "float32": ("float32", "teacher and student inputs are float32"),
}
WORLD_SIZE = "world-size"
#: Keys a pin may not set: the search names the case and sets world size and backend
#: itself (``world-size=N`` fixes the world size, ``--kinds`` the kinds).
UNPINNABLE = {"name": "every drawn case is named by its finding",
              "kind": "use --kinds", "world_sizes": f"use {WORLD_SIZE}=N",
              "backends": "use --backend", "expect_error": "the search looks for bugs, not "
              "for the error contract", "comms": "a collective budget is the user's to write",
              "tolerances": "the tolerances are the harness's"}


@dataclass(frozen=True)
class Assumptions:
    """The user's guarantees; the default promises nothing."""

    equal_batches: bool = False
    no_empty_rank: bool = False
    head_like_logits: bool = False
    float32: bool = False
    world_size: int | None = None
    #: Case keys pinned to one value each, validated (key -> value as ``Case`` holds it).
    pins: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: The ``--assume`` words, as given (normalised), for the report.
    words: tuple[str, ...] = ()

    def lines(self) -> list[tuple[str, str]]:
        """(the word, what it promises) for every assumption made, in the order given."""
        out = []
        for word in self.words:
            name, _, value = word.partition("=")
            if name in NAMED:
                out.append((word, NAMED[name][1]))
            elif name == WORLD_SIZE:
                out.append((word, f"training runs on {value} ranks"))
            else:
                out.append((word, f"case key {name!r} is always {value}"))
        return out

    def pinned(self, key: str) -> bool:
        return key in self.pins


def parse(items: Iterable[str] | None) -> Assumptions:
    """``--assume`` words (each may hold several, comma-separated) as :class:`Assumptions`;
    an unknown word or a bad value is a usage error (exit 2) that lists what is known."""
    flags: dict[str, Any] = {}
    pins: dict[str, Any] = {}
    words: list[str] = []
    for item in items or ():
        for word in (w.strip() for w in item.split(",")):
            if not word:
                continue
            name, eq, value = (part.strip() for part in word.partition("="))
            if name in NAMED and not eq:
                flags[NAMED[name][0]] = True
            elif name == WORLD_SIZE:
                flags["world_size"] = _world_size(value)
            elif eq and name in KEYS:
                pins[name] = _pin(name, value)
            else:
                raise UsageError(_unknown(word, name))
            words.append(f"{name}={value}" if eq else name)
    return Assumptions(**flags, pins=pins, words=tuple(dict.fromkeys(words)))


def _world_size(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"--assume {WORLD_SIZE}={value}: expected an int >= 1")
    return int(value)


def _pin(key: str, text: str) -> Any:
    if key in UNPINNABLE:
        raise UsageError(f"--assume {key}=...: not a key the search draws ({UNPINNABLE[key]})")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: teacher_norm=softmax
    try:
        return KEYS[key].check(key, value)
    except Bad as bad:
        raise UsageError(f"--assume {key}={text}: key {bad.key!r}: {bad.problem}") from None


def _unknown(word: str, name: str) -> str:
    known = [*NAMED, f"{WORLD_SIZE}=N", "KEY=VALUE (a case key)"]
    hint = did_you_mean(name, [*NAMED, WORLD_SIZE, *KEYS])
    return f"--assume {word!r}: unknown assumption{hint} (known: {', '.join(known)})"
