"""harness.cases.schema and harness.kinds: one declaration per key, kinds as plug-ins."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
import textwrap
import typing
from dataclasses import fields
from pathlib import Path

import pytest

import harness.kinds
from harness.cases import Case, CaseError, LogitsSpec, case_from_table
from harness.cases.keys import Key, keys_of
from harness.cases.kind import Tensor, registry
from harness.cases.schema import KEYS, kinds_of, markdown_table
from harness.cases.validate import MISSING, Bad, expected_of

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- keys:begin", "<!-- keys:end -->"


def test_readme_key_table_is_the_schema() -> None:
    text = (REPO / "cases" / "README.md").read_text(encoding="utf-8")
    start = text.index("\n", text.index(BEGIN)) + 1
    table = text[start:text.index(END)]
    assert table == markdown_table(), (
        "cases/README.md's key table differs from the fields of Case (harness/cases/model.py); "
        "paste the output of "
        "`python -c 'import harness.kinds; from harness.cases.schema import markdown_table; "
        "print(markdown_table(), end=\"\")'`"
    )


@pytest.mark.parametrize("cls", [Case, LogitsSpec])
def test_every_field_is_a_key_declared_with_its_validator_doc_and_default(cls: type) -> None:
    """A field made without ``key()`` / ``table()`` would be a key the loader, the README and
    the kinds never see: declared a second way, by hand."""
    declared = keys_of(cls)
    assert [f.name for f in fields(cls) if f.name != "source"] == list(declared)
    for f in fields(cls):
        if f.name == "source":
            continue
        spec = declared[f.name]
        assert callable(spec.check) and spec.doc and expected_of(spec.check), f.name
        if spec.merged:  # a table: the file's sub-table starts empty, the field from a factory
            assert spec.default == {} and f.default_factory is not dataclasses.MISSING, f.name
        elif spec.default is MISSING:
            assert f.default is dataclasses.MISSING, f.name
        else:
            assert f.default == spec.default, f.name
    if cls is Case:
        assert list(KEYS) == list(declared)


def _literal_of(hint: object) -> tuple[tuple[str, ...], str] | None:
    """The values of a closed set a field holds, and how a file holds one (``one``, an
    ``array`` of them, a ``table`` keyed by them); None for a field of no closed set."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint), "one"
    args = typing.get_args(hint)
    if args and typing.get_origin(args[0]) is typing.Literal:
        return typing.get_args(args[0]), "table" if typing.get_origin(hint) is dict else "array"
    return None


def _closed_keys() -> list[tuple[str, Key, tuple[str, ...], str]]:
    out = []
    for cls in (Case, LogitsSpec):
        hints = typing.get_type_hints(cls)
        for name, spec in keys_of(cls).items():
            if (found := _literal_of(hints[name])) is not None:
                out.append((f"{cls.__name__}.{name}", spec, *found))
    return out


def test_closed_sets_are_literals_their_validators_accept() -> None:
    """A key of a closed set accepts exactly its ``Literal``'s values: a validator with a
    list of its own (a second declaration of the set) fails here."""
    closed = _closed_keys()
    assert {name for name, *_ in closed} >= {
        "Case.teacher_dtype", "Case.student_dtype", "Case.num_samples", "Case.teacher_norm",
        "Case.backends", "Case.tolerances", "Case.comms", "LogitsSpec.distribution"}
    wrap = {"one": lambda x: x, "array": lambda x: [x], "table": lambda x: {x: 1}}
    for name, spec, values, shape in closed:
        for value in values:
            spec.check(name, wrap[shape](value))
        with pytest.raises(Bad):
            spec.check(name, wrap[shape]("not-" + values[0]))
        if shape == "one":
            assert expected_of(spec.check) == "one of " + ", ".join(map(repr, values)), name


#: The overlap catalogue (harness/overlap/) has a case model and keys of its own, some of
#: the same names; every other module reads the correctness keys from ``KEYS``.
_OWN_KEYS = Path("harness") / "overlap"
#: The search draws each key with a strategy of its own, keyed by the key's name; a test
#: of its own (tests/unit/test_explore_space.py) holds that table to the schema, both ways.
#: Its report names the keys a drawn case's row shows in columns of their own.
_STRATEGIES = Path("harness") / "explore"
_SEARCH_REPORT = Path("harness") / "report" / "explore_view.py"


