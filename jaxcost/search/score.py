"""The one plan scorer: the step time of a plan, or ``inf`` when it cannot run.

Every search of the package ranks plans with :func:`plan_time_s`: the plan search
(:func:`jaxcost.search.plans.best_plan`), the throughput curves of the chip-mix search,
the re-planning of mixed clusters and the blank-plan search of ``jaxcost predict``.
A plan that does not fit in HBM (the smooth ``fits_in_hbm`` indicator below one half)
or whose time is not finite scores ``inf`` and is never chosen.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcost.model.hardware import ChipSpec, ClusterSpec, Precision
from jaxcost.model.params import CostParams, PhysicalParams, physical
from jaxcost.model.plan import ParallelPlan
from jaxcost.model.step_time import predict_step_time_physical
from jaxcost.model.workload import TransformerConfig

__all__ = ["plan_time_s", "plan_time_s_physical", "blank_labels"]


def blank_labels(
    chip: ChipSpec, workload: TransformerConfig
) -> tuple[ChipSpec, TransformerConfig]:
    """Chip and workload with blank labels, so that compiled functions are shared.

    The labels are static pytree fields (part of a jitted function's cache key); the
    cost model reads none of them once the physical parameters are resolved
    (``physical`` uses ``chip.key``/``family``), so scoring with blank labels gives
    the same numbers from one compiled program per shape.
    """
    c = chip.replace(
        name="", key="", vendor="", family="", datacenter=False, memory_type=""
    )
    return c, workload.replace(name="")


def plan_time_s_physical(
    phys: PhysicalParams,
    cluster: ClusterSpec,
    workload: TransformerConfig,
    plan: ParallelPlan,
    *,
    precision: Precision | str = Precision.BF16,
) -> jax.Array:
    """Step time of ``plan`` in s; ``inf`` when it does not fit or is not finite.

    Args:
      phys: physical parameters of the cluster's chip (``params.physical``).
      cluster: a homogeneous cluster.
      workload: the model.
      plan: one plan (scalar leaves; ``vmap`` it for a batch).
      precision: the precision of the linear layers' GEMMs (or a numeric FP8 flag).

    Returns:
      Seconds (scalar), or ``inf``.
    """
    st = predict_step_time_physical(phys, cluster, workload, plan, precision=precision)
    ok = jnp.logical_and(st.fits_in_hbm > 0.5, jnp.isfinite(st.total_s))
    return jnp.where(ok, st.total_s, jnp.inf)


def plan_time_s(
    params: CostParams,
    cluster: ClusterSpec,
    workload: TransformerConfig,
    plan: ParallelPlan,
    *,
    precision: Precision | str = Precision.BF16,
) -> jax.Array:
    """As :func:`plan_time_s_physical`, resolving the chip's parameters first."""
    return plan_time_s_physical(
        physical(params, cluster.chip), cluster, workload, plan, precision=precision
    )
