"""harness.cases: loading and validating case files, deterministic data, sharding, expansion."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.cases import (
    QUANTITIES,
    Case,
    CaseError,
    case_from_table,
    default_catalogue_dir,
    default_seed,
    expand,
    load_cases,
    round_to_dtype,
    shard,
)
from harness.kinds import KINDS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalogue() -> list[Case]:
    return load_cases([default_catalogue_dir()])


def _write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(CaseError) as info:
        load_cases([path])
    return str(info.value)


# --------------------------------------------------------------------------------------
# the default catalogue
# --------------------------------------------------------------------------------------
def test_default_catalogue_dir_is_in_the_repo() -> None:
    assert default_catalogue_dir() == REPO / "cases" / "correctness"


def test_default_catalogue_loads(catalogue: list[Case]) -> None:
    assert 30 <= len(catalogue) <= 100  # loaded whole, once: a sanity bound, not a count
    assert {c.kind for c in catalogue} == set(KINDS)
    names = [c.name for c in catalogue]
    assert len(set(names)) == len(names)
    files = {Path(c.source).name for c in catalogue}
    # One file per kind, error cases in edge.toml, the extreme-logit family in numerics.toml,
    # the gradient-accumulation family (several kinds) in micro_batches.toml.
    assert files == {f"{k}.toml" for k in KINDS} | {"edge.toml", "numerics.toml",
                                                    "micro_batches.toml"}
    for c in catalogue:
        # `-k <kind>` selects a kind's cases; error cases live in edge.toml.
        assert c.name.startswith(c.kind + "-") or c.name.startswith("edge-"), c.name
        assert c.description, c.name
        for q in QUANTITIES:
            assert c.tolerance(q) > 0


def test_default_catalogue_data_shapes(catalogue: list[Case]) -> None:
    for c in catalogue:
        w = 2 if 2 in c.world_sizes else min(c.world_sizes)
        data = c.global_data(w)
        assert set(data) == set(c.tensor_names())
        for name, arr in data.items():
            assert arr.dtype == np.float64 and arr.shape[-1] == c.K
            assert arr.shape[c.sample_axis(name)] == c.global_count(name, w)
            assert np.isfinite(arr).all()


def _find(catalogue: list[Case], **conditions) -> list[Case]:
    return [c for c in catalogue if all(pred(c) for pred in conditions.values())]


def test_default_catalogue_covers_the_known_failure_modes(catalogue: list[Case]) -> None:
    def uneven(c: Case, sizes: tuple[int, ...]) -> bool:
        return any(len(set(_cycle(sizes, w))) > 1 for w in c.world_sizes)

    def zero_rank(c: Case, sizes: tuple[int, ...]) -> bool:
        return any(0 in _cycle(sizes, w) for w in c.world_sizes if w > 1)

    kind = lambda k: lambda c: c.kind == k  # noqa: E731
    centering = _find(catalogue, k=kind("centering"))
    assert all(c.steps >= 5 for c in centering)
    assert any(uneven(c, c.batch_per_rank) for c in centering)
    assert any(c.teacher_dtype == "bfloat16" for c in centering)
    assert any(c.updates_per_apply == 2 for c in centering)
    assert any(c.teacher_2d for c in centering)
    assert any(zero_rank(c, c.batch_per_rank) for c in centering)
    micro = [c for c in catalogue if c.micro_batches != 1]
    assert {c.kind for c in micro} >= {"centering", "patch_centering", "cls", "ibot", "ibot_masked",
                                       "dinov2"}

    def unequal(c: Case) -> bool:  # micro-batches of unequal global counts at some world size
        return any(len({sum(column) for column in zip(*c.micro_sizes(counts), strict=True)}) > 1
                   for w in c.world_sizes for counts in c.micro_counts(w).values())

    def empty_micro(c: Case) -> bool:  # a rank with rows, one of whose micro-batches is empty
        return any(0 in sizes and sum(sizes) for w in c.world_sizes
                   for counts in c.micro_counts(w).values() for sizes in c.micro_sizes(counts))

    assert {c.kind for c in micro if unequal(c)} == {c.kind for c in micro}
    assert any(not unequal(c) for c in micro)  # equal micro-batches too
    assert any(empty_micro(c) for c in micro)

    sink = _find(catalogue, k=kind("sinkhorn"))
    assert {c.num_samples for c in sink} == {"global_int", "local_tensor", "local_int", "none"}
    assert {1, 10} <= {c.n_iterations for c in sink}
    assert min(c.K for c in sink) == 8 and max(c.K for c in sink) == 65536
    assert all(c.K * max(c.batch_per_rank) <= 65536 * 16 for c in sink)
    assert any(zero_rank(c, c.batch_per_rank) for c in sink)
    assert any(
        c.logits.distribution == "uniform" and c.logits.scale / c.teacher_temp >= 3000 for c in sink
    )
    assert any(c.logits.outlier_offset == -5.0 and c.teacher_temp == 0.04 for c in sink)
    assert any(c.logits.sample_offset > 0 and c.logits.prototype_offset > 0 for c in sink)

    cls = _find(catalogue, k=kind("cls"))
    assert any(c.views_student >= 12 and uneven(c, c.batch_per_rank) for c in cls)
    ibot = _find(catalogue, k=kind("ibot"))
    assert any(uneven(c, c.masked_per_rank) for c in ibot)
    assert any(zero_rank(c, c.masked_per_rank) for c in ibot)
    assert _find(catalogue, k=kind("dinov2"))
    calls = {call for c in _find(catalogue, k=kind("comms")) for call in c.comms}
    assert {"update_center", "sinkhorn_knopp", "dino_forward", "ibot_forward"} <= calls
    errors = [c for c in catalogue if c.expect_error]
    assert any(
        c.expect_error == "ValueError" and c.views_student == c.views_teacher == 1 for c in errors
    )


def _cycle(sizes: tuple[int, ...], w: int) -> list[int]:
    return [sizes[r % len(sizes)] for r in range(w)]


# --------------------------------------------------------------------------------------
# bad input: one precise message naming file, case, key, expected and found
# --------------------------------------------------------------------------------------
def test_message_format_of_the_design(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [[case]]
        name = "sink-uneven"
        kind = "sinkhorn"
        n_iterations = -1
    """)
    assert _error(path) == f"{path}: case 'sink-uneven': key 'n_iterations': expected an int >= 1, got -1"


