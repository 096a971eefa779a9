"""A small but real DINO training step on every rank, k times: the end-to-end proof that
the analytic gradient rule is what ``DistributedDataParallel`` does.

Every rank builds the same model from the case seed (:mod:`._step_model`: a student with
a CLS head and, with iBOT, a patch head, and its EMA teacher), wraps the student in a
real ``DistributedDataParallel`` (gloo; NCCL on GPUs), and runs ``steps`` optimizer steps
of a step function -- the reference (:func:`harness.losses.step.dino_step`) or the user's
(``--step FILE.py:function``, or ``DINO_HARNESS_STEP`` in the target) -- over its shard of
each step's global batch: multi-crop views (``views_teacher`` global crops, the rest
local), masked tokens for iBOT, the target's DINO + iBOT (+ KoLeo) losses through its
style. One process runs the same steps on the whole batch without DDP.

Checked after every step: student and teacher weights, both centers and the losses --
ranks bit for bit against each other (DDP all-reduces the gradients, the centers are
all-reduced), N ranks against one process, one process against the float64 step
(:mod:`harness.golden.step`, its backward written out by hand), within tolerances derived
from the step's reductions; and the seed's timing contract: every ``update_center`` of a
step is issued before the step's first gradient all-reduce (the DDP communication hook
logs them), so its all-reduce hides behind the backward. A failure asks the step's models
-- the caller's mistakes and the losses' -- which one gives these numbers and this order.

Micro-batches (the ``micro_batches`` key, cut as every kind cuts them:
:mod:`harness.kinds._micro`): a rank's samples and masked tokens of a step are split into
the same number of consecutive micro-batches, and the step function gets them as a list;
the one process gets its whole batch as one.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cases import shard
from ..cases.kind import Kind, Tensor
from ..cases.validate import Bad
from ..checks.collect import Checks
from ..checks.diagnose import Diagnosis, explain
from ..golden import sharded
from ..golden import step as golden_step
from . import _micro

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target

CROPS, MASKED_STUDENT, MASKED_TEACHER = "crops", "masked_student", "masked_teacher"
#: The loss terms a step function may return beside ``loss``, each checked where returned.
TERMS = golden_step.TERMS
#: The check of the timing contract, per rank and step.
OVERLAP = "center_update_overlap"


#: ``[rank]``: its micro-batch sizes of (samples, masked tokens).
MicroSizes = tuple[list[list[int]], list[list[int]]]


def micro_sizes(job: Job) -> MicroSizes:
    """Every rank's micro-batch sizes of its samples and of its masked tokens; one
    micro-batch of the whole batch in the one-process run (the golden)."""
    if job.mode == "single":
        return [[sum(job.counts(CROPS))]], [[sum(job.counts(MASKED_STUDENT))]]
    return _micro.sizes(job, _micro.SAMPLES), _micro.sizes(job, _micro.MASKED)


def step_config(case: Any, semantics: Any) -> golden_step.StepConfig:
    return golden_step.StepConfig(
        global_crops=case.views_teacher, student_temp=case.student_temp,
        teacher_temp=case.teacher_temp, center_momentum=case.momentum,
        ema_momentum=case.ema_momentum, lr=case.lr, dino_weight=case.dino_weight,
        ibot_weight=case.ibot_weight, koleo_weight=case.koleo_weight,
        center_init=semantics.center_init, cls_reduction=semantics.cls_reduction)


# ------------------------------------------------------------------------------ the ranks
def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    import torch

    from ..checks.job import to_host
    from ..losses.step import Modules, StepState
    from ..runtime import collective_log
    from ._step_model import Heads

    case, target = job.case, job.target_api()
    config = step_config(case, target.semantics)
    model = Heads(golden_step.initial_params(case.seed, case.K, config.heads), ctx.device)
    teacher = copy.deepcopy(model).requires_grad_(False)
    events: list[str] = []
    student: Any = model
    if job.mode == "dist":
        student = _ddp(model, ctx.device, events)
    optimizer = torch.optim.SGD(model.parameters(), lr=case.lr)
    losses = _losses(target.api, case, events)
    step = _step_function(target)
    data = {name: job.shard(name, ctx.rank) for name in (CROPS, MASKED_STUDENT, MASKED_TEACHER)}
    rows, tokens = micro_sizes(job)
    out: dict[str, list[Any]] = {"student": [], "teacher": [], "centers": [], "losses": [],
                                 "overlap": []}
    for k in range(case.steps):
        state = StepState(step=k, global_crops=case.views_teacher, teacher_temp=case.teacher_temp,
                          ema_momentum=case.ema_momentum, dino_weight=case.dino_weight,
                          ibot_weight=case.ibot_weight, koleo_weight=case.koleo_weight)
        first = len(events)
        with collective_log.step(f"step {k}"):
            returned = step(Modules(student, teacher), optimizer,
                            _batch(data, k, rows[ctx.rank], tokens[ctx.rank], ctx.device),
                            losses, state)
        out["losses"].append(_returned(returned))
        out["student"].append(model.weights())
        out["teacher"].append(teacher.weights())
        out["centers"].append(_centers(losses, to_host))
        if job.mode == "dist":
            out["overlap"].append(_overlap(events[first:], losses))
    with collective_log.step("apply_center_update"):
        for loss in (losses.dino, losses.patch_center):
            if loss is not None and hasattr(loss, "apply_center_update"):
                loss.apply_center_update()
    out["centers"].append(_centers(losses, to_host))
    return out


def _ddp(model: Any, device: Any, events: list[str]) -> Any:
    """The student in a real ``DistributedDataParallel`` whose communication hook (DDP's
    default all-reduce) first writes each gradient all-reduce to ``events``."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    def logged(state, bucket):  # type: ignore[no-untyped-def] - DDP checks the annotations
        events.append("grad_all_reduce")
        return default_hooks.allreduce_hook(state, bucket)

    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                  else None, broadcast_buffers=False)
    ddp.register_comm_hook(None, logged)
    return ddp


