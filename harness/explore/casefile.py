"""A finding's shrunk case as a TOML case file that ``dino-harness run --cases FILE`` runs.

The file holds one ``[[case]]``: the drawn table under the finding's name, keys in the
key table's order, every key left at its default left out (so the file shows what the
failure needs), the data seed and the world size always written, one line per key as the
catalogue writes them (arrays and the ``logits`` table inline). Each value is formatted by
``tomli-w`` (string escapes, float and integer forms done right: a diagnosis may hold
quotes, backslashes and ``×``); it is read back with the catalogue's own loader and
compared with the case that was judged, so a file that would not load as the same case
is never handed out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tomli_w

from ..cases import Case, case_from_table, load_cases
from ..cases.schema import KEYS
from .findings import Signature

#: Keys every file writes even at their default: which case, its data, its world size.
ALWAYS = ("name", "kind", "seed", "world_sizes")


def case_name(kind: str, signature: Signature) -> str:
    """``<kind>-explore-<signature>``: it starts with the kind, as catalogue names do."""
    return f"{kind}-explore-{signature.slug}"


def file_table(table: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    """The table as the file holds it: renamed, described, defaults left out."""
    named = {**table, "name": name, "description": description}
    out: dict[str, Any] = {}
    for key, spec in KEYS.items():
        if key not in named or key == "backends":  # the file runs on every backend, as the
            continue  # catalogue's cases do; the rerun line names the one it failed on
        value = named[key]
        if key not in ALWAYS and _is_default(key, value, spec.default):
            continue
        out[key] = value
    return out


def _is_default(key: str, value: Any, default: Any) -> bool:
    if isinstance(value, dict):
        return not value
    return KEYS[key].check(key, value) == default


def literal(value: Any) -> str:
    """``value`` as a TOML literal on one line: arrays and tables inline (case keys and
    ``logits`` sub-keys are bare keys), every scalar as tomli-w writes it."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {literal(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def write(path: Path, table: dict[str, Any], comments: list[str]) -> Case:
    """Write ``table`` (a file table) to ``path`` with ``comments`` on top, and return the
    case the file loads as, after checking it is the case ``table`` validates as."""
    lines = [f"# {line}" for line in comments] + ["", "[[case]]"]
    lines += [f"{key} = {literal(value)}" for key, value in table.items()]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    loaded = load_cases(path)
    expected = case_from_table(table, source=str(path))
    if len(loaded) != 1 or loaded[0] != expected:
        raise RuntimeError(f"{path} does not load as the case it was written from: "
                           f"{dataclasses.asdict(loaded[0]) if loaded else 'no case'} "
                           f"!= {dataclasses.asdict(expected)}")
    return loaded[0]
