"""Teacher centering: softmax-center output and the EMA center, step by step.

Each step uses the center built from the steps before it (one-step lag): the program calls
``softmax_center_teacher`` (which waits for and applies last step's async update), then
``update_center`` once per batch (``updates_per_apply`` > 1: several before one apply).
With ``micro_batches`` each rank cuts each of those batches into micro-batches, as a
gradient-accumulation loop does: per micro-batch of the step's first batch its teacher
probs (``update_centers`` only on the first: the step's center for every micro-batch),
then its ``update_center`` (or, for a target that never promised to combine several,
one ``update_center`` on the step's rows after them: :func:`accumulates_by_caller`); one
apply per step. The golden is the single-process run,
one call per batch: one EMA step over every micro-batch's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import golden
from ..cases import shard
from ..cases.kind import Kind, Tensor
from ..cases.validate import Bad, got
from ..checks import oracle
from ..checks.collect import Checks
from ..checks.diagnose import Diagnosis, explain, modelled_world
from ..golden import sharded
from . import _micro

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target

BATCH_AXIS = -2  # [steps, micro, T, B, K] or, with teacher_2d, [steps, micro, N, K]


@dataclass(frozen=True)
class Head:
    """Whose center a centering kind checks: the API object the program builds (the rows
    are its kind's ``teacher`` tensor: the CLS head's batch, the patch head's tokens)."""

    loss: str
    count: str = _micro.SAMPLES  # what the teacher's rows are, and micro-batches cut

    def build(self, api: Any, case: Any) -> Any:
        from ..checks.job import group_kwargs  # torch: on the ranks only

        if self.loss == "DINOv1Loss":
            return api.DINOv1Loss(temperature_student=case.student_temp,
                                  center_momentum=case.momentum, **group_kwargs())
        return getattr(api, self.loss)(center_momentum=case.momentum, **group_kwargs())


CLS_HEAD = Head("DINOv1Loss")


def _lead(case: Any) -> tuple[int, ...]:
    lead = (case.steps, case.updates_per_apply)
    return lead if case.teacher_2d else (*lead, case.views_teacher)


def _check(values: dict[str, Any], explicit: dict[str, Any]) -> None:
    if values["teacher_2d"] and "views_teacher" in explicit:
        raise Bad("views_teacher", "expected no 'views_teacher' with teacher_2d = true (the teacher "
                  f"is [N, K] rows; batch_per_rank counts rows), got {got(explicit['views_teacher'])}")


def rank_program(ctx: RankContext, job: Job, head: Head = CLS_HEAD) -> dict[str, Any]:
    from ..checks.job import to_host, to_torch  # torch: on the ranks only
    from ..runtime import collective_log

    def center_of(loss: Any) -> Any:
        return None if loss.center is None else to_host(loss.center).reshape(-1)

    case, target = job.case, job.target_api()
    local = job.shard("teacher", ctx.rank)
    sizes = (_micro.sizes(job, head.count)[ctx.rank] if _micro.active(job)
             else [local.shape[BATCH_AXIS]])
    loss = head.build(target.api, case)
    once = accumulates_by_caller(target)
    probs, centers = [], []
    for step in range(case.steps):
        step_probs = []
        for update in range(case.updates_per_apply):
            for m, rows in enumerate(_micro.cut(local[step, update], sizes, BATCH_AXIS)):
                batch = to_torch(rows, case.teacher_dtype, ctx.device)
                # The step labels every collective: a rank that skips one is named with its step.
                if update == 0:  # the step's teacher probs, under the step's center
                    with collective_log.step(f"step {step} softmax_center_teacher"):
                        step_probs.append(to_host(
                            loss.softmax_center_teacher(batch, case.teacher_temp) if m == 0 else
                            loss.softmax_center_teacher(batch, case.teacher_temp,
                                                        update_centers=False)))
                    if m == 0:
                        centers.append(center_of(loss))
                if not once:
                    with collective_log.step(f"step {step} update_center"):
                        loss.update_center(batch)
            if once:  # the whole update's rows in one call, after its micro-batches
                with collective_log.step(f"step {step} update_center"):
                    loss.update_center(to_torch(local[step, update], case.teacher_dtype,
                                                ctx.device))
        probs.append(np.concatenate(step_probs, axis=BATCH_AXIS))
    with collective_log.step("apply_center_update"):
        loss.apply_center_update()
    centers.append(center_of(loss))
    return {"probs": probs, "centers": centers}


def accumulates_by_caller(target: Target) -> bool:
    """Whether the program hands a step's micro-batches to ``update_center`` at once: for a
    target whose training loop calls ``update_center`` (``center_update = "caller"``) but
    that never promised to combine several calls before an apply (``updates_accumulate``:
    DINOv2, DINOv3), that is how a loop accumulating micro-batches must call it. A target
    that promised it gets a call per micro-batch; one whose ``forward`` steps the center
    is called per micro-batch as its loop would, and fails as lightly-train issue 968."""
    return (target.semantics.center_update == "caller"
            and "updates_accumulate" not in target.contracts)


def verify(job: Job, target: Target, ranks: list[dict], single: dict,
           head: Head = CLS_HEAD) -> list[Any]:
    from ..checks.job import quantised  # torch

    case = job.case
    checks = Checks()
    sizes = job.counts("teacher")
    teacher = quantised(job.data()["teacher"], case.teacher_dtype)
    k = teacher.shape[-1]
    step_batches = [teacher[step].reshape(-1, k) for step in range(case.steps)]
    used = oracle.centers_used(step_batches, case.momentum, target.semantics)
    final = oracle.centers_after_each_step(step_batches, case.momentum, target.semantics)[-1]
    expected_centers = [*used, final]
    tol_p, tol_c = job.tolerance("probs"), job.tolerance("center")

    for step in range(case.steps + 1):
        where = f"step {step}" if step < case.steps else "after the last apply"
        checks.agree("center", [r["centers"][step] for r in ranks], detail=where)
        for rank, out in enumerate(ranks):
            checks.add("center", "dist_vs_single", out["centers"][step], single["centers"][step],
                       tol_c, rank=rank, detail=where)
        checks.add("center", "single_vs_oracle", single["centers"][step], expected_centers[step],
                   tol_c, detail=where)
    for step in range(case.steps):
        for rank, out in enumerate(ranks):
            want = shard(single["probs"][step], sizes, rank, BATCH_AXIS)
            checks.add("probs", "dist_vs_single", out["probs"][step], want, tol_p, rank=rank,
                       detail=f"step {step}")
        want = golden.softmax_center(teacher[step, 0], used[step], case.teacher_temp)
        checks.add("probs", "single_vs_oracle", single["probs"][step], want, tol_p,
                   detail=f"step {step}")
    if checks.failed_any():
        checks.diagnose(_diagnosis(job, target, teacher, ranks, single, head)
                        if checks.failed("center") else Diagnosis())
    return checks.result()


def _diagnosis(job: Job, target: Target, teacher: Any, ranks: list[dict], single: dict,
               head: Head) -> Diagnosis:
    """Which known centering mistake gives every rank's centers (and the one process's)."""
    from ..checks.job import quantised  # torch

    case, tol = job.case, job.tolerance("center")
    k = teacher.shape[-1]

    def batches(rows: Any, sizes: list[int], micro: list[list[int]]) -> list[list[list[Any]]]:
        """[rank][step][update_center call]: each update's shard, cut into micro-batches."""
        return [[[piece.reshape(-1, k) for u in range(case.updates_per_apply)
                  for piece in _micro.cut(shard(rows[step, u], sizes, rank, BATCH_AXIS),
                                          micro[rank], BATCH_AXIS)]
                 for step in range(case.steps)] for rank in range(len(sizes))]

    total = teacher.shape[BATCH_AXIS]
    whole = batches(teacher, [total], [[total]])
    init = target.semantics.center_init
    observed = [(c, tol) for out in [*ranks, single] for c in out["centers"]]

    def predict(flaws: sharded.Flaws) -> list[Any]:
        world, pick = modelled_world(job, flaws)
        rows = teacher if world is job else quantised(world.data()["teacher"], case.teacher_dtype)
        per_rank = batches(rows, world.counts("teacher"), _micro.scope_sizes(world, head.count))
        dist = sharded.centers(per_rank, case.momentum, flaws, center_init=init)[pick]
        per_rank = [*dist, sharded.centers(whole, case.momentum, flaws, center_init=init)[0]]
        return [c for rank in per_rank for c in rank]

    return explain("center", observed, predict)


KIND = Kind(
    name="centering",
    order=0,
    keys=frozenset({"views_teacher", "batch_per_rank", "momentum", "steps", "updates_per_apply",
                    "group_size", "micro_batches",
                    "teacher_2d"}),
    tensors={"teacher": Tensor(1, "batch", "teacher", _lead)},
    needs=("DINOv1Loss",),
    rank_program=rank_program,
    verify=verify,
    check=_check,
    micro_counts=lambda case, world: {CLS_HEAD.count: case.shard_sizes("teacher", world)},
)