class _Logged:
    """A loss whose ``update_center`` calls go to the rank's event log, ``update:HEAD``."""

    def __init__(self, inner: Any, head: str, events: list[str]) -> None:
        self._inner, self._head, self._events = inner, head, events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner(*args, **kwargs)

    def update_center(self, *args: Any, **kwargs: Any) -> Any:
        self._events.append(f"update:{self._head}")
        return self._inner.update_center(*args, **kwargs)


def _losses(api: Any, case: Any, events: list[str]) -> Any:
    """The target's losses the step needs, through its style (seed API)."""
    from ..losses.step import Losses

    dino = api.DINOv1Loss(temperature_student=case.student_temp, center_momentum=case.momentum)
    ibot = patch_center = koleo = None
    if case.ibot_weight:
        ibot = api.iBOTPatchLoss(student_temp=case.student_temp)
        patch_center = _Logged(api.iBOTPatchCenter(center_momentum=case.momentum), "patch",
                               events)
    if case.koleo_weight:
        koleo = api.KoLeoLoss(topk=1)
    return Losses(_Logged(dino, "dino", events), ibot, patch_center, koleo)


def _step_function(target: Any) -> Any:
    from ..losses.step import dino_step

    return target.step or dino_step


def _batch(data: dict[str, np.ndarray], k: int, rows: list[int], tokens: list[int],
           device: Any) -> list[Any]:
    """This rank's micro-batches of step ``k`` (``rows``/``tokens``: their sizes), float32
    on its device."""
    from ..checks.job import to_torch
    from ..losses.step import MicroBatch

    crops, ms, mt = data[CROPS][k], data[MASKED_STUDENT][k], data[MASKED_TEACHER][k]
    return [MicroBatch(to_torch(shard(crops, rows, j, 1), "float32", device),
                       to_torch(shard(ms, tokens, j, 0), "float32", device),
                       to_torch(shard(mt, tokens, j, 0), "float32", device))
            for j in range(len(rows))]


def _returned(returned: Any) -> dict[str, float]:
    """The step function's local losses as floats: ``loss`` and the terms it returned."""
    if not isinstance(returned, Mapping) or "loss" not in returned:
        raise TypeError("a step function returns a mapping with at least 'loss' (the local "
                        f"loss it backpropagated), got {type(returned).__name__}"
                        + (f" with keys {sorted(returned)}" if isinstance(returned, Mapping) else ""))
    return {name: float(value) for name, value in returned.items()
            if name == "loss" or name in TERMS}


def _centers(losses: Any, to_host: Any) -> dict[str, Any]:
    out = {}
    for name, loss in (("dino", losses.dino), ("patch", losses.patch_center)):
        if loss is not None:
            center = loss.center
            out[name] = None if center is None else to_host(center).reshape(-1)
    return out


def _overlap(events: list[str], losses: Any) -> dict[str, bool]:
    """Per centered head: was its every ``update_center`` of the step issued before the
    step's first gradient all-reduce (and was there one)?"""
    first = events.index("grad_all_reduce") if "grad_all_reduce" in events else len(events)
    heads = ["dino", *(["patch"] if losses.patch_center is not None else [])]
    return {head: f"update:{head}" in events and all(
        i < first for i, event in enumerate(events) if event == f"update:{head}")
        for head in heads}


