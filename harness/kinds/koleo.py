"""KoLeo, the regulariser DINOv2 and DINOv3 add to spread the student's features: its
value and gradient on N ranks against one process and the float64 oracle.

The target's seed-API ``KoLeoLoss(topk=1, group_size=None)`` takes each rank's
``[B_r, D]`` features (``D`` is the case's ``K``); the case key ``koleo_topk`` is ``topk``,
``koleo_group_size`` the group size. What "the same on one process" means depends on where
the code looks for neighbours, which its style states (``Semantics.koleo_neighbours``):

* ``global`` (the reference, DINOv3's ``KoLeoLossDistributed``): neighbours among every
  rank's samples, or within groups of ``group_size`` consecutive global samples. One
  process runs the target on each group's samples alone (a group is all a process sees:
  DINOv3 refuses a group smaller than its own batch) and weighs group g by ``n_g / N``:
  the global mean. The DDP rule then holds as for the other losses: the mean over ranks
  of the local losses is that loss and ``grad / W`` the rank's slice of its gradient.
* ``rank`` (DINOv2's ``KoLeoLoss``, by design): neighbours in the rank's own batch only,
  no collective, so N ranks are N regularisers and differ from one process on the
  concatenation -- that is not a bug. One process runs the target on each rank's shard
  alone and weighs each by ``1 / W`` (what DDP's average of the ranks' gradients
  optimises); each rank's loss must also equal its shard's.

A case a style's KoLeo cannot express (a topk, groups, local batches DINOv3 refuses, a
rank without a neighbour of its own) is skipped with the style's reason: its face class
lists them in ``koleo_limits``. A failed check of a ``global`` target asks the models of
the known KoLeo mistakes (``harness.golden.sharded.koleo_local``) which one it is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cases import shard
from ..cases.kind import Kind, Tensor
from ..cases.sharding import per_rank, shard_range
from ..cases.validate import Bad
from ..checks.collect import Checks
from ..checks.diagnose import Diagnosis, explain
from ..golden import koleo as oracle
from ..golden import sharded

if TYPE_CHECKING:
    from ..checks.job import Job
    from ..runtime import RankContext
    from ..targets import Target

FEATURES = "student_features"
#: The seed-API name: ``KoLeoLoss(topk=1, group_size=None)``, ``forward(x [B, D])``.
LOSS = "KoLeoLoss"
#: What a case may ask of a KoLeo that some code cannot do; a style's face class maps the
#: ones it cannot to why (``koleo_limits``), and such a case is skipped with that reason.
FEATURE_TEXT = {
    "topk": "koleo_topk > 1",
    "groups": "koleo_group_size",
    "uneven": "local batches that differ, or groups that are not whole ranks' batches",
    "small_rank": "a rank with fewer than koleo_topk + 1 samples",
}


def features(case: Any) -> list[str]:
    """The :data:`FEATURE_TEXT` entries ``case`` needs at one of its world sizes."""
    needed = {"topk": case.koleo_topk > 1, "groups": case.koleo_group_size is not None,
              "uneven": not all(_aligned(case, w) for w in case.world_sizes),
              "small_rank": any(min(case.batch_sizes(w)) < case.koleo_topk + 1
                                for w in case.world_sizes)}
    return [name for name, needs in needed.items() if needs]


def _aligned(case: Any, world_size: int) -> bool:
    """Equal non-empty local batches, each neighbour set whole ranks, the batch whole sets."""
    sizes = case.batch_sizes(world_size)
    size = case.koleo_group_size or sum(sizes)
    return sizes[0] > 0 and len(set(sizes)) == 1 and size % sizes[0] == 0 and sum(sizes) % size == 0


def calls_missing(case: Any, api: Any) -> list[str]:
    limits = getattr(getattr(api, LOSS), "koleo_limits", {})
    return [f"{FEATURE_TEXT[name]} ({limits[name]})" for name in features(case) if name in limits]


def neighbour_sets(case: Any, world_size: int, scope: str) -> list[tuple[range, float]]:
    """What one process runs the target on, alone, and each one's weight (module doc)."""
    sizes = case.batch_sizes(world_size)
    if scope == "rank":
        return [(shard_range(sizes, rank), 1.0 / world_size) for rank in range(world_size)]
    total = sum(sizes)
    return [(s, len(s) / total) for s in oracle.neighbour_sets(total, case.koleo_group_size)]


