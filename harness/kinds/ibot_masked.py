"""DINOv2 / DINOv3's masked-patch iBOT loss, ``iBOTPatchLoss.forward_masked``, on a real
mask layout: images with their own patch masks, uneven masked counts per image and rank.

Each rank holds whole images (``images_per_rank``); image g's mask is drawn from the case
seed and g alone, so the global batch is the concatenation of the rank shards at every
world size, and the rows of the two ``[M_r, K]`` tensors are the rank's masked patches in
row-major mask order (image by image, patch by patch), as training's
``x[masks]`` gives them. The rank program does what ``ssl_meta_arch.py`` does: teacher
probs by the loss's own ``sinkhorn_knopp_teacher`` with the LOCAL masked count as a
``(1,)`` tensor (the real code all-reduces it in place) or by a plain softmax, then
``forward_masked(student, probs, student_masks_flat=the rank's masks)`` and backward.

DINOv2 divides by the LOCAL image count, so the DDP rule (mean of local losses == the
single-process loss) holds only with equal images per rank: uneven images per rank is a
real distributed bug, and the checks say so (category ``distributed``), and a failed
loss is diagnosed: the known loss mistakes' models (that local image count among them)
run on the same images, and those that give the target's numbers are its likely cause.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import golden
from ..cases import shard
from ..cases.kind import Kind, Tensor, has_api_name
from ..cases.sharding import per_rank
from ..checks.collect import Checks
from ..checks.diagnose import Diagnosis, explain
from ..golden import sharded
from . import _micro
from ._losses import STUDENT_KEYS, _softmax_rule

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target

#: Random stream of the masks (``default_rng([seed, MASK_STREAM, global image])``): no
#: tensor of this kind has this id, so masks and logits never share a stream.
MASK_STREAM = 6
#: The masked iBOT loss's name in a namespace: the reference's class, and what the dinov2 /
#: dinov3 styles call the real one (not the seed ``iBOTPatchLoss``, whose forward is the
#: mean over masked patches).
LOSS = "iBOTMaskedPatchLoss"
NEEDS = (f"{LOSS}.forward_masked",)
SINKHORN_NEED = f"{LOSS}.sinkhorn_knopp_teacher"


@functools.lru_cache(maxsize=16)
def masks(case: Any, world_size: int) -> np.ndarray:
    """The global ``[images, N]`` boolean mask at ``world_size``, ranks' images in rank
    order. Image g masks ``floor(N * u)`` patches at random places, u uniform in its home
    rank's ``mask_ratio`` range (dinov2's collate draws ``int(N * uniform(lo, hi))``);
    per-rank lists are prefixes of one cycle, so g's home rank, hence its mask, is the
    same at every world size. Read-only (cached)."""
    n, counts = case.patches_per_image, case.image_counts(world_size)
    out = np.zeros((sum(counts), n), dtype=bool)
    home = np.repeat(np.arange(world_size), counts)  # each global image's rank
    ranges = per_rank(case.mask_ratio, world_size)
    for image, rank in enumerate(home):
        rng = np.random.default_rng([case.seed, MASK_STREAM, image])
        lo, hi = ranges[rank]
        masked = min(n, math.floor(n * rng.uniform(lo, hi)))
        out[image, rng.choice(n, size=masked, replace=False)] = True
    out.flags.writeable = False
    return out


def masked_counts(case: Any, world_size: int) -> list[int]:
    """M_r: the masked patches of each rank's images (the rows of its tensors)."""
    per_image = masks(case, world_size).sum(axis=1)
    sizes = case.image_counts(world_size)
    return [int(part.sum()) for part in np.split(per_image, np.cumsum(sizes)[:-1])]


def grad_bounds(case: Any) -> Iterable[float]:
    """``max w / (student_temp * images)``: w = 1 / masked count of an image, images the
    smallest non-empty global image count (single-process gradient, |p - t| <= 1)."""
    widest = max(case.world_sizes)
    counts = masks(case, widest).sum(axis=1)
    weight = 1.0 / counts[counts > 0].min() if (counts > 0).any() else 1.0
    images = min((n for w in case.world_sizes if (n := sum(case.image_counts(w)))), default=1)
    yield weight / (case.student_temp * images)


