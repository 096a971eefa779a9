"""harness.overlap.cases: overlap case files, their validation, and planning."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import CaseError
from harness.overlap.cases import (
    MIN_ITERATIONS,
    OverlapCase,
    default_overlap_dir,
    load_overlap_cases,
    plan,
)


def _write(tmp_path: Path, text: str, name: str = "o.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _error(path: Path) -> CaseError:
    with pytest.raises(CaseError) as info:
        load_overlap_cases([path])
    return info.value


def test_catalogue_loads_and_spans_the_k_range() -> None:
    cases = load_overlap_cases(default_overlap_dir())
    ks = sorted({c.K for c in cases})
    assert ks[0] == 4096 and ks[-1] == 262144
    assert any(c.quick and c.K == 65536 for c in cases), "the quick case is the K=65536 default"
    assert all(c.iterations >= MIN_ITERATIONS for c in cases)
    default = next(c for c in cases if c.name == "overlap-k65536")
    assert default.head_shape() == "384→2048→256→65536"


def test_defaults_merge_and_payload_round_trip(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [defaults]
        K = 4096
        views_student = 6
        [[case]]
        name = "overlap-a"
        [[case]]
        name = "overlap-b"
        K = 8192
        world_sizes = [2]
        backends = ["gloo"]
        dtype = "bfloat16"
    """)
    a, b = load_overlap_cases(path)
    assert (a.K, a.views_student, b.K, b.views_student) == (4096, 6, 8192, 6)
    assert b.world_sizes == (2,) and b.backends == ("gloo",)
    assert b.teacher_dtype_name == "bfloat16"  # defaults to dtype
    assert OverlapCase.from_payload(b.to_payload()) == b


@pytest.mark.parametrize(("body", "key", "found"), [
    ('K = 0', "K", "got 0"),
    ('iterations = 5', "iterations", f"an int >= {MIN_ITERATIONS}, got 5"),
    ('momentum = 1.0', "momentum", "0 <= m < 1"),
    ('dtype = "float64"', "dtype", "got 'float64'"),
    ('world_sizes = []', "world_sizes", "non-empty list"),
    ('backends = ["mpi"]', "backends", "'gloo' | 'nccl'"),
    ('quick = 1', "quick", "true or false"),
    ('kind = "sinkhorn"', "kind", "'overlap'"),
    ('teacher_temp = -1', "teacher_temp", "a number > 0"),
])
def test_bad_values_name_file_case_and_key(tmp_path: Path, body: str, key: str, found: str) -> None:
    path = _write(tmp_path, f"""
        [[case]]
        name = "overlap-x"
        {body}
    """)
    err = _error(path)
    message = str(err)
    assert message.startswith(f"{path}: case 'overlap-x': key '{key}': expected")
    assert found in message
    assert (err.file, err.case, err.key) == (str(path), "overlap-x", key)


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [[case]]
        name = "overlap-x"
        batch_per_rnak = 4
    """)
    assert "unknown key; did you mean 'batch_per_rank'?" in str(_error(path))


def test_missing_name_is_reported_by_position(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [[case]]
        name = "overlap-ok"
        [[case]]
        K = 4096
    """)
    message = str(_error(path))
    assert "case #2: key 'name'" in message and "got nothing" in message


def test_defaults_errors_and_syntax_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [defaults]
        name = "no"
        [[case]]
        name = "overlap-x"
    """)
    assert "[defaults]: key 'name'" in str(_error(path))
    bad = _write(tmp_path, "[[case]\nname = 1\n", "syntax.toml")
    assert "TOML syntax error at line" in str(_error(bad))
    top = _write(tmp_path, '[[cases]]\nname = "x"\n', "top.toml")
    assert "did you mean 'case'?" in str(_error(top))


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    _write(tmp_path, '[[case]]\nname = "overlap-x"\n', "a.toml")
    _write(tmp_path, '[[case]]\nname = "overlap-x"\n', "b.toml")
    with pytest.raises(CaseError, match="unique across the loaded files"):
        load_overlap_cases(tmp_path)


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="no such case file"):
        load_overlap_cases(tmp_path / "nope.toml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaseError, match="no \\*.toml case files"):
        load_overlap_cases(tmp_path / "empty")


def test_plan_intersects_world_sizes_backends_and_quick() -> None:
    a = OverlapCase("a", world_sizes=(1, 2, 4), quick=True)
    b = OverlapCase("b", world_sizes=(2,), backends=("nccl",))
    assert plan([a, b], "gloo", [1, 2, 3]) == [(a, 1), (a, 2)]
    assert plan([a, b], "nccl", [2]) == [(a, 2), (b, 2)]
    assert plan([a, b], "nccl", [2], quick=True) == [(a, 2)]