def rank_program(ctx: RankContext, job: Job) -> dict[str, Any]:
    from ..checks.job import to_host, to_torch  # torch: on the ranks only

    case, target = job.case, job.target_api()
    loss_cls = getattr(target.api, LOSS)
    x = to_torch(job.shard(FEATURES, ctx.rank), "float32", ctx.device).requires_grad_(True)
    if job.mode == "dist":
        losses = [loss_cls(topk=case.koleo_topk, group_size=case.koleo_group_size)(x)]
        loss = losses[0]
    else:
        module = loss_cls(topk=case.koleo_topk)
        sets = neighbour_sets(case, job.world_size, target.semantics.koleo_neighbours)
        losses = [module(x[s.start:s.stop]) for s, _ in sets]
        loss = sum(weight * part for (_, weight), part in zip(sets, losses, strict=True))
    loss.backward()
    grad = to_host(x.grad) if x.grad is not None else np.zeros(tuple(x.shape))
    return {"loss": float(loss.detach().item()), "grad": grad,
            "losses": [float(part.detach().item()) for part in losses]}


def expected(case: Any, x: np.ndarray, world_size: int, scope: str) -> tuple[float, np.ndarray]:
    """The float64 single-process (loss, gradient) in the style's neighbour semantics."""
    if scope == "global":
        return (oracle.koleo_loss(x, case.koleo_topk, case.koleo_group_size),
                oracle.koleo_loss_grad(x, case.koleo_topk, case.koleo_group_size))
    loss, grad = 0.0, np.zeros_like(x)
    for rows, weight in neighbour_sets(case, world_size, scope):
        part = x[rows.start:rows.stop]
        loss += weight * oracle.koleo_loss(part, case.koleo_topk)
        grad[rows.start:rows.stop] = weight * oracle.koleo_loss_grad(part, case.koleo_topk)
    return loss, grad


def verify(job: Job, target: Target, ranks: list[dict], single: dict) -> list[Any]:
    case, world = job.case, job.world_size
    scope = target.semantics.koleo_neighbours
    sizes = case.batch_sizes(world)
    tol_loss, tol_grad = job.tolerance("loss"), job.tolerance("grad")
    checks = Checks()
    checks.add("loss", "dist_vs_single", float(np.mean([r["loss"] for r in ranks])),
               single["loss"], tol_loss, detail="mean over ranks of the local losses")
    for rank, out in enumerate(ranks):
        if scope == "rank":
            checks.add("loss", "dist_vs_single", out["loss"], single["losses"][rank], tol_loss,
                       rank=rank, detail="the rank's loss vs the target on its shard alone "
                       "(per-rank neighbours)")
        checks.add("grad", "dist_vs_single", out["grad"] / world,
                   shard(single["grad"], sizes, rank, 0), tol_grad, rank=rank,
                   detail="grad(local loss) / world_size vs the rank's slice")
    x = job.data()[FEATURES]
    loss, grad = expected(case, x, world, scope)
    checks.add("loss", "single_vs_oracle", single["loss"], loss, tol_loss)
    checks.add("grad", "single_vs_oracle", single["grad"], grad, tol_grad)
    if checks.failed_any() and scope == "global":  # the models are of a global KoLeo
        checks.diagnose(_diagnosis(job, x, ranks, single))
    return checks.result()