# ---------------------------------------------------------------------------- the verdict
def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    case = job.case
    config = step_config(case, target.semantics)
    expected = _simulate(job, config, sharded.CORRECT, whole=True)
    tol = _tolerances(job, target.semantics)
    checks = Checks()
    for k in range(case.steps):
        where = f"after step {k}"
        for which in ("student", "teacher"):
            name = f"{which}_weights"
            for param in single[which][k]:
                detail = f"{where}, {param}"
                checks.agree(name, [r[which][k][param] for r in ranks], detail=detail)
                for rank, out in enumerate(ranks):
                    checks.add(name, "dist_vs_single", out[which][k][param],
                               single[which][k][param], tol["weights"], rank=rank, detail=detail)
                checks.add(name, "single_vs_oracle", single[which][k][param],
                           getattr(expected, which)[k][param], tol["weights"], detail=detail)
        for term in single["losses"][k]:
            name = "loss" if term == "loss" else f"loss_{term}"
            values = [r["losses"][k].get(term) for r in ranks]
            mean = None if None in values else float(np.mean(values))
            checks.add(name, "dist_vs_single", mean, single["losses"][k][term], tol["loss"],
                       detail=f"step {k}: mean over ranks of the local losses")
            checks.add(name, "single_vs_oracle", single["losses"][k][term],
                       expected.losses[0][k][term], tol["loss"], detail=f"step {k}")
    for k in range(case.steps + 1):
        where = f"step {k}" if k < case.steps else "after the last apply"
        for head in config.centers:
            name = "center" if head == "dino" else "patch_center"
            checks.agree(name, [r["centers"][k].get(head) for r in ranks], detail=where)
            for rank, out in enumerate(ranks):
                checks.add(name, "dist_vs_single", out["centers"][k].get(head),
                           single["centers"][k].get(head), tol["center"], rank=rank, detail=where)
            checks.add(name, "single_vs_oracle", single["centers"][k].get(head),
                       expected.centers[0][k][head], tol["center"], detail=where)
    for rank, out in enumerate(ranks):
        late = [f"step {k} {head}" for k, heads in enumerate(out["overlap"])
                for head, issued in heads.items() if not issued]
        checks.expect(OVERLAP, not late, "every update_center issued before the step's first "
                      "gradient all-reduce" if not late else "issued after the step's gradient "
                      f"all-reduces began (or never): {', '.join(late)}", rank=rank,
                      category="distributed")
    if checks.failed_any():
        checks.diagnose(_diagnosis(job, config, ranks, single, tol))
    return checks.result()


def _tolerances(job: Job, semantics: Any) -> dict[str, float]:
    """The case's tolerances, each raised to SPREAD_FACTOR x the float32 spread of the
    target's own float64 model where that is larger: a loss that sums its view pairs
    (DINOv2's) takes steps n_pairs times the mean's, where rounding grows faster -- a
    correct DINOv2 step at lr 0.1 drifted 7e-5 from its model in 3 steps, 7 x the seed
    model's rule; its own model spreads 1.8e-6 there, 23 x the seed's."""
    from ..cases.tolerances import Tolerance, at_least_spread

    out: dict[str, float] = {}
    for quantity in ("weights", "center", "loss"):
        tol = job.tolerance(quantity)
        value, rule = at_least_spread(
            tol, tol.rule, _spreads(job.case, job.world_size, semantics).get(quantity, 0.0),
            f"target's float64 model ({semantics.cls_reduction})", job.world_size)
        out[quantity] = tol if value == tol else Tolerance(value, f"{rule} = {value:.3g}")
    return out


def rounding_spread(case: Any, quantity: str, world_size: int) -> float:
    """How far the float64 step on the whole batch moves ``quantity`` when its weights are
    held in float32 after every update (``tolerances.py``: the tolerance grows with it);
    with the seed's semantics here, where no target is known (a target's own: the verdict's
    :func:`_tolerances`)."""
    from ..semantics import Semantics

    return _spreads(case, world_size, Semantics()).get(quantity, 0.0)