BAD = {
    "unknown key": (
        'name = "a"\nkind = "centering"\nmomentun = 0.5',
        ["case 'a'", "key 'momentun'", "unknown key", "did you mean 'momentum'?"],
    ),
    "string for int": ('name = "a"\nkind = "sinkhorn"\nK = "8"', ["key 'K'", "expected an int >= 1", "got '8'"]),
    "bool for int": ('name = "a"\nkind = "sinkhorn"\nK = true', ["key 'K'", "got true (a boolean)"]),
    "float for int": ('name = "a"\nkind = "centering"\nsteps = 2.5', ["key 'steps'", "expected an int >= 1, got 2.5"]),
    "bad enum": (
        'name = "a"\nkind = "sinkhorm"',
        ["key 'kind'", "expected one of 'centering'", "got 'sinkhorm'", "did you mean 'sinkhorn'?"],
    ),
    "bad dtype": (
        'name = "a"\nkind = "sinkhorn"\nteacher_dtype = "bf16"',
        ["key 'teacher_dtype'", "'bfloat16'", "got 'bf16'"],
    ),
    "temperature zero": ('name = "a"\nkind = "sinkhorn"\nteacher_temp = 0', ["key 'teacher_temp'", "expected a number > 0, got 0"]),
    "momentum one": ('name = "a"\nkind = "centering"\nmomentum = 1.0', ["key 'momentum'", "expected a number in [0, 1), got 1.0"]),
    "not for this kind": (
        'name = "a"\nkind = "sinkhorn"\nmomentum = 0.5',
        ["case 'a'", "key 'momentum'", "expected no 'momentum' in a 'sinkhorn' case", "centering, comms", "got 0.5"],
    ),
    "missing name": ('kind = "sinkhorn"', ["case #1", "key 'name'", "got nothing (the key is missing)"]),
    "bad name": ('name = "my case"\nkind = "sinkhorn"', ["case #1", "key 'name'", "got 'my case'"]),
    "missing kind": ('name = "a"', ["case 'a'", "key 'kind'", "expected one of", "got nothing"]),
    "negative size": (
        'name = "a"\nkind = "sinkhorn"\nbatch_per_rank = [4, -1]',
        ["key 'batch_per_rank'", "expected an int >= 0 or a non-empty array of ints >= 0", "got an array [4, -1]"],
    ),
    "empty sizes": ('name = "a"\nkind = "ibot"\nmasked_per_rank = []', ["key 'masked_per_rank'", "got an array []"]),
    "empty global batch": (
        'name = "a"\nkind = "sinkhorn"\nbatch_per_rank = [0, 4]',
        ["key 'batch_per_rank'", "expected a non-empty global batch", "got [0] at world size 1"],
    ),
    "world size zero": ('name = "a"\nkind = "sinkhorn"\nworld_sizes = [0, 2]', ["key 'world_sizes'", "ints >= 1", "got an array [0, 2]"]),
    "bad backend": (
        'name = "a"\nkind = "sinkhorn"\nbackends = ["glo"]',
        ["key 'backends'", "'gloo' and 'nccl'", "did you mean 'gloo'?"],
    ),
    "logits unknown": (
        'name = "a"\nkind = "sinkhorn"\nlogits = { scal = 2.0 }',
        ["key 'logits.scal'", "unknown key", "did you mean 'scale'?"],
    ),
    "logits scale": ('name = "a"\nkind = "sinkhorn"\nlogits = { scale = 0.0 }', ["key 'logits.scale'", "expected a number > 0, got 0.0"]),
    "logits distribution": (
        'name = "a"\nkind = "sinkhorn"\nlogits = { distribution = "gauss" }',
        ["key 'logits.distribution'", "'normal', 'uniform'", "got 'gauss'"],
    ),
    "logits not a table": ('name = "a"\nkind = "sinkhorn"\nlogits = 3.0', ["key 'logits'", "expected a table, got 3.0"]),
    "outlier out of range": (
        'name = "a"\nkind = "sinkhorn"\nbatch_per_rank = 4\nlogits = { outlier_offset = -5.0, outlier_index = 4 }',
        ["key 'logits.outlier_index'", "at world size 1", "got 4"],
    ),
    "outlier index alone": (
        'name = "a"\nkind = "sinkhorn"\nlogits = { outlier_index = 0 }',
        ["key 'logits.outlier_index'", "outlier_offset"],
    ),
    "tolerance quantity": (
        'name = "a"\nkind = "sinkhorn"\ntolerances = { sinkorn = 1e-4 }',
        ["key 'tolerances.sinkorn'", "unknown quantity", "did you mean 'sinkhorn'?"],
    ),
    "tolerance value": ('name = "a"\nkind = "sinkhorn"\ntolerances = { sinkhorn = -1 }', ["key 'tolerances.sinkhorn'", "got -1"]),
    "comms missing": ('name = "a"\nkind = "comms"', ["key 'comms'", "non-empty table", "got an empty table"]),
    "comms call": (
        'name = "a"\nkind = "comms"\ncomms = { update_centre = 1 }',
        ["key 'comms.update_centre'", "unknown API call", "did you mean 'update_center'?"],
    ),
    "comms string": (
        'name = "a"\nkind = "comms"\ncomms = { sinkhorn_knopp = "n_iterations+1" }',
        ["key 'comms.sinkhorn_knopp'", "expected an int >= 0 or a table", "got 'n_iterations+1'"],
    ),
    "comms sub-key": (
        'name = "a"\nkind = "comms"\ncomms = { sinkhorn_knopp = { base = 1, per_iter = 1 } }',
        ["key 'comms.sinkhorn_knopp.per_iter'", "did you mean 'per_iteration'?"],
    ),
    "2d teacher with views": (
        'name = "a"\nkind = "centering"\nteacher_2d = true\nviews_teacher = 2',
        ["key 'views_teacher'", "teacher_2d = true", "got 2"],
    ),
    "softmax teacher with iterations": (
        'name = "a"\nkind = "cls"\nteacher_norm = "softmax"\nn_iterations = 3',
        ["key 'n_iterations'", "teacher_norm = 'softmax'", "got 3"],
    ),
    "micro-batches zero": ('name = "a"\nkind = "cls"\nmicro_batches = 0', ["key 'micro_batches'", "an int >= 1", "got 0"]),
    "micro-batches ragged": (
        'name = "a"\nkind = "cls"\nmicro_batches = [[1, 3], [4]]',
        ["key 'micro_batches'", "arrays of one length", "got an array [[...], [...]]"],
    ),
    "micro-batches not for sinkhorn": (
        'name = "a"\nkind = "sinkhorn"\nmicro_batches = 2',
        ["expected no 'micro_batches' in a 'sinkhorn' case", "centering, patch_centering, cls"],
    ),
    "micro-batch sizes off": (
        'name = "a"\nkind = "cls"\nbatch_per_rank = [4, 2]\nmicro_batches = [[3, 1], [1, 0]]',
        ["key 'micro_batches'", "add up to its samples", "[1, 0] for rank 1, which holds 2 at world size 2"],
    ),
    "dinov2 micro-batch sizes off": (
        'name = "a"\nkind = "dinov2"\nbatch_per_rank = 4\nmasked_per_rank = 6\nmicro_batches = [1, 3]',
        ["key 'micro_batches'", "add up to its masked patches", "[1, 3] for rank 0, which holds 6"],
    ),
    "expect_error": ('name = "a"\nkind = "cls"\nexpect_error = "Value Error"', ["key 'expect_error'", "got 'Value Error'"]),
    "seed": ('name = "a"\nkind = "cls"\nseed = -3', ["key 'seed'", "expected an int >= 0, got -3"]),
    "deadline": ('name = "a"\nkind = "cls"\ndeadline_s = "60"', ["key 'deadline_s'", "got '60'"]),
}