def _diagnosis(job: Job, x: np.ndarray, ranks: list[dict], single: dict) -> Diagnosis:
    """Which known KoLeo mistake gives every rank's loss and gradient, and the one
    process's (which runs each group alone: one shard, where no switch changes anything).

    A sample that a model pairs with itself (its self-match masked elsewhere) is at
    ``d = eps * sqrt(D)``: its two gradient halves, ~1 / (eps * D) each, cancel exactly in
    float64 but leave float32 rounding of a tenth of the gradient in the target's. The
    model predicts nothing for such a row (it takes the target's own); the losses, which
    carry ``-log(eps * sqrt(D) + eps)``, and every other row still have to match.
    """
    case, world = job.case, job.world_size
    k, group = case.koleo_topk, case.koleo_group_size
    sizes = case.batch_sizes(world)
    tol_loss, tol_grad = job.tolerance("loss"), job.tolerance("grad")
    observed = [pair for out, scale in [*((r, world) for r in ranks), (single, 1)]
                for pair in ((out["loss"], tol_loss), (out["grad"] / scale, tol_grad))]
    shards = [shard(x, sizes, rank, 0) for rank in range(world)]
    starts = np.cumsum([0, *sizes[:-1]])

    def predict(flaws: sharded.Flaws) -> list[Any]:
        out: list[Any] = []
        pairs = sharded.koleo_pairs(shards, k, group, flaws)
        alone = np.concatenate([p.queries[p.queries == p.neighbours] for p in pairs])
        for rank, (loss, grad) in enumerate(sharded.koleo_local(shards, k, group, flaws)):
            rows = alone[(alone >= starts[rank]) & (alone < starts[rank] + sizes[rank])]
            grad[rows - starts[rank]] = ranks[rank]["grad"][rows - starts[rank]]
            out += [loss, grad / world]
        loss, grad = 0.0, np.zeros_like(x)
        for rows, weight in neighbour_sets(case, world, "global"):
            part_loss, part_grad = sharded.koleo_local([x[rows.start:rows.stop]], k, None, flaws)[0]
            loss += weight * part_loss
            grad[rows.start:rows.stop] = weight * part_grad
        return [*out, loss, grad]

    return explain("koleo", observed, predict)


@functools.lru_cache(maxsize=64)
def _largest_grad(case: Any, world_size: int) -> float:
    x = case.global_data(world_size)[FEATURES]
    return float(np.abs(oracle.koleo_loss_grad(x, case.koleo_topk, case.koleo_group_size)).max())


def grad_bounds(case: Any) -> Iterable[float]:
    """The largest |gradient| of the global KoLeo on this case's data, per world size: it
    has no bound without the data (a close pair's gradient is ~1 / (distance * |x|)). A
    world size where the case asks for more neighbours than there are (an expected error)
    has none."""
    for world_size in case.world_sizes:
        try:
            yield _largest_grad(case, world_size)
        except ValueError:
            continue


def check(values: dict[str, Any], explicit: dict[str, Any]) -> None:
    """Every neighbour set holds ``koleo_topk + 1`` samples at every world size."""
    if values["expect_error"]:
        return  # the case asks the target to refuse what this rule would
    k, group = values["koleo_topk"], values["koleo_group_size"]
    for world_size in values["world_sizes"]:
        total = sum(per_rank(values["batch_per_rank"], world_size))
        smallest = min((len(s) for s in oracle.neighbour_sets(total, group)), default=0)
        if total and smallest < k + 1:
            raise Bad("koleo_group_size" if group and total >= k + 1 else "koleo_topk",
                      f"expected koleo_topk + 1 = {k + 1} samples in every neighbour set at every "
                      f"world size, got a set of {smallest} at world size {world_size} (global "
                      f"batch {total}, koleo_group_size {group or 'none'})")


KIND = Kind(
    name="koleo",
    order=4,
    keys=frozenset({"batch_per_rank", "koleo_topk", "koleo_group_size"}),
    tensors={FEATURES: Tensor(7, "batch", "student")},
    needs=(LOSS,),
    rank_program=rank_program,
    verify=verify,
    grad_bounds=grad_bounds,
    check=check,
    calls_missing=calls_missing,
)
