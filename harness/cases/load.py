"""Reading case files: TOML, ``[defaults]`` merging, discovery, names unique across files.

A case file is DATA (read with ``tomllib``, never imported or evaluated). Every problem is
a :class:`CaseError` naming the file, the case (its name, or ``case #N``, 1-based), the
key, what was expected and what was found -- before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import CaseError
from ..paths import catalogue_dir
from . import kind as kinds
from .choices import COMMS_CALLS
from .data import LogitsSpec
from .model import Case
from .schema import KEYS, applies, kinds_of
from .validate import MISSING, NAME_RE, Bad, did_you_mean, got, unknown, v_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the API-identical backport, if installed
    import tomli as tomllib  # type: ignore[no-redef]

_SYNTAX_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


def default_catalogue_dir() -> Path:
    """The correctness catalogue (``cases/correctness`` of the repository, or the
    installed package's copy)."""
    return catalogue_dir("correctness")


def load_cases(paths: Sequence[str | Path] | str | Path) -> list[Case]:
    """Load and validate case files: files, or directories (recursive ``*.toml``, sorted).

    Raises CaseError on the first problem, before anything runs. Names must be unique
    across every loaded file; a file reached twice is loaded once.
    """
    return load_unique(paths, _load_file)


def load_unique(paths: Sequence[str | Path] | str | Path,
                load_file: Callable[[Path], list[Any]]) -> list[Any]:
    """Every ``*.toml`` under ``paths`` through ``load_file``, names unique across files
    (shared by the correctness and the overlap catalogues)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.rglob("*.toml"))
            if not found:
                raise CaseError(f"{path}: no *.toml case files in this directory", file=str(path))
        elif path.is_file():
            found = [path]
        else:
            raise CaseError(f"{path}: no such case file or directory", file=str(path))
        for f in found:
            resolved = f.resolve()
            if resolved not in seen:
                seen.add(resolved)
                files.append(f)
    cases: list[Any] = []
    where: dict[str, str] = {}
    for f in files:
        for case in load_file(f):
            if case.name in where:
                raise CaseError(
                    f"{f}: case {case.name!r}: key 'name': expected a name unique across "
                    f"the loaded files, got {case.name!r} (already defined in {where[case.name]})",
                    file=str(f), case=case.name, key="name",
                )
            where[case.name] = str(f)
            cases.append(case)
    return cases


def read_toml(path: Path) -> dict[str, Any]:
    """A case file's table; unreadable or malformed files are a CaseError naming the file
    (and line and column for a syntax error). Shared with the overlap catalogue."""
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseError(f"{source}: not UTF-8 text ({exc})", file=source) from exc
    except OSError as exc:
        raise CaseError(f"{source}: cannot read: {exc}", file=source) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _SYNTAX_RE.search(msg)
        if m:
            detail = _SYNTAX_RE.sub("", msg).strip()
            where = f"line {m.group(1)}, column {m.group(2)}"
        else:
            detail, where = msg, "unknown position"
        raise CaseError(f"{source}: TOML syntax error at {where}: {detail}", file=source) from exc


def case_tables(doc: dict[str, Any], source: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``[defaults]`` table and the ``[[case]]`` tables of a file (shared with the
    overlap catalogue); anything else at the top is an error."""
    for key in doc:
        if key not in ("defaults", "case"):
            raise CaseError(
                f"{source}: key {key!r}: unknown top-level key, expected only a [defaults] "
                f"table and [[case]] tables{did_you_mean(key, ('defaults', 'case'))}",
                file=source, key=key,
            )
    raw_defaults = doc.get("defaults", {})
    if not isinstance(raw_defaults, dict):
        raise CaseError(f"{source}: key 'defaults': expected a table [defaults], got "
                        f"{got(raw_defaults)}", file=source, key="defaults")
    raw_cases = doc.get("case", MISSING)
    if raw_cases is MISSING:
        raise CaseError(f"{source}: key 'case': expected one or more [[case]] tables, got "
                        "none", file=source, key="case")
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        raise CaseError(
            f"{source}: key 'case': expected an array of tables ([[case]], double brackets), "
            f"got {got(raw_cases)}", file=source, key="case",
        )
    return raw_defaults, raw_cases


def case_label(raw: dict[str, Any], index: int) -> tuple[str, str]:
    """(case, label): the case's name, or ``#N`` when it has no valid one."""
    name = raw.get("name", MISSING)
    case = name if isinstance(name, str) and NAME_RE.match(name) else f"#{index + 1}"
    return case, (f"case {case!r}" if case == name else f"case {case}")


def _load_file(path: Path) -> list[Case]:
    source = str(path)
    raw_defaults, raw_cases = case_tables(read_toml(path), source)
    defaults = check_defaults(raw_defaults, source)
    cases = [build_case(raw, defaults, source, index) for index, raw in enumerate(raw_cases)]
    names: dict[str, int] = {}
    for i, c in enumerate(cases):
        if c.name in names:
            raise CaseError(
                f"{source}: case {c.name!r}: key 'name': expected a unique name, got "
                f"{c.name!r} (also case #{names[c.name] + 1} of this file)",
                file=source, case=c.name, key="name",
            )
        names[c.name] = i
    return cases


def case_from_table(table: dict[str, Any], *, defaults: dict[str, Any] | None = None,
                    source: str = "<dict>") -> Case:
    """Validate one case table (as in a TOML file) and build the Case."""
    return build_case(dict(table), check_defaults(dict(defaults or {}), source), source, 0)


def check_defaults(raw: dict[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            if key == "name":
                raise Bad("name", "expected no 'name' in [defaults] (every case needs its own "
                          f"unique name), got {got(value)}")
            if key not in KEYS:
                raise unknown(key, KEYS)
            out[key] = KEYS[key].check(key, value)
        except Bad as bad:
            raise CaseError(f"{source}: [defaults]: key {bad.key!r}: {bad.problem}",
                            file=source, case="[defaults]", key=bad.key) from None
    return out


def build_case(raw: dict[str, Any], defaults: dict[str, Any], source: str, index: int) -> Case:
    case, label = case_label(raw, index)
    try:
        return _build(raw, defaults, source)
    except Bad as bad:
        raise CaseError(f"{source}: {label}: key {bad.key!r}: {bad.problem}",
                        file=source, case=case, key=bad.key) from None


def _build(raw: dict[str, Any], defaults: dict[str, Any], source: str) -> Case:
    # 1. name and kind first: every later message names the case, and applicability needs the kind.
    name = v_name("name", raw.get("name", MISSING))
    for key in raw:
        if key not in KEYS:
            raise unknown(key, KEYS)
    kind = KEYS["kind"].check("kind", raw.get("kind", defaults.get("kind", MISSING)))

    # 2. every explicit key: applies to this kind, and a valid value.
    explicit: dict[str, Any] = {}
    for key, value in raw.items():
        if not applies(key, kind):
            raise Bad(key, f"expected no {key!r} in a {kind!r} case (it applies to "
                      f"{', '.join(kinds_of(key))}), got {got(value)}")
        explicit[key] = KEYS[key].check(key, value)

    # 3. merge: case > [defaults] (if it applies) > built-in default.
    values: dict[str, Any] = {}
    for key, spec in KEYS.items():
        if key == "name":
            continue
        from_defaults = defaults.get(key, MISSING) if applies(key, kind) else MISSING
        if spec.merged:
            values[key] = {**spec.default, **({} if from_defaults is MISSING else from_defaults),
                           **explicit.get(key, {})}
        elif key in explicit:
            values[key] = explicit[key]
        elif from_defaults is not MISSING:
            values[key] = from_defaults
        else:
            values[key] = spec.default

    # 4. rules between keys: the kind's own, then the logits table's.
    declared = kinds.get(kind)
    if declared.check:
        declared.check(values, explicit)
    logits_raw = values["logits"]
    if "outlier_index" in logits_raw and "outlier_offset" not in logits_raw:
        raise Bad("logits.outlier_index", "expected logits.outlier_offset alongside it (the index "
                  f"says which sample gets the offset), got {got(logits_raw['outlier_index'])}"
                  " without it")
    if "comms" in declared.keys and not values["comms"]:
        raise Bad("comms", "expected a non-empty table of API call = max collectives "
                  f"(calls: {', '.join(COMMS_CALLS)}), got {got(values['comms'])}")

    fields = dict(values)
    fields.update(
        logits=LogitsSpec(**logits_raw),
        views_teacher=1 if values["teacher_2d"] else values["views_teacher"],
        tolerances=dict(values["tolerances"]),
        comms=dict(values["comms"]),
    )
    case = Case(name=name, source=source, **fields)
    _check_counts(case)
    return case


def _check_counts(case: Case) -> None:
    """Every world size must give a usable global batch (unless an error is expected), in
    every process group, and the outlier index must exist at every world size."""
    if case.group_size is not None:
        for w in case.world_sizes:
            if w % case.group_size:
                raise Bad("group_size", f"expected a divisor of every world size, got "
                          f"{case.group_size} with world size {w} (world_sizes "
                          f"{list(case.world_sizes)})")
            for tensor in case.tensor_names():
                sizes = case.shard_sizes(tensor, w)
                for first in range(0, w, case.group_size):
                    if not sum(sizes[first:first + case.group_size]) and not case.expect_error:
                        raise Bad(case._tensor(tensor).count_key, f"expected a non-empty batch in "
                                  f"every process group, got none in ranks {first}.."
                                  f"{first + case.group_size - 1} at world size {w}")
    _check_micro_batches(case)
    for tensor in case.tensor_names():
        key = case._tensor(tensor).count_key
        for w in case.world_sizes:
            n = case.global_count(tensor, w)
            if n == 0 and case.expect_error is None:
                raise Bad(key, f"expected a non-empty global batch at every world size, got "
                          f"{case.shard_sizes(tensor, w)} at world size {w} (0 in total; "
                          "reorder the list or narrow world_sizes)")
            if case.logits.outlier_offset is not None and n and not -n <= case.logits.outlier_index < n:
                raise Bad("logits.outlier_index", f"expected an index into the global batch at every "
                          f"world size ({n} samples of {tensor!r} at world size {w}), got "
                          f"{case.logits.outlier_index}")


def _check_micro_batches(case: Case) -> None:
    """Explicit micro-batch sizes must add up to each rank's count of everything they cut,
    at every world size."""
    if isinstance(case.micro_batches, int):
        return
    for w in case.world_sizes:
        for what, counts in case.micro_counts(w).items():
            for rank, (sizes, n) in enumerate(zip(case.micro_sizes(counts), counts, strict=True)):
                if sum(sizes) != n:
                    raise Bad("micro_batches", f"expected each rank's micro-batch sizes to add up "
                              f"to its {what} at every world size, got {list(sizes)} for rank "
                              f"{rank}, which holds {n} at world size {w} (its {what} per rank: "
                              f"{counts})")