def calls_missing(case: Any, api: Any) -> list[str]:
    """A Sinkhorn case also calls the loss's own ``sinkhorn_knopp_teacher``."""
    if case.teacher_norm == "sinkhorn" and not has_api_name(api, SINKHORN_NEED):
        return [f"teacher_norm = 'sinkhorn' needs {SINKHORN_NEED}"]
    return []


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    import torch  # on the ranks only

    from ..checks.job import to_host, to_torch

    case, api, world = job.case, job.target_api().api, job.world_size
    student = to_torch(job.shard("student_masked", ctx.rank), case.student_dtype,
                       ctx.device).requires_grad_(True)
    teacher = to_torch(job.shard("teacher_masked_logits", ctx.rank), case.teacher_dtype,
                       ctx.device)
    layout = job.local(masks(case, world), case.image_counts(world), ctx.rank, 0)
    loss_module = getattr(api, LOSS)(student_temp=case.student_temp)
    # Micro-batches of whole images (:mod:`._micro`); the run without them: one of all.
    images = (_micro.sizes(job, _micro.IMAGES)[ctx.rank] if _micro.active(job)
              else [layout.shape[0]])
    weighs = _micro.active(job) and _micro.target_weighs(loss_module)
    shares = (_micro.shares(job, _micro.IMAGES, ctx.rank) if _micro.active(job) and not weighs
              else [1.0] * len(images))
    image_masks = _micro.cut(layout, images, 0)
    rows = [int(m.sum()) for m in image_masks]  # a micro-batch's masked patches
    total = 0.0
    with loss_module.micro_batches(images) if weighs else nullcontext():
        if case.teacher_norm == "softmax":
            probs = torch.softmax(teacher.float() / case.teacher_temp, dim=-1)
        else:  # the step's, with a fresh LOCAL count: the real code all-reduces it in place
            local = torch.tensor([teacher.shape[0]], dtype=torch.long, device=ctx.device)
            probs = loss_module.sinkhorn_knopp_teacher(teacher, teacher_temp=case.teacher_temp,
                                                       n_masked_patches_tensor=local,
                                                       n_iterations=case.n_iterations)
        for s, p, mask, share in zip(_micro.cut(student, rows, 0), _micro.cut(probs, rows, 0),
                                     image_masks, shares, strict=True):
            flat = torch.tensor(mask, dtype=torch.bool, device=ctx.device)
            loss = loss_module.forward_masked(s, p, student_masks_flat=flat) * share
            loss.backward()
            total += float(loss.detach().float().item())
    grad = student.grad if student.grad is not None else torch.zeros_like(student)
    return {"loss": total, "grad": to_host(grad),
            "probs": to_host(probs) if case.teacher_norm == "sinkhorn" else None}


def _expected(job: Job) -> dict[str, Any]:
    """The float64 single-process answer on the global batch: the inputs the target sees
    (student logits, oracle teacher probs) and the loss and gradient they give."""
    from ..checks.job import quantised  # torch

    case, data = job.case, job.data()
    student = quantised(data["student_masked"], case.student_dtype)
    logits = quantised(data["teacher_masked_logits"], case.teacher_dtype)
    if case.teacher_norm == "softmax":
        probs = golden.softmax(logits / case.teacher_temp)
    else:
        probs = golden.sinkhorn(logits, case.teacher_temp, case.n_iterations)
    flat = masks(case, job.world_size)
    return {"student": student, "probs": probs,
            "loss": golden.ibot_masked_loss(student, probs, flat, case.student_temp),
            "grad": golden.ibot_masked_loss_grad(student, probs, flat, case.student_temp)}


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    case, world = job.case, job.world_size
    counts, checks = masked_counts(case, world), Checks()
    tol_loss, tol_grad, tol_probs = (job.tolerance(q) for q in ("loss", "grad", "sinkhorn"))
    checks.add("loss", "dist_vs_single", float(np.mean([r["loss"] for r in ranks])),
               single["loss"], tol_loss, detail="mean over ranks of the local losses")
    for rank, out in enumerate(ranks):
        checks.add("grad_patch", "dist_vs_single", out["grad"] / world,
                   shard(single["grad"], counts, rank, 0), tol_grad, rank=rank,
                   detail="grad(local loss) / world_size vs the rank's slice")
        if case.teacher_norm == "sinkhorn":
            checks.add("sinkhorn", "dist_vs_single", out["probs"],
                       shard(single["probs"], counts, rank, 0), tol_probs, rank=rank)
    expected = _expected(job)
    if case.teacher_norm == "sinkhorn":
        checks.add("sinkhorn", "single_vs_oracle", single["probs"], expected["probs"], tol_probs)
    checks.add("loss", "single_vs_oracle", single["loss"], expected["loss"], tol_loss)
    checks.add("grad_patch", "single_vs_oracle", single["grad"], expected["grad"], tol_grad)
    if checks.failed_any():
        checks.diagnose(_diagnosis(job, expected, ranks, single)
                        if checks.failed("loss") or checks.failed("grad_patch") else Diagnosis())
    return checks.result()


