"""What the loss kinds (cls, ibot, dinov2) share: their tensors, program and verifier.

The mean over ranks of the local losses must equal the single-process loss, and
``grad(local loss) / world_size`` must equal the rank's slice of the single-process
gradient -- DDP averages gradients, so this is what training actually optimises.

With ``micro_batches`` a rank's local loss is one optimizer step's, accumulated as a
training loop does (:mod:`._micro`): the step's teacher probs once, on the rank's whole
shard (DINOv2 computes its teacher once per step), then per micro-batch the loss on its
rows and a backward; the step's local loss is the sum of the micro-batch losses, each
weighed by its share of the step (by the target itself inside its ``micro_batches``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import golden
from ..cases import shard
from ..cases.kind import Kind, Tensor, has_api_name
from ..cases.schema import KEYS
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

#: The generated tensors of the loss inputs (their ids key the data's random streams).
CLS_TENSORS = {
    "student": Tensor(2, "batch", "student", lambda case: (case.views_student,)),
    "teacher_logits": Tensor(3, "batch", "teacher", lambda case: (case.views_teacher,)),
}
PATCH_TENSORS = {
    "student_patch": Tensor(4, "masked", "student"),
    "teacher_patch_logits": Tensor(5, "masked", "teacher"),
}
CLS_KEYS = frozenset({"views_student", "views_teacher", "batch_per_rank"})
PATCH_KEYS = frozenset({"masked_per_rank"})
SINKHORN_KEYS = frozenset({"n_iterations", "num_samples"})
STUDENT_KEYS = frozenset({"student_dtype", "student_temp"})


@dataclass(frozen=True)
class Part:
    """One loss term: its (student, teacher logits) tensors, the key of its weight, the
    count its micro-batches cut, and whether the loss object's own ``sinkhorn_knopp_teacher``
    is its teacher's (DINOv2Loss's is its CLS head's: the patch teacher goes through
    ``sinkhorn_knopp``)."""

    student: str
    teacher: str
    weight_key: str | None = None
    count: str = _micro.SAMPLES
    loss_sinkhorn: bool = True

    def weight(self, case: Any) -> float:
        return getattr(case, self.weight_key) if self.weight_key else 1.0


def cls_bound(case: Any) -> Iterable[float]:
    """``T / (student_temp * pairs * B)``, B the smallest non-zero global count."""
    if case.n_pairs:
        b = min((n for n in case.group_totals(case.batch_sizes) if n), default=1)
        yield case.views_teacher / (case.student_temp * case.n_pairs * b)


def patch_bound(case: Any) -> Iterable[float]:
    """``1 / (student_temp * M)``, M the smallest non-zero global count."""
    m = min((n for n in case.group_totals(case.masked_counts) if n), default=1)
    yield 1.0 / (case.student_temp * m)


def _softmax_rule(values: dict[str, Any], explicit: dict[str, Any]) -> None:
    if values["teacher_norm"] == "softmax":
        for key in sorted(SINKHORN_KEYS):
            if key in explicit:
                raise Bad(key, f"expected no {key!r} with teacher_norm = 'softmax' (no Sinkhorn "
                          f"runs), got {got(explicit[key])}")
            values[key] = KEYS[key].default  # a [defaults] value does not apply either


def loss_kind(name: str, order: int, parts: dict[str, Part], needs: str,
              make_loss: Callable[[Any, Any], Any],
              bounds: dict[str, Callable[[Any], Iterable[float]]]) -> Kind:
    """A loss kind: ``make_loss(api, case, **group_kwargs)`` builds the loss module (on a
    grouped case's ranks, with its ``process_group``); its forward takes (student, teacher
    probs) of every part in order."""
    tensors = {**(CLS_TENSORS if "cls" in parts else {}), **(PATCH_TENSORS if "patch" in parts else {})}
    keys = STUDENT_KEYS | SINKHORN_KEYS | {"teacher_norm", "group_size", "micro_batches"}
    keys |= (CLS_KEYS if "cls" in parts else frozenset()) | (PATCH_KEYS if "patch" in parts else frozenset())
    keys |= {p.weight_key for p in parts.values() if p.weight_key}

    def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
        return _rank_program(ctx, job, parts, make_loss)

    def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
        return _verify(job, target, ranks, single, parts)

    def grad_bounds(case: Any) -> Iterable[float]:
        for part, bound in bounds.items():
            yield from (abs(parts[part].weight(case)) * b for b in bound(case))

    def calls_missing(case: Any, api: Any) -> list[str]:
        return _sinkhorn_missing(case, api) + _weighing_missing(case, api, needs, parts)

    return Kind(name=name, order=order, keys=frozenset(keys), tensors=tensors,
                needs=(needs,), rank_program=rank_program, verify=verify,
                grad_bounds=grad_bounds, check=_softmax_rule, calls_missing=calls_missing,
                micro_counts=lambda case, world: {
                    part.count: case.shard_sizes(part.student, world) for part in parts.values()})


def _sinkhorn_missing(case: Any, api: Any) -> list[str]:
    """A Sinkhorn teacher needs the target's Sinkhorn; a softmax teacher does not."""
    if case.teacher_norm == "sinkhorn" and not hasattr(api, "sinkhorn_knopp"):
        return ["sinkhorn_knopp (for teacher_norm = 'sinkhorn')"]
    return []