@functools.lru_cache(maxsize=32)
def _spreads(case: Any, world_size: int, semantics: Any) -> dict[str, float]:
    config = step_config(case, semantics)
    params = golden_step.initial_params(case.seed, case.K, config.heads)
    batches = _one_process(case, case.global_data(world_size), sum(case.batch_sizes(world_size)),
                           sum(case.masked_counts(world_size)))
    exact = golden_step.simulate(config, params, batches)
    held = golden_step.simulate(config, params, batches, held_in_float32=True)
    weights = max(_apart(a[p], b[p]) for k in range(case.steps)
                  for a, b in ((exact.student[k], held.student[k]),
                               (exact.teacher[k], held.teacher[k])) for p in a)
    centers = max((_apart(a[c], b[c]) for a, b in zip(exact.centers[0], held.centers[0],
                                                      strict=True)
                   for c in config.centers if a[c] is not None and b[c] is not None),
                  default=0.0)
    loss = max(_apart(a[t], b[t]) for a, b in zip(exact.losses[0], held.losses[0], strict=True)
               for t in a)
    return {"weights": weights, "center": centers, "loss": loss}


def _apart(a: Any, b: Any) -> float:
    """The largest difference as the checks measure it: ``|a - b| / max(1, |a|)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float((np.abs(a - b) / np.maximum(1.0, np.abs(a))).max(initial=0.0))


def _job_batches(job: Job, whole: bool) -> list[list[list[golden_step.MicroData]]]:
    """The job's inputs, as the ranks split them, or (``whole``) as the one process has them."""
    rows, tokens = job.counts(CROPS), job.counts(MASKED_STUDENT)
    if whole:
        return _one_process(job.case, job.data(), sum(rows), sum(tokens))
    return _batches(job.case, job.data(), rows, tokens, micro_sizes(job))


def _one_process(case: Any, data: Mapping[str, np.ndarray], rows: int, tokens: int
                 ) -> list[list[list[golden_step.MicroData]]]:
    """The whole batch as one rank's one micro-batch a step."""
    return _batches(case, data, [rows], [tokens], ([[rows]], [[tokens]]))


def _batches(case: Any, data: Mapping[str, np.ndarray], rows: list[int], tokens: list[int],
             micro: MicroSizes) -> list[list[list[golden_step.MicroData]]]:
    """``[rank][step][micro]`` float64 inputs: each rank's shard (``rows`` samples and
    ``tokens`` masked tokens per rank) split into micro-batches of ``micro``'s sizes as the
    ranks split them (one rank of one micro-batch: the one process)."""
    out = []
    for rank in range(len(rows)):
        per_step = []
        for k in range(case.steps):
            crops = shard(data[CROPS][k], rows, rank, 1)
            ms = shard(data[MASKED_STUDENT][k], tokens, rank, 0)
            mt = shard(data[MASKED_TEACHER][k], tokens, rank, 0)
            r, t = micro[0][rank], micro[1][rank]
            per_step.append([golden_step.MicroData(shard(crops, r, j, 1), shard(ms, t, j, 0),
                                                   shard(mt, t, j, 0)) for j in range(len(r))])
        out.append(per_step)
    return out


def _simulate(job: Job, config: golden_step.StepConfig, flaws: sharded.Flaws, *,
              whole: bool) -> golden_step.Trajectory:
    params = golden_step.initial_params(job.case.seed, job.case.K, config.heads)
    return golden_step.simulate(config, params, _job_batches(job, whole), flaws)


def _observed(trajectory_or_out: Any, rank: int | None, k: int, tol: dict[str, float],
              centers: tuple[str, ...], terms: Iterable[str]) -> list[tuple[Any, float]]:
    """One rank's numbers of step ``k`` (the rank program's output, ``rank`` None, or a
    model's trajectory at ``rank``), in one order, each with its tolerance."""
    if rank is None:
        out = trajectory_or_out
        student, teacher = out["student"][k], out["teacher"][k]
        losses, used = out["losses"][k], out["centers"][k]
    else:
        t = trajectory_or_out
        student, teacher = t.student[k], t.teacher[k]
        losses, used = t.losses[rank][k], t.centers[rank][k]
    values: list[tuple[Any, float]] = [(student[p], tol["weights"]) for p in sorted(student)]
    values += [(teacher[p], tol["weights"]) for p in sorted(teacher)]
    values += [(used.get(c), tol["center"]) for c in centers]
    values += [(losses.get(term), tol["loss"]) for term in terms]
    return values


