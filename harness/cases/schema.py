"""The key table, read from the fields of ``Case`` (each key is declared there, once).

Validation (``load.py``), the kinds and the key table of ``cases/README.md``
(:func:`markdown_table`, kept equal by a unit test) all read :data:`KEYS`.
"""

from __future__ import annotations

from typing import Any

from . import validate as v
from .keys import Key, keys_of
from .kind import registry
from .model import Case
from .validate import MISSING

#: Every case-file key, in the order of the fields of ``Case``.
KEYS: dict[str, Key] = keys_of(Case)


def applies(key: str, kind: str) -> bool:
    return KEYS[key].common or key in registry()[kind].keys


def kinds_of(key: str) -> list[str]:
    """The kinds ``key`` applies to, in listing order."""
    return [name for name in registry() if applies(key, name)]


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
    for name, key in KEYS.items():
        if key.default is MISSING:
            dflt = "required"
        else:
            dflt = key.default_doc or f"`{_literal(key.default)}`"
        kinds = "all" if key.common else " ".join(kinds_of(name))
        value = v.expected_of(key.check).replace("|", "\\|")
        rows.append(f"| `{name}` | {key.doc} | {value} | {dflt} | {kinds} |")
    return "\n".join(rows) + "\n"