def _weighing_missing(case: Any, api: Any, needs: str, parts: dict[str, Part]) -> list[str]:
    """Micro-batches of a loss of several terms need the loss to weigh each term by its own
    share of the step: the loop's one scale per micro-batch cannot."""
    if case.micro_batches == 1 or len(parts) == 1 or has_api_name(api, f"{needs}.micro_batches"):
        return []
    return [f"{needs}.micro_batches (micro-batches of a loss whose terms have their own counts, "
            f"{' and '.join(p.count for p in parts.values())}: one scale per micro-batch "
            "cannot weigh each term by its own share of the step)"]


def _teacher_probs(job: Job, api: Any, rank: int, device: Any, part: Part,
                   loss: Any = None) -> Any:
    """The teacher probs of this rank's shard of one input: softmax, or the Sinkhorn over
    every view's rows of every rank, as DINOv2 training does -- the target's
    ``sinkhorn_knopp``, or ``loss``'s own ``sinkhorn_knopp_teacher`` when given (inside
    its ``micro_batches``: the step's teacher)."""
    import torch

    from ..checks.job import group_kwargs, num_samples_arg, to_torch

    case = job.case
    teacher = to_torch(job.shard(part.teacher, rank), case.teacher_dtype, device)
    if case.teacher_norm == "softmax":
        return torch.softmax(teacher.float() / case.teacher_temp, dim=-1)
    sizes = job.world_counts(part.student, rank)
    rows = teacher.reshape(-1, teacher.shape[-1])
    views = teacher.shape[0] if case.sample_axis(part.student) == 1 else 1  # [T, B, K] or [M, K]
    num_samples = num_samples_arg(case.num_samples, rows.shape[0], sum(sizes) * views, device)
    if loss is not None:
        return loss.sinkhorn_knopp_teacher(teacher, case.teacher_temp, num_samples,
                                           case.n_iterations)
    return api.sinkhorn_knopp(rows, case.teacher_temp, num_samples, case.n_iterations,
                              **group_kwargs()).reshape(teacher.shape)


def _student(job: Job, rank: int, device: Any, part: Part) -> Any:
    """This rank's student logits of one input, requiring grad."""
    from ..checks.job import to_torch

    case = job.case
    return to_torch(job.shard(part.student, rank), case.student_dtype, device).requires_grad_(True)


def _rank_program(ctx: RankContext, job: Job, parts: dict[str, Part],
                  make_loss: Callable[[Any, Any], Any]) -> dict[str, Any]:
    from ..checks.job import group_kwargs  # torch: on the ranks only

    if _micro.active(job):
        return _micro_program(ctx, job, parts, make_loss)
    case, api = job.case, job.target_api().api
    students = {name: _student(job, ctx.rank, ctx.device, part) for name, part in parts.items()}
    probs = {name: _teacher_probs(job, api, ctx.rank, ctx.device, part)
             for name, part in parts.items()}
    loss = make_loss(api, case, **group_kwargs())(
        *[tensor for name in parts for tensor in (students[name], probs[name])])
    loss.backward()
    return {"loss": float(loss.detach().float().item()), "grads": _grads(students)}


