"""CLS, iBOT and DINOv2 losses and their gradients under the DDP rule (DESIGN.md §1).

The mean over ranks of the local losses must equal the single-process loss, and
``grad(local loss) / world_size`` must equal the rank's slice of the single-process
gradient -- DDP averages gradients, so this is what training actually optimises.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import golden
from ..case import Case, shard
from ..runtime import RankContext
from ..targets import Target
from . import oracle
from .collect import Checks
from .job import Job, quantised, to_host, to_torch
from .sinkhorn import num_samples_arg

# name -> (student key, teacher-logits key, batch axis, count function)
INPUTS = {
    "cls": ("student", "teacher_logits", 1, Case.batch_sizes),
    "patch": ("student_patch", "teacher_patch_logits", 0, Case.masked_counts),
}
KIND_INPUTS = {"cls": ("cls",), "ibot": ("patch",), "dinov2": ("cls", "patch")}


def _leaf(job: Job, api: Any, rank: int, device: torch.device,
          part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(student logits requiring grad, teacher probs) of this rank's shard of one input."""
    case, data = job.case, job.data()
    student_key, teacher_key, axis, counts = INPUTS[part]
    sizes = counts(case, job.world_size)
    student = to_torch(job.local(data[student_key], sizes, rank, axis), case.student_dtype, device)
    teacher = to_torch(job.local(data[teacher_key], sizes, rank, axis), case.teacher_dtype, device)
    if case.teacher_norm == "softmax":
        probs = torch.softmax(teacher.float() / case.teacher_temp, dim=-1)
    else:  # Sinkhorn over every view's rows of every rank, as DINOv2 training does
        rows = teacher.reshape(-1, teacher.shape[-1])
        views = teacher.shape[0] if axis == 1 else 1  # [T, B, K] CLS or [M, K] patches
        global_rows = sum(sizes) * views
        num_samples = num_samples_arg(case.num_samples, rows.shape[0], global_rows, device)
        probs = api.sinkhorn_knopp(rows, case.teacher_temp, num_samples,
                                   case.n_iterations).reshape(teacher.shape)
    return student.requires_grad_(True), probs


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    case, api = job.case, job.target_api().api
    parts = KIND_INPUTS[case.kind]
    inputs = {part: _leaf(job, api, ctx.rank, ctx.device, part) for part in parts}
    if case.kind == "cls":
        loss_fn = api.DINOv1Loss(temperature_student=case.student_temp)
    elif case.kind == "ibot":
        loss_fn = api.iBOTPatchLoss(student_temp=case.student_temp)
    else:
        loss_fn = api.DINOv2Loss(dino_loss_weight=case.dino_weight, ibot_loss_weight=case.ibot_weight,
                                 temperature_student=case.student_temp, student_temp=case.student_temp)
    loss = loss_fn(*[tensor for part in parts for tensor in inputs[part]])
    loss.backward()
    return {"loss": float(loss.detach().float().item()),
            "grads": {part: to_host(inputs[part][0].grad) if inputs[part][0].grad is not None
                      else np.zeros(inputs[part][0].shape) for part in parts}}


def _expected(job: Job, target: Target) -> tuple[float, dict[str, np.ndarray]]:
    case, data = job.case, job.data()
    arrays = {}
    for part in KIND_INPUTS[case.kind]:
        student_key, teacher_key, _, _ = INPUTS[part]
        student = quantised(data[student_key], case.student_dtype)
        logits = quantised(data[teacher_key], case.teacher_dtype)
        if case.teacher_norm == "softmax":
            teacher = golden.softmax(logits / case.teacher_temp)
        else:
            rows = logits.reshape(-1, logits.shape[-1])
            teacher = golden.sinkhorn(rows, case.teacher_temp, case.n_iterations).reshape(logits.shape)
        arrays[part] = (student, teacher)
    loss, grads = 0.0, {}
    if "cls" in arrays:
        cls_loss, cls_grad = oracle.cls_loss(*arrays["cls"], case.student_temp, target.semantics)
        weight = case.dino_weight if case.kind == "dinov2" else 1.0
        loss, grads["cls"] = loss + weight * cls_loss, weight * cls_grad
    if "patch" in arrays:
        weight = case.ibot_weight if case.kind == "dinov2" else 1.0
        loss += weight * golden.ibot_loss(*arrays["patch"], case.student_temp)
        grads["patch"] = weight * golden.ibot_loss_grad(*arrays["patch"], case.student_temp)
    return loss, grads


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    case, world = job.case, job.world_size
    checks = Checks()
    tol_loss, tol_grad = case.tolerance("loss"), case.tolerance("grad")
    mean_loss = float(np.mean([r["loss"] for r in ranks]))
    checks.add("loss", "dist_vs_single", mean_loss, single["loss"], tol_loss,
               detail="mean over ranks of the local losses")
    for part in KIND_INPUTS[case.kind]:
        _, _, axis, counts = INPUTS[part]
        sizes = counts(case, world)
        for rank, out in enumerate(ranks):
            checks.add(f"grad_{part}", "dist_vs_single", out["grads"][part] / world,
                       shard(single["grads"][part], sizes, rank, axis), tol_grad, rank=rank,
                       detail="grad(local loss) / world_size vs the rank's slice")
    loss, grads = _expected(job, target)
    checks.add("loss", "single_vs_oracle", single["loss"], loss, tol_loss)
    for part, grad in grads.items():
        checks.add(f"grad_{part}", "single_vs_oracle", single["grads"][part], grad, tol_grad)
    return checks.result()
