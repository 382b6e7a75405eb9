"""Exact throughput of mixed clusters, each group re-planned for its batch share.

The chip-mix search ranks clusters with each type's best plan for the *whole* global
batch; inside a mixed cluster a group runs only its share B_g, for which another plan
(fewer micro-batches, hence other pipeline and data-parallel degrees) can be faster.
:class:`MixedClusterEvaluator` evaluates a mixed cluster with the heterogeneous
data-parallel model (:func:`jaxcost.model.step_time.hetero_data_parallel`) and
re-plans every group with the one plan scorer (:mod:`jaxcost.search.score`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.model.hardware import ChipSpec, ClusterSpec, Precision
from jaxcost.model.params import CostParams, physical
from jaxcost.model.plan import plan_at, plan_from_str, plan_to_str
from jaxcost.model.step_time import hetero_data_parallel
from jaxcost.model.workload import TransformerConfig, tokens_per_step
from jaxcost.search import sweep
from jaxcost.search.score import plan_time_s
from jaxcost.search.space import PlanSpace, enumerate_plans, space_precisions

__all__ = ["MixedClusterEvaluator", "nice_batch"]


def nice_batch(share: float) -> int:
    """The nearest 2^k or 3·2^k (k ≥ 0) to ``share`` (in log space), at least 1."""
    if share <= 1.0:
        return 1
    k = int(math.floor(math.log2(share)))
    cands = [2**k, 3 * 2 ** (k - 1) if k >= 1 else 1, 2 ** (k + 1)]
    return min(cands, key=lambda c: abs(math.log(c / share)))


class MixedClusterEvaluator:
    """Exact throughput of mixed clusters with the heterogeneous data-parallel model,
    each group re-planned for the share of the global batch it runs.

    Starting from the whole-batch plans, ``replan_rounds`` times: compute the balanced
    shares, pick every group's best plan for a batch of about B_g sequences (B_g
    rounded to the nearest 2^k or 3·2^k, so that the plan enumeration has divisors to
    work with and searches are shared between clusters), and evaluate the cluster
    again at the exact shares. The fastest re-planned evaluation is kept. It can be
    slower than the whole-batch plans: those may give a group fewer sequences than one
    micro-batch per replica, which the continuous step model would time as a fraction
    of a micro-batch. One compilation per combination of chip types for the cluster,
    one per chip type (and padded plan count) for the plan scoring.

    Args:
      params: ``CostParams``.
      workload: the model.
      space: the plan space of the re-planning (default ``PlanSpace()``).
      max_plans: largest plan count searched for one group.
      replan_rounds: re-planning rounds (0: keep the whole-batch plans).
    """

    def __init__(
        self,
        params: CostParams,
        workload: TransformerConfig,
        space: PlanSpace | None = None,
        max_plans: int = 200_000,
        *,
        replan_rounds: int = 2,
    ) -> None:
        self.params, self.workload = params, workload
        self.space = PlanSpace() if space is None else space
        self.max_plans = int(max_plans)
        self.replan_rounds = int(replan_rounds)
        self._fns: dict[tuple[str, ...], Any] = {}
        self._score_fn = None
        self._plan_cache: dict[tuple[str, int, int], str | None] = {}

    def _cluster_fn(self, keys):
        # step time and balanced shares from one evaluation of the data-parallel
        # groups
        if keys not in self._fns:

            def total(clusters, plans):
                phys = [physical(self.params, cl.chip) for cl in clusters]
                st, share = hetero_data_parallel(phys, clusters, self.workload, plans)
                return jnp.where(st.fits_in_hbm > 0.5, st.total_s, jnp.inf), share

            self._fns[keys] = jax.jit(total)
        return self._fns[keys]

    def _best_plan_str(
        self, name: str, chip: ChipSpec, n: int, share: float
    ) -> str | None:
        """Best plan of ``n`` chips for a batch of about ``share`` sequences (cached
        per chip type, count and rounded batch)."""
        if not math.isfinite(share) or share < 1:
            return None
        b = nice_batch(share)
        key = (name, int(n), b)
        if key not in self._plan_cache:
            self._plan_cache[key] = self._search(chip, n, b)
        return self._plan_cache[key]

    def _search(self, chip: ChipSpec, n: int, b: int) -> str | None:
        wg = self.workload.replace(global_batch_seqs=float(b))
        plans = enumerate_plans(wg, int(n), chip, self.space)
        num = sweep.batch_size(plans) if jax.tree.leaves(plans) else 0
        if num == 0 or num > self.max_plans:
            return None
        # FP8 is a plan dimension (the plan's fp8 leaf), as in best_plan
        f8 = np.asarray(
            [1.0 if p == Precision.FP8 else 0.0
             for p in space_precisions(self.space, chip)]
        )
        plans = jax.tree.map(lambda x: np.tile(np.asarray(x), f8.size), plans)
        plans = plans.replace(fp8=np.repeat(f8, num))
        num *= f8.size
        if self._score_fn is None:
            self._score_fn = jax.jit(
                jax.vmap(plan_time_s, in_axes=(None, None, None, 0))
            )
        size = sweep.padded_size(num)  # padded: few compilations
        t = np.asarray(
            self._score_fn(
                self.params,
                ClusterSpec(chip=chip, num_chips=float(n)),
                wg,
                sweep.pad_rows(plans, size),
            )
        )[:num]
        j = int(np.argmin(t))
        if not np.isfinite(t[j]):
            return None
        return plan_to_str(plan_at(plans, j))

    def evaluate(
        self, chips: dict[str, ChipSpec], counts: dict[str, int], plans: dict[str, str]
    ) -> tuple[float, dict[str, str]]:
        """(tokens/s, plan string per type) of the mixed cluster ``counts``.

        Args:
          chips: chip per type key.
          counts: chip count per type key (at least two types).
          plans: each type's whole-batch plan (``plan_to_str``), the starting point.
        """
        keys = tuple(counts)
        fn = self._cluster_fn(keys)
        clusters = tuple(
            ClusterSpec(chip=chips[k], num_chips=float(counts[k])) for k in keys
        )

        def run(plan_strs):
            pl = tuple(plan_from_str(plan_strs[k]) for k in keys)
            t, share = fn(clusters, pl)
            return float(t), np.asarray(share, dtype=np.float64)

        cur = dict(plans)
        t0, share = run(cur)
        best_t, best = math.inf, None
        for _ in range(self.replan_rounds):
            if not np.all(np.isfinite(share)):
                break
            new = {}
            for i, k in enumerate(keys):
                s = self._best_plan_str(k, chips[k], counts[k], float(share[i]))
                new[k] = cur[k] if s is None else s
            if new == cur and best is not None:
                break
            cur = new
            t, share = run(cur)
            if math.isfinite(t) and t < best_t:
                best_t, best = t, cur
        if best is None:  # no round (replan_rounds = 0) or none finite
            best_t, best = t0, dict(plans)
        tok = (
            tokens_per_step(self.workload) / best_t
            if math.isfinite(best_t) and best_t > 0
            else 0.0
        )
        return tok, best
