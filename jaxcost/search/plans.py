"""Plan search: the best parallel plans of a model on one homogeneous cluster.

Every plan of the :class:`jaxcost.search.space.PlanSpace` (or a given batch) is
scored with the one scorer :func:`jaxcost.search.score.plan_time_s_physical` through
:func:`jaxcost.search.sweep.sweep_topk` (chunked ``jit(vmap(...))``, sharded over
devices and processes); the top ``k`` are re-evaluated for their full ``StepTime``.
"""

from __future__ import annotations

import enum
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ClusterSpec, Precision, check_chip_count
from jaxcost.model.params import CostParams, physical
from jaxcost.model.plan import ParallelPlan, plan_at, plan_to_str
from jaxcost.model.step_time import StepTime, predict_step_time_physical
from jaxcost.model.workload import TransformerConfig, tokens_per_step
from jaxcost.search import sweep
from jaxcost.search.score import blank_labels, plan_time_s_physical
from jaxcost.search.space import PlanSpace, enumerate_plans, space_precisions

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_ROBUST_POOL",
    "Objective",
    "PlanResult",
    "best_plan",
]

#: Default number of configurations per compiled sweep call.
DEFAULT_CHUNK_SIZE = 8192


class Objective(enum.StrEnum):
    """What a search minimises. On a fixed cluster, step time also minimises the cost
    and the energy per token; ``COST`` matters when the cluster is chosen. The
    pessimistic ranking over an ensemble is the ``quantile`` option of
    :func:`best_plan`."""

    TIME = "time"
    COST = "cost"


#: Plans re-scored under every ensemble member by a robust search (the best of the
#: point ranking): large enough that the quantile winner is in the pool in practice.
DEFAULT_ROBUST_POOL = 64


@struct.dataclass
class PlanResult:
    """One scored plan of one cluster.

    Attributes:
      plan: the ``ParallelPlan`` (scalar leaves).
      step_time: its full ``StepTime`` breakdown.
      tokens_per_s: cluster throughput, tokens/s.
      time_to_train_s: time to train the token budget, s (``nan`` when none given).
      plan_str: the plan as a string (``plan.plan_to_str``).
      precision: number format of the linear layers' GEMMs the plan runs at.
      quantile_step_time_s: the ``quantile`` of the step time over the ensemble's
        members, s, when the search ranked by it (``nan`` otherwise).
    """

    plan: ParallelPlan
    step_time: StepTime
    tokens_per_s: float
    time_to_train_s: float
    plan_str: str = struct.field(pytree_node=False)
    precision: str = struct.field(pytree_node=False, default=Precision.BF16.value)
    quantile_step_time_s: float = math.nan


@jax.jit
def _step_times(consts, rows):
    """Full step-time records of (plan, precision flag) rows, one compiled program
    per shape (``consts`` as in :func:`_score_row`)."""
    phys, cluster, workload = consts
    return jax.vmap(
        lambda plan: predict_step_time_physical(phys, cluster, workload, plan)
    )(rows)


def _score_row(consts, plan) -> jax.Array:
    """Step time of one plan (timed at the precision its ``fp8`` leaf says);
    ``consts`` = (physical parameters, cluster, model)."""
    phys, cluster, workload = consts
    return jnp.asarray(plan_time_s_physical(phys, cluster, workload, plan))