def _diagnosis(job: Job, expected: dict[str, Any], ranks: list[dict], single: dict) -> Diagnosis:
    """Which known loss mistake gives every rank's local loss and gradient (and the one
    process's): the models run on the oracle's inputs, each rank on its own images."""
    case, world = job.case, job.world_size
    layout, tolerances = masks(case, world), (job.tolerance("loss"), job.tolerance("grad"))

    def flat(outputs: list[tuple[float, Any]], scale: float) -> list[Any]:
        return [value for loss, grad in outputs for value in (loss, grad / scale)]

    got = [*flat([(r["loss"], r["grad"]) for r in ranks], world),
           *flat([(single["loss"], single["grad"])], 1)]
    observed = [(value, tolerances[i % 2]) for i, value in enumerate(got)]

    def local(flaws: sharded.Flaws, sizes: list[int], images: list[int],
              micro: list[list[int]]) -> list[tuple[float, Any]]:
        """Every rank's step: its micro-batches of ``micro[r]`` images each, weighed."""
        ids = range(len(sizes))
        per_rank = [(shard(expected["student"], sizes, r, 0), shard(expected["probs"], sizes, r, 0),
                     _micro.cut(shard(layout, images, r, 0), micro[r], 0)) for r in ids]

        def piece(r: int, m: int) -> tuple[Any, Any, Any]:
            student, probs, mask_pieces = per_rank[r]
            rows = [int(x.sum()) for x in mask_pieces]
            return (_micro.cut(student, rows, 0)[m], _micro.cut(probs, rows, 0)[m], mask_pieces[m])

        per_micro = [sharded.ibot_masked_local(*zip(*(piece(r, m) for r in ids), strict=True),
                                               case.student_temp, flaws)
                     for m in range(len(micro[0]))]
        return sharded.accumulated(per_micro, sharded.micro_weights(micro, flaws), 0)

    def predict(flaws: sharded.Flaws) -> list[Any]:
        counts, images = masked_counts(case, world), case.image_counts(world)
        return [*flat(local(flaws, counts, images, _micro.scope_sizes(job, _micro.IMAGES)), world),
                *flat(local(flaws, [sum(counts)], [sum(images)], [[sum(images)]]), 1)]

    return explain("loss", observed, predict)


#: The masked patches' logits, rows following the mask layout (ids key their streams).
TENSORS = {
    "student_masked": Tensor(4, "layout", "student", sizes=masked_counts, key="mask_ratio"),
    "teacher_masked_logits": Tensor(5, "layout", "teacher", sizes=masked_counts, key="mask_ratio"),
}

KIND = Kind(
    name="ibot_masked",
    order=3,
    keys=STUDENT_KEYS | {"images_per_rank", "patches_per_image", "mask_ratio", "n_iterations",
                         "teacher_norm", "micro_batches"},
    tensors=TENSORS,
    needs=NEEDS,
    rank_program=rank_program,
    verify=verify,
    grad_bounds=grad_bounds,
    check=_softmax_rule,
    calls_missing=calls_missing,
    micro_counts=lambda case, world: {_micro.IMAGES: case.image_counts(world)},
)