def _micro_program(ctx: RankContext, job: Job, parts: dict[str, Part],
                   make_loss: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """One optimizer step in micro-batches: the step's teacher once, then per micro-batch
    the loss and its backward; the local loss is their sum (:mod:`._micro`)."""
    from ..checks.job import group_kwargs  # torch: on the ranks only

    case, api = job.case, job.target_api().api
    loss = make_loss(api, case, **group_kwargs())
    weighs = _micro.target_weighs(loss)
    sizes = {name: _micro.sizes(job, part.count)[ctx.rank] for name, part in parts.items()}
    students = {name: _student(job, ctx.rank, ctx.device, part) for name, part in parts.items()}
    # A target that weighs its micro-batches itself; else the loop does, one scale each
    # (one term: the kind skips a loss of several terms that cannot weigh them).
    shares = [1.0] * len(next(iter(sizes.values()))) if weighs else \
        _micro.shares(job, next(iter(parts.values())).count, ctx.rank)
    total = 0.0
    with loss.micro_batches(*sizes.values()) if weighs else nullcontext():
        pieces = {}
        for name, part in parts.items():
            probs = _teacher_probs(job, api, ctx.rank, ctx.device, part,
                                   loss if weighs and part.loss_sinkhorn else None)
            axis = case.sample_axis(part.student)
            pieces[name] = list(zip(_micro.cut(students[name], sizes[name], axis),
                                    _micro.cut(probs, sizes[name], axis), strict=True))
        for m, share in enumerate(shares):
            value = loss(*[tensor for name in parts for tensor in pieces[name][m]]) * share
            value.backward()
            total += float(value.detach().float().item())
    return {"loss": total, "grads": _grads(students)}


def _grads(students: dict[str, Any]) -> dict[str, np.ndarray]:
    from ..checks.job import to_host

    return {name: to_host(leaf.grad) if leaf.grad is not None else np.zeros(leaf.shape)
            for name, leaf in students.items()}


def _inputs(job: Job, parts: dict[str, Part]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(student logits, teacher probs) of every part on the global batch, float64: the
    values the target sees, teacher probs as the oracle normalises them."""
    from ..checks.job import quantised  # torch

    case, data = job.case, job.data()
    arrays = {}
    for name, part in parts.items():
        student = quantised(data[part.student], case.student_dtype)
        logits = quantised(data[part.teacher], case.teacher_dtype)
        if case.teacher_norm == "softmax":
            teacher = golden.softmax(logits / case.teacher_temp)
        else:
            rows = logits.reshape(-1, logits.shape[-1])
            teacher = golden.sinkhorn(rows, case.teacher_temp, case.n_iterations).reshape(logits.shape)
        arrays[name] = (student, teacher)
    return arrays


def _expected(job: Job, target: Target, parts: dict[str, Part],
              arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict[str, np.ndarray]]:
    case = job.case
    loss, grads = 0.0, {}
    if "cls" in arrays:
        cls_loss, cls_grad = oracle.cls_loss(*arrays["cls"], case.student_temp, target.semantics)
        weight = parts["cls"].weight(case)
        loss, grads["cls"] = loss + weight * cls_loss, weight * cls_grad
    if "patch" in arrays:
        weight = parts["patch"].weight(case)
        loss += weight * golden.ibot_loss(*arrays["patch"], case.student_temp)
        grads["patch"] = weight * golden.ibot_loss_grad(*arrays["patch"], case.student_temp)
    return loss, grads


def _diagnosis(job: Job, target: Target, parts: dict[str, Part], ranks: list[dict], single: dict,
               arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> Diagnosis:
    """Which known loss mistake gives every rank's local loss and gradients (and the one
    process's): the models run on the same shards, in the target's own CLS reduction."""
    from ..checks.job import quantised  # torch

    case, world = job.case, job.size
    tol_loss, tol_grad = job.tolerance("loss"), job.tolerance("grad")
    # The teacher probs are the target's own Sinkhorn of each rank's rows: its mistakes
    # show in the loss too, alone or with a loss mistake.
    sinkhorn = case.teacher_norm == "sinkhorn"

    def sinkhorn_of(logits: list[np.ndarray], flaws: sharded.Flaws) -> list[np.ndarray]:
        """Every rank's Sinkhorn of its ``logits`` (all ranks together), shapes kept."""
        rows = sharded.sinkhorn([x.reshape(-1, x.shape[-1]) for x in logits],
                                case.teacher_temp, case.n_iterations, flaws)
        return [q.reshape(x.shape) for q, x in zip(rows, logits, strict=True)]

    def local(flaws: sharded.Flaws, whole: bool, scope: Job = job,
              inputs: dict[str, tuple[np.ndarray, np.ndarray]] = arrays
              ) -> list[tuple[float, dict[str, np.ndarray]]]:
        out: list[tuple[float, dict[str, np.ndarray]]] = []
        for name, part in parts.items():
            sizes = [sum(scope.counts(part.student))] if whole else scope.counts(part.student)
            micro = [sizes] if whole else _micro.scope_sizes(scope, part.count)
            axis = case.sample_axis(part.student)
            student, teacher = ([shard(a, sizes, r, axis) for r in range(len(sizes))]
                                for a in inputs[name])

            def pieces(per_rank: list[np.ndarray], m: int, micro: list[list[int]] = micro,
                       axis: int = axis) -> list[np.ndarray]:
                """Micro-batch m of every rank's rows."""
                return [_micro.cut(x, micro[r], axis)[m] for r, x in enumerate(per_rank)]

            n_micro = range(len(micro[0]))
            if sinkhorn and flaws != sharded.CORRECT:  # each rank's own (flawed) Sinkhorn
                # quantised once, not once per rank: W global copies filled 17 GB at 64 ranks
                rows = quantised(scope.data()[part.teacher], case.teacher_dtype)
                logits = [shard(rows, sizes, r, axis) for r in range(len(sizes))]
                # each micro-batch's rows alone: where the loss's own Sinkhorn normalises them
                if flaws.sinkhorn_scope == "micro_batch" and part.loss_sinkhorn:
                    alone = [sinkhorn_of(pieces(logits, m), flaws) for m in n_micro]
                    teacher = [np.concatenate([q[r] for q in alone], axis=axis)
                               for r in range(len(sizes))]
                else:
                    teacher = sinkhorn_of(logits, flaws)
            if name == "cls":
                per_micro = [sharded.cls_local(pieces(student, m), pieces(teacher, m),
                                               case.student_temp, flaws,
                                               reduction=target.semantics.cls_reduction)
                             for m in n_micro]
            else:
                per_micro = [sharded.ibot_local(pieces(student, m), pieces(teacher, m),
                                                case.student_temp, flaws) for m in n_micro]
            per_rank = sharded.accumulated(per_micro, sharded.micro_weights(micro, flaws), axis)
            weight = part.weight(case)
            if not out:
                out = [(0.0, {}) for _ in per_rank]
            out = [(loss + weight * part_loss, {**grads, name: weight * grad})
                   for (loss, grads), (part_loss, grad) in zip(out, per_rank, strict=True)]
        return out

    def flat(loss: float, grads: dict[str, Any], scale: float) -> list[Any]:
        return [loss, *(grads[name] / scale for name in parts)]

    tolerances = [tol_loss, *(tol_grad for _ in parts)]
    observed = [(value, tol) for out, scale in [*((r, world) for r in ranks), (single, 1)]
                for value, tol in zip(flat(out["loss"], out["grads"], scale), tolerances,
                                      strict=True)]

    def predict(flaws: sharded.Flaws) -> list[Any]:
        scope, pick = modelled_world(job, flaws)
        dist = local(flaws, False, scope, arrays if scope is job else _inputs(scope, parts))[pick]
        rows = [*((r, world) for r in dist), (local(flaws, True)[0], 1)]
        return [value for (loss, grads), scale in rows for value in flat(loss, grads, scale)]

    return explain("loss", observed, predict, upstream=("sinkhorn",) if sinkhorn else ())


def _verify(job: Job, target: Target, ranks: list[dict], single: dict,
            parts: dict[str, Part]) -> list[Any]:
    case, world = job.case, job.size
    checks = Checks()
    tol_loss, tol_grad = job.tolerance("loss"), job.tolerance("grad")
    mean_loss = float(np.mean([r["loss"] for r in ranks]))
    checks.add("loss", "dist_vs_single", mean_loss, single["loss"], tol_loss,
               detail="mean over ranks of the local losses")
    for name, part in parts.items():
        sizes = job.counts(part.student)
        axis = case.sample_axis(part.student)
        for rank, out in enumerate(ranks):
            checks.add(f"grad_{name}", "dist_vs_single", out["grads"][name] / world,
                       shard(single["grads"][name], sizes, rank, axis), tol_grad, rank=rank,
                       detail="grad(local loss) / world_size vs the rank's slice")
    arrays = _inputs(job, parts)
    loss, grads = _expected(job, target, parts, arrays)
    checks.add("loss", "single_vs_oracle", single["loss"], loss, tol_loss)
    for name, grad in grads.items():
        checks.add(f"grad_{name}", "single_vs_oracle", single["grads"][name], grad, tol_grad)
    if checks.failed_any():
        checks.diagnose(_diagnosis(job, target, parts, ranks, single, arrays))
    return checks.result()
