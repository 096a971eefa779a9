"""One exploration from start to finish: which kinds, the search, the case files, the reruns.

Every drawn table is judged exactly as ``dino-harness run`` judges a case: validated by
``case_from_table`` and run by ``checks.runner.run_case`` on the same executor, target,
checks and golden. Each finding's shrunk case is then written as a TOML file and run
again *from that file*: its result -- with the rerun line that names the file -- is what
the report shows, and ``reproduced`` says whether it failed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import kinds as _kinds  # noqa: F401 - registers the case kinds before any table is read
from ..cases import case_from_table
from ..cases import kind as kinds
from ..checks.runner import repro, run_case
from ..errors import CaseError, UsageError
from ..outcome import FAILURE_TEXT
from ..results import CaseResult
from ..runtime.executor import Executor
from ..targets import Target
from . import casefile
from .findings import Example, Finding, Signature, merge, signature_of
from .search import Limits, Progress, Search
from .space import Space, searchable


@dataclass
class Exploration:
    """What an exploration did and found."""

    space: Space
    limits: Limits
    progress: Progress
    findings: list[Finding]
    unsearched: dict[str, str] = field(default_factory=dict)  # kind -> why it was not drawn


def kinds_to_search(target: Target, requested: Sequence[str] | None) -> tuple[list[str], dict[str, str]]:
    """The kinds the search draws (``requested``, else every kind) that this target can be
    asked, and why each other kind is left out. An unknown or unsearchable requested kind
    is a usage error; so is a request that leaves nothing to search."""
    names = kinds.kind_names()
    for name in requested or ():
        if name not in names:
            raise UsageError(f"--kinds: unknown kind {name!r} (kinds: {', '.join(names)})")
        if why := searchable(name):
            raise UsageError(f"--kinds: {name!r} cannot be searched: {why}")
    chosen, left_out = [], {}
    for name in names:
        if requested and name not in requested:
            continue
        why = searchable(name)
        missing = kinds.get(name).missing(target.api)
        if missing and not why:
            why = f"the {target.spec.api} style has no {name} API (it lacks {', '.join(missing)})"
        if why:
            left_out[name] = why
        else:
            chosen.append(name)
    if not chosen:
        reasons = "; ".join(f"{k}: {v}" for k, v in left_out.items())
        raise UsageError(f"nothing to search for this target: {reasons}")
    return chosen, left_out


def explore(target: Target, space: Space, limits: Limits, executor: Executor, case_dir: Path,
            *, unsearched: dict[str, str] | None = None,
            on_failure: Callable[[Signature, Example], None] | None = None,
            on_finding: Callable[[Finding], None] | None = None) -> Exploration:
    """Search ``space`` for this target's mistakes; write each finding's case file under
    ``case_dir`` and rerun it from there."""
    def judge(table: dict[str, Any]) -> CaseResult | None:
        try:
            case = case_from_table(table)
        except CaseError:
            return None  # a rule between keys the strategies do not know
        return run_case(case, space.backend, case.world_sizes[0], executor, target)

    search = Search(space, judge, limits, on_failure=on_failure)
    findings = merge(search.run())
    for finding in findings:
        hand_back(finding, target, space, limits, executor, case_dir)
        if on_finding is not None:
            on_finding(finding)
    return Exploration(space, limits, search.progress, findings, dict(unsearched or {}))


def likely_cause(result: CaseResult) -> str:
    """The likely cause in words: the diagnosis, else what happened."""
    if result.extra.get("diagnosis"):
        return str(result.extra["diagnosis"])
    return FAILURE_TEXT.get(result.failure or "", result.status)


def hand_back(finding: Finding, target: Target, space: Space, limits: Limits,
              executor: Executor, case_dir: Path) -> None:
    """Write the finding's case file and rerun it from the file."""
    example = finding.example
    kind, world = example.table["kind"], example.table["world_sizes"][0]
    cause = likely_cause(example.result)
    path = case_dir / f"{finding.signature.slug}.toml"
    table = casefile.file_table(example.table, casefile.case_name(kind, finding.signature),
                                f"found by dino-harness explore: {cause}"[:200])
    case = case_from_table(table, source=str(path))
    assumed = ", ".join(space.assumptions.words) or "none"
    rerun = repro(case, space.backend, world, target)
    comments = [
        f"Found by `dino-harness explore` on {target.spec.impl} (style {target.spec.api}), "
        f"seed {limits.seed if limits.seed is not None else 'random'}, assumptions: {assumed}.",
        f"Likely cause: {cause}",
        f"{finding.examples} configuration(s) failed this way; this is the smallest "
        "Hypothesis shrank them to.",
        f"Rerun: {rerun}",
    ]
    case = casefile.write(path, table, comments)
    result = run_case(case, space.backend, world, executor, target)
    finding.file, finding.case_table, finding.rerun = str(path), table, rerun
    finding.reproduction = result
    finding.reproduced = signature_of(result) == finding.signature