def test_no_module_lists_the_keys_a_second_way() -> None:
    """No tuple, list or dict of three or more key names outside the fields of ``Case``
    (a set literal is a kind's ``keys``: which keys it has, declared once, by the kind),
    and no ``Key`` built outside ``harness/cases/keys.py``."""
    found = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        rel = path.relative_to(REPO)
        if _OWN_KEYS in rel.parents or _STRATEGIES in rel.parents or rel == _SEARCH_REPORT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Key":
                if rel != Path("harness/cases/keys.py"):
                    found.append(f"{rel}:{node.lineno} builds a Key")
                continue
            if isinstance(node, (ast.Tuple, ast.List)):
                items = node.elts
            elif isinstance(node, ast.Dict):
                items = [k for k in node.keys if k is not None]
            else:
                continue
            names = {e.value for e in items if isinstance(e, ast.Constant) and e.value in KEYS}
            if len(names) >= 3:
                found.append(f"{rel}:{node.lineno} lists {sorted(names)}")
    assert found == []


def test_tensor_counts_and_role_are_their_literals() -> None:
    Tensor(1, "masked", "student")
    with pytest.raises(ValueError, match=r"counts must be one of \('batch', 'masked', 'layout'\)"):
        Tensor(1, "rows", "teacher")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"role must be one of \('teacher', 'student'\)"):
        Tensor(1, "batch", "both")  # type: ignore[arg-type]


def test_every_kind_key_is_in_the_schema_and_every_key_has_a_kind() -> None:
    for kind in registry().values():
        assert kind.keys <= KEYS.keys(), kind.name
    assert all(kinds_of(key) for key in KEYS)


def test_loading_the_catalogue_imports_no_torch() -> None:
    script = ("import json, sys; import harness.kinds; "
              "from harness.cases import load_cases, default_catalogue_dir; "
              "load_cases([default_catalogue_dir()]); "
              "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' "
              "or m.startswith(('harness.runtime', 'harness.report', 'harness.cli')))))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=str(REPO), timeout=120, check=True).stdout
    assert json.loads(out) == []


_TOY = '''
"""A toy kind: nothing but this module."""
from harness.cases.kind import Kind, Tensor

def rank_program(ctx, job):
    return {}

def verify(job, target, ranks, single):
    return []

KIND = Kind(name="toy", keys=frozenset({"batch_per_rank", "steps"}),
            tensors={"teacher": Tensor(1, "batch", "teacher")}, needs=("sinkhorn_knopp",),
            rank_program=rank_program, verify=verify)
'''


@pytest.fixture
def toy_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "toy.py").write_text(textwrap.dedent(_TOY), encoding="utf-8")
    monkeypatch.setattr(harness.kinds, "__path__", [*harness.kinds.__path__, str(tmp_path)])
    harness.kinds.refresh()
    yield
    monkeypatch.undo()
    sys.modules.pop("harness.kinds.toy", None)
    harness.kinds.refresh()


def test_a_new_kind_is_one_module(toy_kind: None, tmp_path: Path) -> None:
    assert list(registry())[-1] == "toy"
    case = case_from_table({"name": "toy-a", "kind": "toy", "K": 8, "batch_per_rank": [2, 3],
                           "steps": 2})
    assert case.global_data(2)["teacher"].shape == (5, 8)
    assert case.grad_bound() == 1.0
    steps_row = next(row for row in markdown_table().splitlines() if row.startswith("| `steps`"))
    assert steps_row.endswith(" toy |") and "| centering " in steps_row  # the new kind is listed
    with pytest.raises(CaseError, match="expected no 'momentum' in a 'toy' case"):
        case_from_table({"name": "toy-b", "kind": "toy", "momentum": 0.5})


def test_without_the_module_the_kind_is_unknown() -> None:
    with pytest.raises(CaseError, match="key 'kind': expected one of 'centering'.*got 'toy'"):
        case_from_table({"name": "toy-a", "kind": "toy"})
