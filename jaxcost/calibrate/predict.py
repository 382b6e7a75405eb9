"""Predictions of measured runs: step time, throughput, MFU and an interval.

:func:`predict_run_batch` predicts every row of a ``RunBatch`` with its plan as given;
:func:`best_plans_for_missing` fills blank plans with the best plan of the one plan
search (:func:`jaxcost.search.plans.best_plan`, the row's own cluster network).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.calibrate.batches import RunBatch
from jaxcost.calibrate.residuals import pack_params, run_chips, run_values, with_network
from jaxcost.calibrate.rows import build_fit_data, x64
from jaxcost.errors import PlanError
from jaxcost.model.hardware import ChipSpec, ClusterSpec, Precision
from jaxcost.model.params import (
    CostParams,
)
from jaxcost.model.plan import plan_to_str
from jaxcost.model.workload import (
    model_flop_per_token,
)
from jaxcost.search.plans import best_plan
from jaxcost.search.space import PlanSpace

__all__ = [
    "predict_run_batch",
    "best_plans_for_missing",
]


def predict_run_batch(params: CostParams, chips: Mapping[str, ChipSpec], runs, *,
                      ensemble: CostParams | None = None,
                      log_residuals_pool: np.ndarray | None = None,
                      interval: tuple[float, float] = (0.05, 0.95)) -> dict:
    """Predicted step time, tokens/s per chip and MFU of every row of a ``RunBatch``
    (its plans as given), with an interval on the step time.

    The interval takes the ``interval`` quantiles of log T_b + e over the bootstrap
    members b of ``ensemble`` (parameter uncertainty) and the residuals e of
    ``log_residuals_pool`` (scatter of the model around measurements); without an
    ensemble only the pool is used, without either the interval is the point.

    Returns:
      dict of ``(n,)`` numpy arrays: ``pred_step_time_s``,
      ``pred_tokens_per_s_per_chip``, ``pred_mfu``, ``pred_step_time_s_lo``,
      ``pred_step_time_s_hi``.
    """
    with x64():
        fd = build_fit_data(chips, runs=runs.replace(
            plan_missing=jnp.zeros_like(jnp.asarray(runs.plan_missing))))
        fd = fd.replace(runs=fd.runs.replace(target_kind=jnp.zeros_like(
            fd.runs.target_kind)))

        def times(m):
            return run_values(m, fd)[1]

        m = pack_params(params, fd)
        t = np.asarray(jax.jit(times)(m))
        w = fd.runs.workload
        tokens = np.asarray(w.global_batch_seqs * w.seq_len)
        n = np.asarray(fd.runs.num_chips)
        chip = run_chips(fd)
        mf = np.asarray(jax.vmap(model_flop_per_token)(w)) * tokens
        mfu = mf / (t * n * np.asarray(chip.peak_flop_per_s_bf16))
        logs = np.log(t)[None, :]
        if ensemble is not None:
            mb = jax.vmap(lambda e: pack_params(e, fd))(ensemble)
            logs = np.log(np.asarray(jax.jit(jax.vmap(times))(mb)))
    pool = (np.zeros(1) if log_residuals_pool is None
            else np.asarray(log_residuals_pool, dtype=float))
    pool = pool[np.isfinite(pool)]
    samples = logs[:, None, :] + pool[None, :, None]
    samples = samples.reshape(-1, samples.shape[-1])
    lo, hi = np.quantile(samples, interval, axis=0)
    return {"pred_step_time_s": t, "pred_tokens_per_s_per_chip": tokens / (t * n),
            "pred_mfu": mfu, "pred_step_time_s_lo": np.exp(lo),
            "pred_step_time_s_hi": np.exp(hi)}


def best_plans_for_missing(params: CostParams, chips: Mapping[str, ChipSpec],
                           runs: RunBatch, *, space: PlanSpace | None = None,
                           progress: bool = False) -> tuple[RunBatch, tuple[str, ...]]:
    """Fill the blank plans of a ``RunBatch`` with the fastest valid plan.

    For each row with ``plan_missing``, the one plan search
    (:func:`jaxcost.search.plans.best_plan`: every plan of ``space`` that is valid and
    fits in memory, scored by :func:`jaxcost.search.score.plan_time_s_physical`) runs
    on the row's own cluster (chip, chip count, scale-out network) at the row's GEMM
    precision, and the best plan is kept. Returns the batch with those plans and every
    row's plan as text (``plan_to_str``).

    Raises:
      PlanError: no valid plan for a row.
    """
    missing = np.asarray(runs.plan_missing, dtype=bool)
    plan = jax.tree.map(lambda x: np.array(x, dtype=float), runs.plan)
    with x64():
        for i in np.flatnonzero(missing):
            w = jax.tree.map(lambda x, i=i: np.asarray(x)[i], runs.workload)
            chip = with_network(chips[runs.chip_keys[i]],
                                np.asarray(runs.scaleout_bytes_per_s)[i])
            n = int(round(float(np.asarray(runs.num_chips)[i])))
            cluster = ClusterSpec(chip=chip, num_chips=float(n))
            precision = (Precision.FP8 if runs.precision[i] == "fp8"
                         else Precision.BF16)
            found = best_plan(params, cluster, w, k=1, space=space,
                              precision=precision, progress=progress)
            if not found:
                raise PlanError(f"no valid parallel plan of this model on {n} "
                                f"{chip.key} (divisibility or memory)",
                                row=f"row_id {runs.row_ids[i]}", column="tp")
            best = found[0].plan
            for f in plan.__dataclass_fields__:
                getattr(plan, f)[i] = float(np.asarray(getattr(best, f)))
    text = tuple(plan_to_str(jax.tree.map(lambda x, i=i: x[i], plan))
                 for i in range(missing.size))
    return runs.replace(plan=jax.tree.map(jnp.asarray, plan),
                        plan_missing=np.zeros_like(missing)), text