@pytest.mark.parametrize("label", list(BAD))
def test_bad_case_gives_a_precise_message(tmp_path: Path, label: str) -> None:
    body, fragments = BAD[label]
    path = _write(tmp_path, "[[case]]\n" + body + "\n")
    message = _error(path)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_error_attributes_name_file_case_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[case]]\nname = "a"\nkind = "sinkhorn"\nn_iterations = 0\n')
    with pytest.raises(CaseError) as info:
        load_cases([path])
    assert isinstance(info.value, ValueError)
    assert (info.value.file, info.value.case, info.value.key) == (str(path), "a", "n_iterations")


def test_second_case_without_name_is_numbered(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [[case]]
        name = "ok"
        kind = "sinkhorn"
        [[case]]
        kind = "sinkhorn"
        K = 0
    """)
    assert f"{path}: case #2: key 'name'" in _error(path)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[case]]\nname = "a"\nkind = "sinkhorn\n')
    message = _error(path)
    assert message.startswith(f"{path}: TOML syntax error at line 3"), message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_bytes(b'[[case]]\nname = "\xff"\n')
    assert _error(path).startswith(f"{path}: not UTF-8")


def test_defaults_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, '[defaults]\nn_iteration = 3\n[[case]]\nname = "a"\nkind = "sinkhorn"\n')
    message = _error(path)
    assert message.startswith(f"{path}: [defaults]: key 'n_iteration': unknown key"), message
    assert "did you mean 'n_iterations'?" in message
    path = _write(tmp_path, '[defaults]\nname = "x"\n[[case]]\nname = "a"\nkind = "sinkhorn"\n')
    assert "[defaults]: key 'name': expected no 'name' in [defaults]" in _error(path)
    path = _write(tmp_path, '[defaults]\nK = -2\n[[case]]\nname = "a"\nkind = "sinkhorn"\n')
    assert _error(path) == f"{path}: [defaults]: key 'K': expected an int >= 1, got -2"


def test_file_structure_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, '[cases]\nname = "a"\n')
    message = _error(path)
    assert "key 'cases': unknown top-level key" in message and "did you mean 'case'?" in message
    path = _write(tmp_path, '[case]\nname = "a"\nkind = "sinkhorn"\n')
    assert "key 'case': expected an array of tables ([[case]], double brackets)" in _error(path)
    path = _write(tmp_path, '[defaults]\nK = 8\n')
    assert "key 'case': expected one or more [[case]] tables, got none" in _error(path)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="no such case file or directory"):
        load_cases([tmp_path / "nope.toml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaseError, match=r"no \*\.toml case files"):
        load_cases([tmp_path / "empty"])


def test_duplicate_names(tmp_path: Path) -> None:
    case = '[[case]]\nname = "dup"\nkind = "sinkhorn"\n'
    one = _write(tmp_path, case + case, "one.toml")
    assert f"{one}: case 'dup': key 'name': expected a unique name" in _error(one)
    a = _write(tmp_path, case, "a.toml")
    b = _write(tmp_path, case, "b.toml")
    with pytest.raises(CaseError) as info:
        load_cases([a, b])
    message = str(info.value)
    assert message.startswith(f"{b}: case 'dup': key 'name'") and f"already defined in {a}" in message


def test_same_file_twice_loads_once(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[case]]\nname = "a"\nkind = "sinkhorn"\n')
    assert [c.name for c in load_cases([tmp_path, path])] == ["a"]


def test_directories_recurse_sorted(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path, '[[case]]\nname = "b"\nkind = "sinkhorn"\n', "b.toml")
    _write(tmp_path / "sub", '[[case]]\nname = "c"\nkind = "sinkhorn"\n', "a.toml")
    _write(tmp_path, '[[case]]\nname = "a"\nkind = "sinkhorn"\n', "a.toml")
    (tmp_path / "notes.txt").write_text("not a case file")
    assert [c.name for c in load_cases(tmp_path)] == ["a", "b", "c"]


# --------------------------------------------------------------------------------------
# defaults and values
# --------------------------------------------------------------------------------------
def test_defaults_merge_and_skip_keys_of_other_kinds(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        [defaults]
        kind = "sinkhorn"
        K = 64
        momentum = 0.5            # centering only: skipped for sinkhorn cases
        n_iterations = 7          # skipped for the softmax-teacher cls case
        logits = { scale = 2.0, prototype_offset = 1.0 }
        tolerances = { sinkhorn = 1e-4 }

        [[case]]
        name = "s"
        logits = { sample_offset = 0.5 }

        [[case]]
        name = "c"
        kind = "centering"

        [[case]]
        name = "l"
        kind = "cls"
        teacher_norm = "softmax"
        tolerances = { loss = 3e-5 }
    """)
    s, c, soft = load_cases([path])
    assert (s.kind, s.K, s.n_iterations, s.momentum) == ("sinkhorn", 64, 7, 0.9)
    assert (s.logits.scale, s.logits.prototype_offset, s.logits.sample_offset) == (2.0, 1.0, 0.5)
    assert c.momentum == 0.5 and c.K == 64
    assert soft.n_iterations == 3  # the built-in default: the [defaults] value does not apply
    assert soft.tolerances == {"sinkhorn": 1e-4, "loss": 3e-5}
    assert soft.tolerance("loss") == 3e-5 and soft.tolerance("sinkhorn") == 1e-4
    assert s.source == str(path)


