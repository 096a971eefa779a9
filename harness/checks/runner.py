"""Run one (case, backend, world size) and turn what the ranks return into a verdict.

Two runs per case: the target on N ranks (each on its shard), and the same target on one
rank with the whole global batch. The kind's verifier compares (a) the two, (b) the
single-process run with the float64 oracle, (c) replicated state across ranks.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from ..cases import Case
from ..cases import kind as kinds
from ..cases.footprint import BASE_MB, footprint
from ..outcome import rank_failure_fields, verify_failure_fields
from ..results import CaseResult
from ..runtime import RankFailure
from ..runtime.executor import Executor
from ..runtime.memory import headroom_mb, release_heap
from ..styles import CONTRACTS, required_contract
from ..targets import Target
from .closeness import worst_of
from .job import Job

#: What every rank runs: the case's kind program (harness.kinds registers the kinds and
#: dispatches; named, not imported: the kinds sit above this package).
PROGRAM = "harness.kinds:run"


def run_case(case: Case, backend: str, world_size: int, executor: Executor, target: Target,
             *, timeout_s: float | None = None) -> CaseResult:
    start = time.perf_counter()

    def result(**fields: Any) -> CaseResult:
        out = CaseResult(case=case.name, kind=case.kind, backend=backend, world_size=world_size,
                         duration_s=time.perf_counter() - start, **fields)
        if out.status in ("fail", "error"):
            out.extra["repro"] = repro(case, backend, world_size, target, timeout_s)
        return out

    reason = (skip_reason(case, target) or executor.unavailable_reason(backend, world_size)
              or _memory_short(case, world_size))
    if reason:
        return result(status="skip", skip_reason=reason)

    deadline = timeout_s if timeout_s is not None else case.deadline_s
    dist_job = Job(case, world_size, target.spec, "dist")
    scopes = dist_job.groups()  # the world, or each process group: a golden of its own
    memory = footprint(case, world_size).to_json()  # the estimate a run is refused by
    try:
        ranks = executor.run(backend, world_size, PROGRAM, dist_job, deadline)
        memory.update(executor.last_memory(backend, world_size) or {})
        singles = [executor.run(backend, 1, PROGRAM, replace(scope, mode="single"), deadline)[0]
                   for scope in scopes]
    except RankFailure as failure:
        fields = rank_failure_fields(failure)
        fields["extra"]["memory"] = {**memory, **fields["extra"].get("memory", {})}
        return result(**fields)
    checks: list[Any] = []
    diagnosis = None
    try:
        for scope, single in zip(scopes, singles, strict=True):
            mine = [ranks[r] for r in scope.ranks]
            if case.expect_error:
                verdicts = _expected_error(case, mine, single)
            else:
                verdicts = kinds.get(case.kind).verify(scope, target, mine, single)
            checks += _in_world(verdicts, scope)
            found = getattr(verdicts, "diagnosis", None)  # a kind with models of its numbers
            if found is not None:
                diagnosis = found if diagnosis is None else diagnosis + found
    except Exception as exc:  # noqa: BLE001 - a target's odd output must not stop the run
        return result(**verify_failure_fields(exc, "verifying the outputs failed"))
    checks = _worst_per_quantity(checks)
    passed = all(check.passed for check in checks)
    extra: dict[str, Any] = {"memory": memory}
    if not passed and diagnosis is not None:
        extra.update(diagnosis=diagnosis.text, mistakes=diagnosis.names)
    return result(status="pass" if passed else "fail", checks=checks, extra=extra)


def _memory_short(case: Case, world_size: int) -> str | None:
    """Why this case cannot run on what the machine has left now (the plan was checked
    before the run began; another program, or a pool's pages, may have taken it since):
    a skip told with the figures, never a victim of the kernel's OOM killer."""
    estimate = footprint(case, world_size)
    need = estimate.total_mb - BASE_MB  # the parent and the zygote are already here
    free, floor = headroom_mb()
    if need <= free:
        return None
    return (f"not enough memory now: the case needs an estimated {need:.0f} MB beyond the "
            f"harness itself, the machine has {free:.0f} MB above the guard's {floor:.0f} MB floor")


def _worst_per_quantity(checks: list[Any]) -> list[Any]:
    """One check per (quantity, comparison) over every process group: the worst."""
    by: dict[tuple[str, str], list[Any]] = {}
    for check in checks:
        by.setdefault((check.name, check.comparison), []).append(check)
    return [worst_of(name, group) for (name, _), group in by.items()]


def _in_world(checks: list[Any], scope: Job) -> list[Any]:
    """A process group's checks with world ranks, and the group named in their detail."""
    if scope.group is None:
        return list(checks)
    for check in checks:
        if check.rank is not None:
            check.rank = scope.ranks[check.rank]
        where = f"process group {scope.group} (ranks {scope.ranks.start}..{scope.ranks.stop - 1})"
        check.detail = f"{where}. {check.detail}".strip() if check.detail else where
    return list(checks)


def repro(case: Case, backend: str, world_size: int, target: Target,
          timeout_s: float | None = None) -> str:
    """The one command line that reruns just this case at this world size."""
    style = (["--adapter", target.spec.adapter] if target.spec.adapter
             else ["--api", target.spec.api])
    step = ["--step", target.spec.step] if target.spec.step else []
    args = ["dino-harness", "run", "--impl", target.spec.impl, *style, *step,
            "--cases", case.source, "--filter", case.test_id(backend, world_size),
            "--world-sizes", str(world_size), "--backend", backend]
    if timeout_s is not None:
        args += ["--timeout", f"{timeout_s:g}"]
    return shlex.join(args)


def skip_reason(case: Case, target: Target) -> str | None:
    """Why this target cannot be asked this case at all (the same answer on every rank)."""
    kind = kinds.get(case.kind)
    style = target.spec.api
    if missing := kind.missing(target.api):
        return (f"the {style} style has no {case.kind} API (the names it drives lack "
                f"{', '.join(missing)})")
    contract = required_contract(case)
    if contract is not None and contract not in target.contracts:
        return (f"'{CONTRACTS[contract]}' is a contract of the seed reference that this {style} "
                "target does not promise (a seed-API module promises it by listing "
                f"{contract!r} in DINO_HARNESS_CONTRACTS)")
    views = target.semantics.teacher_views
    if views is not None and "views_teacher" in kind.keys and case.views_teacher != views:
        return f"the {style} style's CLS loss always takes {views} teacher views"
    if kind.calls_missing and (missing := kind.calls_missing(case, target.api)):
        return f"the {style} style cannot make: {', '.join(missing)}"
    calls = (*kind.needs, *(("sinkhorn_knopp",) if "n_iterations" in kind.keys
                            and getattr(case, "teacher_norm", "") == "sinkhorn" else ()))
    if case.group_size is not None and (deaf := _no_process_group(calls, target.api)):
        return (f"group_size needs a target that takes a process group: the {style} style's "
                f"{', '.join(deaf)} take(s) no process_group argument")
    return None


def _no_process_group(needs: tuple[str, ...], api: Any) -> list[str]:
    """The names a grouped case calls that cannot be handed a ``process_group``."""
    from ..styles import parameters

    return [name for name in dict.fromkeys(needs)
            if "process_group" not in parameters(getattr(api, name))]


def _expected_error(case: Case, ranks: list[dict], single: dict) -> list[Any]:
    from .collect import Checks

    checks = Checks()
    for rank, out in enumerate([*ranks, single]):
        label = "single process" if rank == len(ranks) else f"rank {rank}"
        raised = out.get("raised")
        checks.expect(f"raises {case.expect_error}", raised == case.expect_error,
                      f"{label}: {raised or 'no exception'}: {out.get('message', '')}"[:500],
                      rank=None if rank == len(ranks) else rank)
    return checks.result()


def run_all(
    plan: Iterable[tuple[Case, str, int]],
    executor: Executor,
    target: Target,
    *,
    timeout_s: float | None = None,
    on_start: Callable[[Case, str, int], None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Every planned case in order; a hung or crashed case never stops the ones after it."""
    results = []
    for case, backend, world_size in plan:
        if on_start:
            on_start(case, backend, world_size)
        outcome = run_case(case, backend, world_size, executor, target, timeout_s=timeout_s)
        release_heap()  # a 64-rank case's golden copies are gone: give their pages back
        results.append(outcome)
        if on_result:
            on_result(outcome)
    return results
