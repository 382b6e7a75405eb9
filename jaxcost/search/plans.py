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
import numpy as np
from flax import struct

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ClusterSpec, Precision
from jaxcost.model.params import CostParams, physical
from jaxcost.model.plan import ParallelPlan, plan_at, plan_to_str
from jaxcost.model.step_time import StepTime, predict_step_time_physical
from jaxcost.model.workload import TransformerConfig, tokens_per_step
from jaxcost.search import sweep
from jaxcost.search.score import plan_time_s_physical
from jaxcost.search.space import PlanSpace, enumerate_plans

__all__ = ["DEFAULT_CHUNK_SIZE", "Objective", "PlanResult", "best_plan"]

#: Default number of configurations per compiled sweep call.
DEFAULT_CHUNK_SIZE = 8192


class Objective(enum.StrEnum):
    """What a search minimises. On a fixed cluster, step time also minimises the cost
    and the energy per token; ``COST`` matters when the cluster is chosen."""

    TIME = "time"
    COST = "cost"


@struct.dataclass
class PlanResult:
    """One scored plan of one cluster.

    Attributes:
      plan: the ``ParallelPlan`` (scalar leaves).
      step_time: its full ``StepTime`` breakdown.
      tokens_per_s: cluster throughput, tokens/s.
      time_to_train_s: time to train the token budget, s (``nan`` when none given).
      plan_str: the plan as a string (``plan.plan_to_str``).
    """

    plan: ParallelPlan
    step_time: StepTime
    tokens_per_s: float
    time_to_train_s: float
    plan_str: str = struct.field(pytree_node=False)


def best_plan(
    params: CostParams,
    cluster: ClusterSpec,
    workload: TransformerConfig,
    *,
    k: int = 10,
    objective: Objective | str = Objective.TIME,
    space: PlanSpace | None = None,
    plans: ParallelPlan | None = None,
    precision: Precision | str = Precision.BF16,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    tokens: float | None = None,
    progress: bool = False,
) -> list[PlanResult]:
    """The ``k`` best valid plans of ``workload`` on ``cluster``, best first.

    Args:
      params: ``CostParams``.
      cluster: a homogeneous ``ClusterSpec``.
      workload: ``TransformerConfig``.
      k: number of plans to return (≥ 1).
      objective: ``Objective.TIME`` (step time).
      space: the plan space searched (default ``PlanSpace()``).
      plans: pre-enumerated plans (``(P,)`` leaves) instead of ``space``.
      precision: precision of the linear layers' GEMMs.
      chunk_size: configurations per compiled call.
      tokens: token budget (> 0); gives ``time_to_train_s``.
      progress: progress bar on stderr.

    Returns:
      Up to ``k`` :class:`PlanResult` (an empty list when no plan fits).

    Raises:
      PlanError: an unknown objective, ``k`` < 1, or a non-positive token budget.
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
    n = int(round(float(cluster.num_chips)))
    if plans is None:
        plans = enumerate_plans(workload, n, cluster.chip, space)
    num = sweep.batch_size(plans) if jax.tree.leaves(plans) else 0
    if num == 0:
        return []
    phys = physical(params, cluster.chip)
    idx, _, _ = sweep.sweep_topk(
        lambda p: plan_time_s_physical(phys, cluster, workload, p, precision=precision),
        plans,
        k,
        chunk_size=chunk_size,
        progress=progress,
        desc=f"plans {cluster.chip.key}x{n}",
    )
    if idx.size == 0:
        return []
    top = jax.tree.map(lambda x: np.asarray(x)[idx], plans)
    st = jax.jit(
        jax.vmap(
            lambda p: predict_step_time_physical(
                phys, cluster, workload, p, precision=precision
            )
        )
    )(top)
    tps = tokens_per_step(workload)
    out = []
    for j in range(idx.size):
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
            )
        )
    return out
