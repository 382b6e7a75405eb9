"""Predictions of measured runs: step time, throughput, MFU and an interval.

:func:`predict_run_batch` predicts every row of a ``RunBatch`` with its plan as given;
:func:`best_plans_for_missing` fills blank plans with the best plan of the one plan
search (:func:`jaxcost.search.plans.best_plan`, the row's own cluster network).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.calibrate.batches import PLAN_COLUMNS, RunBatch
from jaxcost.calibrate.residuals import (
    pack_params,
    run_chips,
    run_step_times,
    with_network,
)
from jaxcost.calibrate.rows import FitData, build_fit_data, x64
from jaxcost.errors import DataError, PlanError
from jaxcost.io.benchmarks import recompute_setting, zero_stage
from jaxcost.model.hardware import ChipSpec, ClusterSpec, Precision
from jaxcost.model.parallel import USABLE_HBM_FRAC
from jaxcost.model.params import (
    CostParams,
)
from jaxcost.model.plan import Recompute, plan_to_str
from jaxcost.model.workload import (
    model_flop_per_token,
    recompute_flop_frac,
)
from jaxcost.search.plans import best_plan
from jaxcost.search.space import PlanSpace

__all__ = [
    "row_plan_space",
    "searched_columns",
    "predict_run_batch",
    "best_plans_for_missing",
    "published_mfu",
    "best_published_mfu",
]


@jax.jit
def _predict_arrays(
    params: CostParams, ensemble: CostParams | None, fd: FitData
) -> tuple[jax.Array, ...]:
    """Everything :func:`predict_run_batch` needs from JAX, in one compiled program
    (one trace and one compilation per shape: few compilations keep a cold start
    short). Returns the step times ``(1 + b, n)`` of the point estimate then the ``b``
    ensemble members, the model FLOP per token, the peak memory per chip, the peak
    FLOP/s of the MFU and the usable HBM per chip of every row."""
    members = pack_params(params, fd)[None]
    if ensemble is not None:
        members = jnp.concatenate(
            [members, jax.vmap(lambda e: pack_params(e, fd))(ensemble)]
        )
    st = jax.vmap(lambda m: run_step_times(m, fd))(members)
    chip = run_chips(fd)
    mf = jax.vmap(model_flop_per_token)(fd.runs.workload)
    # StepTime.memory_bytes is workload.memory_bytes(w, plan).total: no parameter
    # enters it, so every member's is the same
    mem = st.memory_bytes[0]
    cap = chip.hbm_capacity_bytes * USABLE_HBM_FRAC
    return st.total_s, mf, mem, chip.peak_flop_per_s_bf16, cap


def predict_run_batch(
    params: CostParams,
    chips: Mapping[str, ChipSpec],
    runs,
    *,
    ensemble: CostParams | None = None,
    log_residuals_pool: np.ndarray | None = None,
    interval: tuple[float, float] = (0.05, 0.95),
) -> dict:
    """Predicted step time, tokens/s per chip and MFU of every row of a ``RunBatch``
    (its plans as given), with an interval on the step time.

    The interval takes the ``interval`` quantiles of log T_b + e over the bootstrap
    members b of ``ensemble`` (parameter uncertainty) and the residuals e of
    ``log_residuals_pool`` (scatter of the model around measurements); without an
    ensemble only the pool is used, without either the interval is the point.

    Returns:
      dict of ``(n,)`` numpy arrays: ``pred_step_time_s``,
      ``pred_tokens_per_s_per_chip``, ``pred_mfu``, ``pred_step_time_s_lo``,
      ``pred_step_time_s_hi``, ``pred_mem_bytes_per_chip`` (peak memory of the
      first pipeline stage, ``workload.memory_bytes``) and ``pred_fits`` (at most
      ``USABLE_HBM_FRAC`` of the chip's HBM; a plan given by the row that does not
      fit is timed but flagged False).
    """
    with x64():
        fd = build_fit_data(
            chips,
            runs=runs.replace(
                plan_missing=np.zeros_like(np.asarray(runs.plan_missing))
            ),
        )
        fd = fd.replace(
            runs=fd.runs.replace(target_kind=np.zeros_like(fd.runs.target_kind))
        )
        t_all, mf, mem, peak, cap = _predict_arrays(params, ensemble, fd)
        t_all = np.asarray(t_all)
        t = t_all[0]
        w = fd.runs.workload
        tokens = np.asarray(w.global_batch_seqs * w.seq_len)
        n = np.asarray(fd.runs.num_chips)
        mfu = np.asarray(mf) * tokens / (t * n * np.asarray(peak))
        mem = np.asarray(mem)
        cap = np.asarray(cap)
        logs = np.log(t_all[1:] if ensemble is not None else t_all)
    pool = (
        np.zeros(1)
        if log_residuals_pool is None
        else np.asarray(log_residuals_pool, dtype=float)
    )
    pool = pool[np.isfinite(pool)]
    samples = logs[:, None, :] + pool[None, :, None]
    samples = samples.reshape(-1, samples.shape[-1])
    lo, hi = np.quantile(samples, interval, axis=0)
    return {
        "pred_step_time_s": t,
        "pred_tokens_per_s_per_chip": tokens / (t * n),
        "pred_mfu": mfu,
        "pred_step_time_s_lo": np.exp(lo),
        "pred_step_time_s_hi": np.exp(hi),
        "pred_mem_bytes_per_chip": mem,
        "pred_fits": mem <= cap,
    }


def row_plan_space(given: dict[str, str], base: PlanSpace | None = None) -> PlanSpace:
    """The plan space of a row whose plan is partly given: given cells are fixed.

    ``given`` maps plan columns of the training-run schema (``PLAN_COLUMNS``) to their
    text; each given degree or option becomes the only value searched, the blank ones
    keep the options of ``base`` (default: ``PlanSpace(pp_balance="auto")``, uneven
    pipeline stages allowed as the frameworks run them).

    Raises:
      DataError: a given cell that is not a positive whole number (degrees) or not a
        known ZeRO / recompute / sp setting.
    """
    s = PlanSpace(pp_balance="auto") if base is None else base
    changes: dict[str, object] = {}
    for col in ("tp", "pp", "dp", "cp", "ep", "vpp", "mbs"):
        if col in given:
            try:
                v = float(given[col])
            except ValueError:
                v = math.nan
            if not (math.isfinite(v) and v >= 1 and v == int(v)):
                raise DataError(
                    f"expected a whole number >= 1, got {given[col]!r}", column=col
                )
            changes[col] = (int(v),)
    if "zero_fsdp" in given:
        changes["zero_stages"] = (zero_stage(given["zero_fsdp"]),)
    if "recompute" in given:
        rec, lite = recompute_setting(given["recompute"])
        changes["recompute"] = (Recompute(rec),)
        changes["recompute_lite"] = (lite,)
    if "sp" in given:
        changes["sp"] = (str(given["sp"]).strip().lower() == "yes",)
    return s.replace(**changes)


def searched_columns(given: dict[str, str]) -> str:
    """The plan columns a search chose (blank in the row), comma-separated."""
    return ",".join(c for c in PLAN_COLUMNS if c not in given)


def best_plans_for_missing(
    params: CostParams,
    chips: Mapping[str, ChipSpec],
    runs: RunBatch,
    *,
    space: PlanSpace | None = None,
    ensemble: CostParams | None = None,
    quantile: float | None = None,
    progress: bool = False,
) -> tuple[RunBatch, tuple[str, ...], tuple[str, ...]]:
    """Fill the blank plans of a ``RunBatch`` with the fastest valid plan.

    For each row with ``plan_missing``, the one plan search
    (:func:`jaxcost.search.plans.best_plan`: every plan of the row's space that is
    valid and fits in memory, scored by
    :func:`jaxcost.search.score.plan_time_s_physical`)
    runs on the row's own cluster (chip, chip count, scale-out network) at the row's
    GEMM precision (the ``precision`` column is the run's, not a plan cell). The plan
    cells the row gives are constraints (:func:`row_plan_space`); only the blank ones
    are searched. The row's software (attention kernel, expert dispatcher, TP and DP
    communication overlap: the framework that ran, kept in the batch's plan) is
    kept, so a run of an unfused-attention framework is not planned as if it had
    flash attention. With ``quantile`` and ``ensemble`` the plans are ranked by the
    ensemble's pessimistic quantile (:func:`best_plan`).

    Returns:
      (the batch with those plans, every row's plan as text, every row's searched
      columns: "" where the plan was given).

    Raises:
      PlanError: no valid plan for a row.
    """
    missing = np.asarray(runs.plan_missing, dtype=bool)
    plan = jax.tree.map(lambda x: np.array(x, dtype=float), runs.plan)
    searched = [""] * missing.size
    with x64():
        for i in np.flatnonzero(missing):
            given = dict(runs.given[i]) if runs.given else {}
            try:
                row_space = row_plan_space(given, space).replace(
                    **{
                        f: bool(np.asarray(getattr(runs.plan, f))[i] > 0.5)
                        for f in ("flash_attn", "fused_a2a", "tp_overlap", "dp_overlap")
                    }
                )
            except DataError as err:
                raise DataError(
                    err.detail, row=f"row_id {runs.row_ids[i]}", column=err.column
                ) from None
            w = jax.tree.map(lambda x, i=i: np.asarray(x)[i], runs.workload)
            chip = with_network(
                chips[runs.chip_keys[i]], np.asarray(runs.scaleout_bytes_per_s)[i]
            )
            n = int(round(float(np.asarray(runs.num_chips)[i])))
            cluster = ClusterSpec(chip=chip, num_chips=float(n))
            precision = Precision.FP8 if runs.precision[i] == "fp8" else Precision.BF16
            found = best_plan(
                params,
                cluster,
                w,
                k=1,
                space=row_space,
                precision=precision,
                ensemble=ensemble,
                quantile=quantile,
                progress=progress,
            )
            if not found:
                fixed = ", ".join(f"{k}={v}" for k, v in sorted(given.items()))
                raise PlanError(
                    f"no valid parallel plan of this model on {n} "
                    f"{chip.key} (divisibility or memory)"
                    + (f" with the given {fixed}" if fixed else ""),
                    row=f"row_id {runs.row_ids[i]}",
                    column="tp",
                )
            best = found[0].plan
            for f in plan.__dataclass_fields__:
                getattr(plan, f)[i] = float(np.asarray(getattr(best, f)))
            searched[i] = searched_columns(given)
    text = tuple(
        plan_to_str(jax.tree.map(lambda x, i=i: x[i], plan))
        for i in range(missing.size)
    )
    return (
        runs.replace(
            plan=jax.tree.map(jnp.asarray, plan), plan_missing=np.zeros_like(missing)
        ),
        text,
        tuple(searched),
    )


def published_mfu(chips: Mapping[str, ChipSpec], runs: RunBatch) -> np.ndarray:
    """The measured MFU of every row of a ``RunBatch`` of published runs, ``(n,)``.

    The row's measured value (step time, tokens/s per chip, MFU, HFU or FLOP/s per
    chip, ``target_kind``) is turned back into a step time and divided into the
    model FLOP (``workload.model_flop_per_token``, no recompute) at the chip's dense
    peak of the row's precision (BF16, or FP8 on FP8 rows): the convention of
    ``pred_mfu``. An MFU or HFU quoted against another peak (``mfu_peak_flop_per_s``)
    is converted with that peak.
    """
    w = runs.workload
    tokens = np.asarray(w.global_batch_seqs * w.seq_len, dtype=float)
    with x64():
        mf = np.asarray(jax.vmap(model_flop_per_token)(w), dtype=float) * tokens
        rec = np.asarray(jax.vmap(recompute_flop_frac)(w, runs.plan), dtype=float)
    n = np.asarray(runs.num_chips, dtype=float)
    peak = np.asarray(
        [
            float(
                chips[k].peak_flop_per_s_fp8
                if p == "fp8" and float(chips[k].peak_flop_per_s_fp8) > 0
                else chips[k].peak_flop_per_s_bf16
            )
            for k, p in zip(runs.chip_keys, runs.precision, strict=True)
        ]
    )
    quoted = np.asarray(runs.peak_flop_per_s, dtype=float)
    quoted = np.where(np.isfinite(quoted), quoted, peak)
    obs = np.asarray(runs.target_value, dtype=float)
    kind = np.asarray(runs.target_kind)
    hw = mf * (1.0 + rec / 3.0)
    step_s = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3],
        [
            obs,
            tokens / (obs * n),
            mf / (obs * n * quoted),
            hw / (obs * n * quoted),
        ],
        mf / (obs * n),
    )
    return mf / (step_s * n * peak)


def best_published_mfu(
    chips: Mapping[str, ChipSpec], runs: RunBatch
) -> dict[tuple[str, str], tuple[float, str]]:
    """The best measured MFU of each chip class: ``(family, precision)`` ->
    ``(mfu, row_id)`` over the rows of ``runs`` (:func:`published_mfu`), so that a
    searched plan's ``pred_mfu`` can be set against what has been reached on such
    chips at that precision. Rows with a non-finite MFU are skipped."""
    mfu = published_mfu(chips, runs)
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for i, (k, p) in enumerate(zip(runs.chip_keys, runs.precision, strict=True)):
        key = (chips[k].family, p)
        if np.isfinite(mfu[i]) and mfu[i] > best.get(key, (-1.0, ""))[0]:
            best[key] = (float(mfu[i]), runs.row_ids[i])
    return best