def _diagnosis(job: Job, config: golden_step.StepConfig, ranks: list[dict], single: dict,
               tol: dict[str, float]) -> Diagnosis:
    """Which known mistake -- the caller's (``step``) or the losses' and centers' -- gives
    every rank's weights, centers, losses and update order, and the one process's."""
    steps, heads = job.case.steps, config.centers
    terms = [t for t in ("loss", *TERMS) if t in single["losses"][0]]
    observed: list[tuple[Any, float]] = []
    for out in [*ranks, single]:
        for k in range(steps):
            observed += _observed(out, None, k, tol, heads, terms)
    for out in ranks:
        observed += [(float(out["overlap"][k][h]), 0.0) for k in range(steps) for h in heads]

    def predict(flaws: sharded.Flaws) -> list[Any]:
        dist = _simulate(job, config, flaws, whole=False)
        one = _simulate(job, config, flaws, whole=True)
        values = [value for rank in range(len(ranks)) for k in range(steps)
                  for value, _ in _observed(dist, rank, k, tol, heads, terms)]
        values += [value for k in range(steps) for value, _ in _observed(one, 0, k, tol, heads, terms)]
        values += [float(dist.overlap[rank][k][h]) for rank in range(len(ranks))
                   for k in range(steps) for h in heads]
        return values

    found = explain("step", observed, predict, upstream=("center", "loss", "koleo"))
    if found.matches or found.as_correct:
        return found
    # Two mistakes of the losses at once (DINOv2's center divisor and its CLS loss's local
    # batch): a center mistake with a loss mistake.
    return explain("center", observed, predict, upstream=("loss", "koleo"))


# ---------------------------------------------------------------------------- the schema
def _lead(case: Any) -> tuple[int, ...]:
    return (case.steps, case.views_student)


def _per_step(case: Any) -> tuple[int, ...]:
    return (case.steps,)


#: The largest K a step case may ask: its heads hold 2 K x K weights each, and the float64
#: step runs once per known mistake to diagnose a failure.
MAX_K = 1024


def check(values: dict[str, Any], explicit: dict[str, Any]) -> None:
    """The heads fit, the step's views pair up, and KoLeo's neighbour set is the step's
    whole batch."""
    if values["K"] > MAX_K:
        raise Bad("K", f"expected K <= {MAX_K} in a step case (K is the width of its K x K "
                  f"heads), got {values['K']}")
    s, t = values["views_student"], values["views_teacher"]
    if t > s:
        raise Bad("views_teacher", f"expected at most views_student = {s} global crops (the "
                  f"teacher's views are the student's first ones), got {t}")
    if s * t - min(s, t) == 0:
        raise Bad("views_student", "expected a (student, teacher) view pair of different crops, "
                  f"got views_student = {s} and views_teacher = {t}")
    if values["koleo_weight"] and values["micro_batches"] != 1:
        raise Bad("koleo_weight", "expected no KoLeo with micro_batches > 1: its neighbours "
                  "would be a micro-batch's, which one process on the whole batch cannot be")


def calls_missing(case: Any, api: Any) -> list[str]:
    """The losses a step case needs beyond the CLS loss, and what a style cannot do."""
    from ..styles._wrappers import ForwardCentered

    missing = []
    if isinstance(api.DINOv1Loss, type) and issubclass(api.DINOv1Loss, ForwardCentered):
        missing.append("a CLS loss whose center is updated by update_center alone (this one "
                       "updates it inside forward too)")
    if case.ibot_weight:
        missing += [f"iBOT ({name})" for name in ("iBOTPatchLoss", "iBOTPatchCenter")
                    if not hasattr(api, name)]
    if case.koleo_weight:
        koleo = getattr(api, "KoLeoLoss", None)
        why = getattr(koleo, "koleo_limits", {}).get("step")
        if koleo is None or why:
            missing.append(f"KoLeo (KoLeoLoss{': ' + why if why else ''})")
    return missing


KIND = Kind(
    name="step",
    order=5,
    keys=frozenset({"views_student", "views_teacher", "batch_per_rank", "masked_per_rank",
                    "steps", "momentum", "student_temp", "dino_weight", "ibot_weight",
                    "koleo_weight", "ema_momentum", "lr", "micro_batches"}),
    tensors={CROPS: Tensor(8, "batch", "student", _lead),
             MASKED_STUDENT: Tensor(9, "masked", "student", _per_step),
             MASKED_TEACHER: Tensor(10, "masked", "teacher", _per_step)},
    needs=("DINOv1Loss",),
    rank_program=rank_program,
    verify=verify,
    check=check,
    calls_missing=calls_missing,
    rounding_spread=rounding_spread,
    micro_counts=lambda case, world: {_micro.SAMPLES: case.shard_sizes(CROPS, world),
                                      _micro.MASKED: case.shard_sizes(MASKED_STUDENT, world)},
)
