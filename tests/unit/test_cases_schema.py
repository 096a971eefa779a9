"""harness.cases.schema and harness.kinds: one declaration per key, kinds as plug-ins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

import harness.kinds
from harness.cases import Case, CaseError, case_from_table
from harness.cases.kind import Tensor, registry
from harness.cases.schema import KEYS, kinds_of, markdown_table

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- keys:begin", "<!-- keys:end -->"


def test_readme_key_table_is_the_schema() -> None:
    text = (REPO / "cases" / "README.md").read_text(encoding="utf-8")
    start = text.index("\n", text.index(BEGIN)) + 1
    table = text[start:text.index(END)]
    assert table == markdown_table(), (
        "cases/README.md's key table differs from harness/cases/schema.py; paste the output of "
        "`python -c 'from harness.cases.schema import markdown_table; print(markdown_table())'`"
    )


def test_case_fields_are_the_schema_keys() -> None:
    assert [f.name for f in fields(Case) if f.name != "source"] == list(KEYS)


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