def test_built_in_defaults() -> None:
    c = case_from_table({"name": "sinkhorn-x", "kind": "sinkhorn"})
    assert c.world_sizes == (1, 2, 3, 4) and c.backends == ("gloo", "nccl")
    assert c.batch_per_rank == (8,) and c.num_samples == "global_int" and c.n_iterations == 3
    assert c.seed == default_seed("sinkhorn-x") and c.deadline_s == 60.0
    assert c.expect_error is None and c.teacher_dtype == "float32"


def test_from_dict_validates() -> None:
    with pytest.raises(CaseError, match="<dict>: case 'a': key 'K': expected an int >= 1, got 0"):
        case_from_table({"name": "a", "kind": "sinkhorn", "K": 0})


def test_case_is_picklable_hashable_and_json_friendly(catalogue: list[Case]) -> None:
    for c in catalogue:
        assert pickle.loads(pickle.dumps(c)) == c
        hash(c)
        json.dumps(c.to_dict())
    comms = next(c for c in catalogue if c.name == "comms-sinkhorn")
    assert comms.to_dict()["comms"]["sinkhorn_knopp"] == {"base": 1, "per_iteration": 1}


def test_max_collectives() -> None:
    c = case_from_table({
        "name": "comms-x", "kind": "comms", "n_iterations": 4,
        "comms": {"update_center": 1, "sinkhorn_knopp": {"base": 1, "per_iteration": 1}},
    })
    assert c.max_collectives("update_center") == 1
    assert c.max_collectives("sinkhorn_knopp") == 5
    with pytest.raises(KeyError):
        c.max_collectives("dino_forward")