def best_plan(
    params: CostParams,
    cluster: ClusterSpec,
    workload: TransformerConfig,
    *,
    k: int = 10,
    objective: Objective | str = Objective.TIME,
    space: PlanSpace | None = None,
    plans: ParallelPlan | None = None,
    precision: Precision | str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tokens: float | None = None,
    ensemble: CostParams | None = None,
    quantile: float | None = None,
    robust_pool: int = DEFAULT_ROBUST_POOL,
    progress: bool = False,
) -> list[PlanResult]:
    """The ``k`` best valid plans of ``workload`` on ``cluster``, best first.

    The precision of the linear layers' GEMMs is a plan dimension: each plan is
    scored at every precision of ``space.precisions`` that the chip runs
    (:func:`jaxcost.search.space.space_precisions`: FP8 only where its FP8 peak is
    positive), in one batched sweep, unless ``precision`` fixes it.

    Robust choice (the optimiser's curse: the best of many noisily scored plans is
    biased optimistic): with ``quantile`` q and an ``ensemble`` of fitted parameters
    (bootstrap members, ``calibrate.ensemble``), the ``robust_pool`` best plans of
    the point ranking are re-scored under every member and ranked by the q-quantile
    of their step times (q = 0.9: a plan that is fast under 90 % of the plausible
    parameters). Plans that do not fit score ``inf`` under every member.

    Args:
      params: ``CostParams``.
      cluster: a homogeneous ``ClusterSpec``.
      workload: ``TransformerConfig``.
      k: number of plans to return (≥ 1).
      objective: ``Objective.TIME`` (step time).
      space: the plan space searched (default ``PlanSpace()``).
      plans: pre-enumerated plans (``(P,)`` leaves) instead of ``space``.
      precision: a single precision for every plan (None: ``space.precisions``).
      chunk_size: configurations per compiled call.
      tokens: token budget (> 0); gives ``time_to_train_s``.
      ensemble: ``CostParams`` with a leading member axis (needed with ``quantile``).
      quantile: q in [0, 1] to rank by the ensemble's q-quantile step time; None:
        rank by the point estimate of ``params``.
      robust_pool: plans re-scored under the ensemble (≥ k).
      progress: progress bar on stderr.

    Returns:
      Up to ``k`` :class:`PlanResult` (an empty list when no plan fits); their
      ``step_time`` is the point estimate, ``quantile_step_time_s`` the ranked
      quantile.

    Raises:
      PlanError: an unknown objective, ``k`` < 1, a non-positive token budget, or a
        quantile outside [0, 1] or without an ensemble.
    """
    if objective != Objective.TIME:
        raise PlanError(
            f"objective={objective!r}: best_plan minimises step time; expected 'time'",
            column="objective",
        )
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise PlanError(f"k={k!r}: expected an integer >= 1", column="k")
    if tokens is not None and not (math.isfinite(float(tokens)) and float(tokens) > 0):
        raise PlanError(
            f"tokens={tokens!r}: expected a finite number > 0", column="tokens"
        )
    if quantile is not None:
        q = float(quantile)
        if not (0.0 <= q <= 1.0):
            raise PlanError(
                f"quantile={quantile!r}: expected a number in [0, 1]",
                column="quantile",
            )
        if ensemble is None:
            raise PlanError(
                "quantile ranking needs an ensemble of fitted parameters "
                "(the 'bootstrap' of a params file)",
                column="ensemble",
            )
    check_chip_count(cluster.num_chips, name="cluster.num_chips")
    s = PlanSpace() if space is None else space
    n = int(round(float(cluster.num_chips)))
    if plans is None:
        plans = enumerate_plans(workload, n, cluster.chip, s)
    num = sweep.batch_size(plans) if jax.tree.leaves(plans) else 0
    if num == 0:
        return []
    precs = (
        (Precision(str(precision).lower()),)
        if precision is not None
        else space_precisions(s, cluster.chip)
    )
    # one batch over (plan, precision): each plan once per precision, carrying it in
    # its ``fp8`` leaf ("-fp8" in its text), which the scorer reads
    flags = np.repeat(
        np.asarray([1.0 if p == Precision.FP8 else 0.0 for p in precs]), num
    )
    tiled = jax.tree.map(lambda x: np.tile(np.asarray(x), len(precs)), plans)
    batch = tiled.replace(fp8=np.maximum(np.asarray(tiled.fp8), flags))
    phys = physical(params, cluster.chip)
    achip, aworkload = blank_labels(cluster.chip, workload)
    pool = k if quantile is None else max(k, int(robust_pool))
    # the cluster, model and physical parameters are arguments of one module-level
    # scorer, so a later search of the same shapes reuses its compiled program
    idx, _, _ = sweep.sweep_topk(
        _score_row,
        batch,
        pool,
        chunk_size=chunk_size,
        progress=progress,
        desc=f"plans {cluster.chip.key}x{n}",
        consts=(phys, cluster.replace(chip=achip), aworkload),
    )
    if idx.size == 0:
        return []
    top = jax.tree.map(lambda x: np.asarray(x)[idx], batch)
    q_s = np.full(idx.size, math.nan)
    if quantile is not None:
        times = np.asarray(
            jax.jit(
                jax.vmap(
                    lambda e: jax.vmap(
                        lambda pf: plan_time_s_physical(
                            physical(e, cluster.chip),
                            cluster,
                            workload,
                            pf,
                        )
                    )(top)
                )
            )(ensemble)
        )
        # a member under which a plan does not fit counts as inf (never preferred)
        q_s = np.quantile(np.where(np.isfinite(times), times, np.inf), q, axis=0)
        order = np.argsort(q_s, kind="stable")[:k]
        order = order[np.isfinite(q_s[order])]
        if order.size == 0:
            return []
        top = jax.tree.map(lambda x: np.asarray(x)[order], top)
        q_s = q_s[order]
    n_top = int(np.asarray(top.fp8).shape[0])
    st = _step_times(
        (phys, cluster.replace(chip=achip), aworkload),
        sweep.pad_rows(top, sweep.padded_size(n_top, 8)),
    )
    st = jax.tree.map(lambda x: np.asarray(x)[:n_top], st)
    tps = tokens_per_step(workload)
    out = []
    for j in range(n_top):
        plan_j = plan_at(top, j)
        st_j = jax.tree.map(lambda x, j=j: np.asarray(x)[j], st)
        tok_s = tps / float(st_j.total_s)
        out.append(
            PlanResult(
                plan=plan_j,
                step_time=st_j,
                tokens_per_s=tok_s,
                time_to_train_s=(float(tokens) / tok_s if tokens else math.nan),
                plan_str=plan_to_str(plan_j),
                precision=(
                    Precision.FP8 if float(top.fp8[j]) > 0.5 else Precision.BF16
                ).value,
                quantile_step_time_s=float(q_s[j]),
            )
        )
    return out
