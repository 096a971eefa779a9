"""Collectives per API call: every rank must issue the same sequence (count, order, op,
size), and no call may exceed the case's budget (``comms`` table of the case file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cases.kind import Kind
from ..checks.collect import Checks
from ._losses import CLS_KEYS, CLS_TENSORS, PATCH_KEYS, PATCH_TENSORS, SINKHORN_KEYS, STUDENT_KEYS

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target

# API calls that need a seed-API name beyond DINOv1Loss / sinkhorn_knopp.
CALL_NEEDS = {"ibot_sinkhorn_knopp_teacher": "iBOTPatchLoss", "ibot_forward": "iBOTPatchLoss",
              "dinov2_forward": "DINOv2Loss"}

# Canonical training-step order; a call listed in the case runs after what it needs.
ORDER = ("softmax_center_teacher", "dino_forward", "update_center", "apply_center_update",
         "sinkhorn_knopp", "sinkhorn_knopp_teacher", "ibot_sinkhorn_knopp_teacher",
         "ibot_forward", "dinov2_forward")


def missing_api(case: Any, api: Any) -> list[str]:
    """The case's calls this target cannot make (the DINOv2/DINOv3 styles have no iBOT)."""
    return [f"{call} needs {name}" for call in case.comms
            if (name := CALL_NEEDS.get(call)) and not hasattr(api, name)]


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    import torch  # on the ranks only

    from ..checks.job import num_samples_arg, to_torch
    from ..runtime.collectives import CollectiveRecorder

    case, api = job.case, job.target_api().api
    world = job.world_size
    local = {name: to_torch(job.shard(name, ctx.rank), case.dtype_of(name), ctx.device)
             for name in case.tensor_names()}
    teacher, student = local["teacher_logits"], local["student"]
    patch_teacher, patch_student = local["teacher_patch_logits"], local["student_patch"]
    rows = teacher.reshape(-1, teacher.shape[-1])
    global_rows = case.views_teacher * case.global_count("teacher_logits", world)
    num_samples = num_samples_arg(case.num_samples, rows.shape[0], global_rows, ctx.device)
    patch_samples = num_samples_arg(case.num_samples, patch_teacher.shape[0],
                                    case.global_count("teacher_patch_logits", world), ctx.device)
    dino = api.DINOv1Loss(temperature_student=case.student_temp, center_momentum=case.momentum)
    probs = torch.softmax(teacher.float() / case.teacher_temp, dim=-1)
    patch_probs = torch.softmax(patch_teacher.float() / case.teacher_temp, dim=-1)

    def run(call: str) -> None:
        if call == "softmax_center_teacher":
            dino.softmax_center_teacher(teacher, case.teacher_temp)
        elif call == "dino_forward":
            dino(student.float(), probs)
        elif call == "update_center":
            dino.update_center(teacher)
        elif call == "apply_center_update":
            dino.apply_center_update()
        elif call == "sinkhorn_knopp":
            api.sinkhorn_knopp(rows, case.teacher_temp, num_samples, case.n_iterations)
        elif call == "sinkhorn_knopp_teacher":
            dino.sinkhorn_knopp_teacher(teacher, case.teacher_temp, num_samples, case.n_iterations)
        elif call == "ibot_sinkhorn_knopp_teacher":
            api.iBOTPatchLoss(student_temp=case.student_temp).sinkhorn_knopp_teacher(
                patch_teacher, case.teacher_temp, patch_samples, case.n_iterations)
        elif call == "ibot_forward":
            api.iBOTPatchLoss(student_temp=case.student_temp)(patch_student.float(), patch_probs)
        elif call == "dinov2_forward":
            api.DINOv2Loss()(student.float(), probs, patch_student.float(), patch_probs)

    wanted = set(case.comms)
    if "apply_center_update" in wanted:
        wanted.add("update_center")  # nothing to apply otherwise
    recorder = CollectiveRecorder()
    with recorder:
        for call in ORDER:
            if call in wanted:
                with recorder.section(call):
                    run(call)
    return {"calls": {name: [c.key() for c in calls] for name, calls in recorder.sections.items()}}


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    case = job.case
    checks = Checks()
    for call in case.comms:
        per_rank = [r["calls"].get(call, []) for r in ranks]
        budget = case.max_collectives(call)
        for rank, calls in enumerate(per_rank):
            listing = ", ".join(_fmt(c) for c in calls) or "none"
            checks.expect(f"collectives:{call}", len(calls) <= budget,
                          f"{len(calls)} collective(s), budget {budget}: {listing}", rank=rank,
                          category="distributed")
            if calls != per_rank[0]:
                first = next((i for i, (a, b) in enumerate(zip(calls, per_rank[0], strict=False)) if a != b),
                             min(len(calls), len(per_rank[0])))
                checks.expect(f"rank_agreement:{call}", False,
                              f"rank {rank} differs from rank 0 at collective #{first}: "
                              f"{_fmt_at(calls, first)} vs {_fmt_at(per_rank[0], first)}",
                              rank=rank, category="distributed")
            else:
                checks.expect(f"rank_agreement:{call}", True, f"{len(calls)} collective(s) agree",
                              rank=rank)
    return checks.result()


def _fmt(call: tuple) -> str:
    op, numel, dtype, reduce_op = call
    return f"{op}({numel} x {dtype}{' ' + reduce_op if reduce_op else ''})"


def _fmt_at(calls: list[tuple], index: int) -> str:
    return _fmt(calls[index]) if index < len(calls) else "nothing"


KIND = Kind(
    name="comms",
    order=5,
    keys=CLS_KEYS | PATCH_KEYS | STUDENT_KEYS | SINKHORN_KEYS | {"momentum", "comms"},
    tensors={**CLS_TENSORS, **PATCH_TENSORS},
    needs=("DINOv1Loss", "sinkhorn_knopp"),
    rank_program=rank_program,
    verify=verify,
    calls_missing=missing_api,
)