# --------------------------------------------------------------------------------------
# sizes, sharding, expansion
# --------------------------------------------------------------------------------------
def test_batch_sizes_cycle() -> None:
    c = case_from_table({"name": "cls-x", "kind": "cls", "batch_per_rank": [3, 0, 5],
                        "world_sizes": [1, 3, 4, 7]})
    assert c.batch_sizes(1) == [3]
    assert c.batch_sizes(4) == [3, 0, 5, 3]
    assert c.batch_sizes(7) == [3, 0, 5, 3, 0, 5, 3]
    d = case_from_table({"name": "ibot-x", "kind": "ibot", "masked_per_rank": 6})
    assert d.masked_counts(3) == [6, 6, 6]
    with pytest.raises(ValueError):
        c.batch_sizes(0)


def test_micro_batches_cut_each_ranks_count() -> None:
    """An int M: micro-batches of ceil(n / M), the last ones shorter, empty ones kept (every
    rank makes M calls); explicit sizes: every rank's, or rank r's list[r % len]."""
    c = case_from_table({"name": "cls-x", "kind": "cls", "batch_per_rank": [5, 1, 0, 8],
                        "micro_batches": 3})
    assert c.micro_sizes(c.batch_sizes(4)) == [[2, 2, 1], [1, 0, 0], [0, 0, 0], [3, 3, 2]]
    assert c.micro_counts(4) == {"samples": [5, 1, 0, 8]}
    d = case_from_table({"name": "ibot-x", "kind": "ibot", "masked_per_rank": [4, 2],
                        "micro_batches": [[1, 3], [2, 0]]})
    assert d.micro_sizes(d.masked_counts(3)) == [[1, 3], [2, 0], [1, 3]]
    e = case_from_table({"name": "ibot_masked-x", "kind": "ibot_masked", "images_per_rank": 4,
                        "micro_batches": [0, 4]})
    assert e.micro_sizes(e.image_counts(2)) == [[0, 4], [0, 4]]
    assert e.micro_counts(2) == {"images": [4, 4]}
    f = case_from_table({"name": "dinov2-x", "kind": "dinov2", "batch_per_rank": 4,
                        "masked_per_rank": 4, "micro_batches": [1, 3]})
    assert f.micro_counts(1) == {"samples": [4], "masked patches": [4]}
    assert case_from_table({"name": "koleo-x", "kind": "koleo"}).micro_counts(2) == {}


def test_shard_concatenates_to_the_global_array() -> None:
    a = np.arange(2 * 9 * 3).reshape(2, 9, 3)
    sizes = [4, 0, 5]
    parts = [shard(a, sizes, r, axis=1) for r in range(3)]
    assert [p.shape[1] for p in parts] == sizes
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), a)
    np.testing.assert_array_equal(shard(a, sizes, 2, axis=-2), a[:, 4:])
    with pytest.raises(ValueError, match="sum to 8"):
        shard(a, [4, 4], 0, axis=1)
    with pytest.raises(ValueError):
        shard(a, sizes, 3, axis=1)


def test_expand_filters_by_the_case_lists() -> None:
    a = case_from_table({"name": "sinkhorn-a", "kind": "sinkhorn", "world_sizes": [2, 4],
                        "backends": ["gloo"]})
    b = case_from_table({"name": "sinkhorn-b", "kind": "sinkhorn"})
    runs = expand([a, b], ["gloo", "nccl"], [1, 2, 3, 4])
    ids = [c.test_id(be, w) for c, be, w in runs]
    assert ids[:2] == ["sinkhorn-a[gloo-ws2]", "sinkhorn-a[gloo-ws4]"]
    assert len(ids) == 2 + 8
    assert [(be, w) for c, be, w in expand([b], ["gloo"], [4, 2, 8])] == [("gloo", 4), ("gloo", 2)]
    assert [(be, w) for c, be, w in expand([a])] == [("gloo", 2), ("gloo", 4)]
    assert expand([a], ["nccl"], None) == []
    assert a.applies_to("gloo", 4) and not a.applies_to("gloo", 3) and not a.applies_to("nccl", 2)


# --------------------------------------------------------------------------------------
# deterministic data
# --------------------------------------------------------------------------------------
def test_data_is_deterministic_and_seed_dependent() -> None:
    table = {"name": "cls-det", "kind": "cls", "batch_per_rank": [3, 2],
             "logits": {"sample_offset": 1.0, "prototype_offset": 0.5}}
    one = case_from_table(table).global_data(2)
    two = case_from_table(table).global_data(2)
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
    other = case_from_table({**table, "seed": 7}).global_data(2)
    assert not np.array_equal(one["student"], other["student"])
    assert not np.array_equal(one["student"], one["teacher_logits"][:, :, :])


@pytest.mark.parametrize("kind", KINDS)
def test_shards_concatenate_to_the_global_batch_at_every_world_size(kind: str) -> None:
    table = {"name": f"{kind}-shards", "kind": kind}
    if kind in ("centering", "sinkhorn", "cls", "dinov2", "comms"):
        table["batch_per_rank"] = [4, 0, 3]
    if kind in ("ibot", "dinov2", "comms"):
        table["masked_per_rank"] = [5, 2, 0]
    if kind == "comms":
        table["comms"] = {"update_center": 1}
    c = case_from_table({**table, "K": 16})
    largest = c.global_data(4)
    for w in (1, 2, 3, 4):
        data = c.global_data(w)
        for name, arr in data.items():
            axis = c.sample_axis(name)
            sizes = c.shard_sizes(name, w)
            parts = [c.local_data(w, r)[name] for r in range(w)]
            assert [p.shape[axis] for p in parts] == sizes
            np.testing.assert_array_equal(np.concatenate(parts, axis=axis), arr)
            # global sample i is the same at every world size
            n = arr.shape[axis]
            np.testing.assert_array_equal(arr, np.take(largest[name], range(n), axis=axis))


def test_centering_layout_and_2d_teacher() -> None:
    c = case_from_table({"name": "centering-x", "kind": "centering", "steps": 5,
                        "updates_per_apply": 2, "views_teacher": 3, "batch_per_rank": [4, 1], "K": 8})
    assert c.global_data(2)["teacher"].shape == (5, 2, 3, 5, 8)
    assert c.sample_axis("teacher") == 3
    flat = case_from_table({"name": "centering-y", "kind": "centering", "teacher_2d": True,
                           "batch_per_rank": [6, 2], "K": 8, "steps": 5})
    assert flat.global_data(2)["teacher"].shape == (5, 1, 8, 8)
    assert flat.sample_axis("teacher") == 2


def test_logit_distributions_offsets_and_outlier() -> None:
    base = {"name": "sinkhorn-u", "kind": "sinkhorn", "K": 512, "batch_per_rank": 16}
    u = case_from_table({**base, "logits": {"distribution": "uniform", "scale": 120.0}})
    x = u.global_data(4)["teacher"]
    assert np.abs(x).max() <= 120.0 and np.abs(x).max() > 119.0
    out = case_from_table({**base, "logits": {"outlier_offset": -5.0}})
    y = out.global_data(2)["teacher"]
    assert y[-1].mean() < -4.0 and abs(y[:-1].mean()) < 0.2
    first = case_from_table({**base, "logits": {"outlier_offset": -5.0, "outlier_index": 0}})
    assert first.global_data(3)["teacher"][0].mean() < -4.0
    proto = case_from_table({**base, "logits": {"prototype_offset": 3.0, "scale": 0.1}})
    z = proto.global_data(4)["teacher"]
    assert np.abs(z.mean(axis=0)).max() > 3.0  # offsets shared by every sample
    samp = case_from_table({**base, "logits": {"sample_offset": 3.0, "scale": 0.1}})
    v = samp.global_data(4)["teacher"]
    assert v.mean(axis=1).std() > 1.0 and v.std(axis=1).max() < 0.2


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_data_is_exact_in_its_dtype(dtype: str) -> None:
    c = case_from_table({"name": "dinov2-x", "kind": "dinov2", "K": 32, "teacher_dtype": dtype,
                        "student_dtype": "float32", "logits": {"scale": 3.0}})
    data = c.global_data(2)
    for name, arr in data.items():
        want = dtype if name.startswith("teacher") else "float32"
        assert c.torch_dtype_name(name) == want
        np.testing.assert_array_equal(round_to_dtype(arr, want), arr)
    if dtype == "bfloat16":
        bits = data["teacher_logits"].astype(np.float32).view(np.uint32)
        assert not np.any(bits & 0xFFFF)


def test_round_to_dtype_bfloat16_rounds_to_nearest_even() -> None:
    # (Checked once against torch's .to(torch.bfloat16); kept torch-free so this stays fast.)
    cases = {
        1.0 + 2**-8: 1.0,  # halfway, 1.0 is even
        1.0 + 3 * 2**-8: 1.0 + 2**-6,  # halfway, 1 + 2^-7 is odd
        1.0 + 2**-8 + 2**-20: 1.0 + 2**-7,  # just above halfway
        -(1.0 + 2**-8 + 2**-20): -(1.0 + 2**-7),
        1.0 - 2**-10: 1.0,  # rounds up across the binade
        0.0: 0.0,
    }
    x = np.array(list(cases))
    np.testing.assert_array_equal(round_to_dtype(x, "bfloat16"), np.array(list(cases.values())))
    y = np.random.default_rng(0).standard_normal(4096) * np.logspace(-3, 4, 4096)
    r = round_to_dtype(y, "bfloat16")
    assert not np.any(r.astype(np.float32).view(np.uint32) & 0xFFFF)
    # within half a bfloat16 ulp (2^-8 relative) of the input
    assert np.all(np.abs(r - y) <= np.abs(y) * 2.0**-8 * (1 + 1e-6))
    np.testing.assert_array_equal(round_to_dtype(y, "float16"), y.astype(np.float16).astype(np.float64))
    np.testing.assert_array_equal(round_to_dtype(y, "float32"), y.astype(np.float32).astype(np.float64))
    with pytest.raises(ValueError):
        round_to_dtype(y, "int8")


_SEED_SCRIPT = """
import hashlib, json, sys
import harness.kinds  # registers the case kinds
from harness.cases import Case, case_from_table, default_seed, load_cases, default_catalogue_dir
c = case_from_table({"name": "sinkhorn-seed-probe", "kind": "sinkhorn", "K": 16,
                    "batch_per_rank": [3, 1], "logits": {"sample_offset": 1.0}})
cases = {x.name: x.seed for x in load_cases([default_catalogue_dir()])}
digest = hashlib.sha256(c.global_data(2)["teacher"].tobytes()).hexdigest()
print(json.dumps({"seed": default_seed("sinkhorn-seed-probe"), "digest": digest, "cases": cases}))
"""


def test_seeds_and_data_are_stable_across_processes(catalogue: list[Case]) -> None:
    import hashlib
    import os

    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _SEED_SCRIPT], capture_output=True, text=True,
                          env=env, cwd=str(REPO), timeout=60, check=True)
    theirs = json.loads(proc.stdout)
    c = case_from_table({"name": "sinkhorn-seed-probe", "kind": "sinkhorn", "K": 16,
                        "batch_per_rank": [3, 1], "logits": {"sample_offset": 1.0}})
    assert theirs["seed"] == default_seed("sinkhorn-seed-probe") == c.seed
    assert theirs["digest"] == hashlib.sha256(c.global_data(2)["teacher"].tobytes()).hexdigest()
    assert theirs["cases"] == {x.name: x.seed for x in catalogue}


def test_default_seed_is_pinned() -> None:
    # SHA-256 based: changing this value silently changes every catalogue case's data.
    assert default_seed("sinkhorn-uneven-shards") == 1108146048444090268


# --------------------------------------------------------------------------------------
# tolerances
# --------------------------------------------------------------------------------------
def test_tolerance_defaults_by_dtype_and_magnitude() -> None:
    f32 = case_from_table({"name": "cls-t", "kind": "cls", "batch_per_rank": 8})
    bf16 = case_from_table({"name": "cls-b", "kind": "cls", "batch_per_rank": 8,
                           "teacher_dtype": "bfloat16", "student_dtype": "bfloat16"})
    assert f32.tolerance("center") == pytest.approx(2e-6)
    assert f32.tolerance("sinkhorn") == pytest.approx(1e-5)
    # the loss adds up 4 views x 32 samples (ws4) x K=128 elements: 2u·sqrt(16384) > 1e-5
    assert f32.tolerance("loss") == pytest.approx(2 * 2.0**-24 * 128)
    assert f32.tolerance("loss", 1) == pytest.approx(1e-5)  # 4 x 8 x 128: the floor
    assert f32.tolerance("probs") == pytest.approx(1e-6 / 0.04)
    assert bf16.tolerance("probs") == pytest.approx(2**-7)  # 2 x bf16's unit roundoff
    assert bf16.tolerance("center") == f32.tolerance("center")  # a bf16 center is a fault
    assert bf16.tolerance("sinkhorn") == f32.tolerance("sinkhorn")  # float32 output by the API
    # grads: relative to the largest gradient T / (temp * pairs * B) = 2 / (0.1 * 6 * 8)
    assert f32.grad_bound() == pytest.approx(2 / (0.1 * 6 * 8))
    assert f32.tolerance("grad") == pytest.approx(1e-5 * f32.grad_bound())
    assert bf16.tolerance("grad") == pytest.approx(2**-7 * bf16.grad_bound())
    big = case_from_table({"name": "sinkhorn-big", "kind": "sinkhorn", "teacher_temp": 0.04,
                          "logits": {"distribution": "uniform", "scale": 120.0}})
    assert big.tolerance("sinkhorn") == pytest.approx(1e-5 * 3.0)
    with pytest.raises(ValueError, match="quantity"):
        f32.tolerance("centre")


def test_tolerances_separate_noise_from_planted_faults(catalogue: list[Case]) -> None:
    """The measured float32 noise (harness/cases/tolerances.py) passes every default tolerance
    with margin; the smallest planted-fault error fails every one."""
    for c in catalogue:
        if c.tolerances:
            continue
        if c.kind == "centering":
            assert 5 * 3.5e-7 <= c.tolerance("center") <= 5e-3 / 10, c.name
        if c.kind == "sinkhorn" or (c.kind != "centering" and c.teacher_norm == "sinkhorn"):
            assert 2 * 9.4e-7 <= c.tolerance("sinkhorn") <= 2e-3 / 10, c.name
        if c.kind in ("cls", "ibot", "dinov2"):
            assert 5 * 7e-7 <= c.tolerance("loss") <= 9e-4 / 10, c.name
            # float32 grads: noise <= 1e-6 of the bound; bf16: <= 2.4e-3 of max |grad|
            assert c.tolerance("grad") >= 5 * 1e-6 * c.grad_bound(), c.name


def test_tolerance_grows_with_what_the_reduction_adds_up() -> None:
    """The rule of harness/cases/tolerances.py: max(floor, 2u·sqrt(n)), n the terms the
    quantity's longest reduction adds up at that world size; each says how it was made."""
    cls = case_from_table({"name": "cls-64", "kind": "cls", "K": 4096, "views_student": 10,
                           "batch_per_rank": 8, "world_sizes": [2, 64]})
    loss64 = cls.tolerance("loss", 64)
    assert loss64 == pytest.approx(2 * 2.0**-24 * (10 * 512 * 4096) ** 0.5)
    assert "n = 10·512·4096 = 20,971,520 at ws64" in loss64.rule
    assert cls.tolerance("loss", 2) == pytest.approx(2 * 2.0**-24 * (10 * 16 * 4096) ** 0.5)
    # nothing over the batch: the floor at every world size, and it says so
    assert cls.tolerance("grad", 64) == cls.tolerance("grad", 2)
    assert cls.tolerance("probs", 64).rule.startswith("floor")
    center = case_from_table({"name": "centering-64", "kind": "centering", "K": 64,
                              "batch_per_rank": 16, "steps": 20, "world_sizes": [64],
                              "logits": {"prototype_offset": 1.0}})
    rms = center.logits.rms  # the center's scale; one step's rows: 1 update x 2 views x 1024
    assert center.tolerance("center") == pytest.approx(2 * 2.0**-24 * 2048**0.5 * rms)
    sink = case_from_table({"name": "sinkhorn-64", "kind": "sinkhorn", "batch_per_rank": 4000,
                            "world_sizes": [64]})
    assert sink.tolerance("sinkhorn") == pytest.approx(2 * 2.0**-24 * 256000**0.5)
    assert sink.tolerance("sinkhorn", 1) == pytest.approx(1e-5)
    overridden = case_from_table({"name": "cls-o", "kind": "cls", "tolerances": {"loss": 3e-3}})
    assert overridden.tolerance("loss") == 3e-3 and "set by the case" in overridden.tolerance("loss").rule
    import pickle

    again = pickle.loads(pickle.dumps(loss64))
    assert again == loss64 and again.rule == loss64.rule


@pytest.mark.parametrize("outlier_index", [0, 5, -1])
def test_a_rank_builds_its_rows_alone_outlier_included(outlier_index: int, monkeypatch) -> None:
    """A rank generates only its own samples (never the global batch), and the outlier
    sample, indexed into the global batch, lands on exactly the rank that holds it."""
    import harness.cases.model as model

    c = case_from_table({"name": "sinkhorn-rows", "kind": "sinkhorn", "K": 16,
                         "batch_per_rank": [4, 3, 0, 5], "world_sizes": [4],
                         "logits": {"outlier_offset": -40.0, "outlier_index": outlier_index}})
    whole = c.global_data(4)["teacher"]
    asked: list[range] = []
    real = model.generate

    def spy(*args):
        asked.append(args[-1])
        return real(*args)

    monkeypatch.setattr(model, "generate", spy)
    parts = [c.local_data(4, r)["teacher"] for r in range(4)]
    assert asked == [range(0, 4), range(4, 7), range(7, 7), range(7, 12)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert np.count_nonzero(whole.max(axis=1) < -20) == 1  # exactly one outlier sample
    holder = next(r for r in range(4) if parts[r].size and parts[r].max(axis=1).min() < -20)
    assert holder == {0: 0, 5: 1, -1: 3}[outlier_index]
