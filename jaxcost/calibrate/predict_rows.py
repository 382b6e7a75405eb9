"""Predictions of a user's runs file, row by row: a bad row gets a reason, not a crash.

:func:`predict_rows` takes the frame of a validated training-run table
(:func:`jaxcost.io.benchmarks.runs_frame`) and returns, for every row, either the
predictions of :func:`~jaxcost.calibrate.predict.predict_run_batch` (blank plans
searched by :func:`~jaxcost.calibrate.predict.best_plans_for_missing`) or a one-line
reason: a model or plan the builders reject, no valid plan, a non-finite prediction.
Runs in FP32 or TF32 are timed at that peak (:func:`at_run_precision`), not at the
BF16 one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from jaxcost.calibrate.batches import RunBatch, runs_to_arrays
from jaxcost.calibrate.predict import best_plans_for_missing, predict_run_batch
from jaxcost.errors import DataError, JaxcostError
from jaxcost.model.hardware import ChipSpec
from jaxcost.model.params import CostParams

__all__ = [
    "TF32_FAMILIES",
    "RowPredictions",
    "run_peak_flop_per_s",
    "at_run_precision",
    "take_runs",
    "predict_rows",
    "target_errors",
]

#: Chip families whose tensor cores run TF32 at half the dense BF16 rate (NVIDIA
#: A100: 156 vs 312 TFLOP/s; L40S: 183 vs 362; H100 SXM: 494.7 vs 989.4; B200: 1,100
#: vs 2,250; dense figures of the vendors' datasheets). ``data/chips.csv`` has no TF32
#: column, so this ratio is the documented approximation; on other families a TF32
#: run is timed at the FP32 peak.
TF32_FAMILIES = ("ampere", "ada", "hopper", "blackwell")
_TF32_BF16_RATIO = 0.5


def run_peak_flop_per_s(chip: ChipSpec, precision: str) -> float:
    """Dense peak of the linear layers of a run at ``precision``, FLOP/s.

    ``fp32``: ``peak_flop_per_s_fp32`` (CUDA-core FP32; a run that lets FP32 matmuls
    use TF32 tensor cores is labelled ``tf32``); ``tf32``: half the BF16 peak on
    :data:`TF32_FAMILIES`, else the FP32 peak; ``fp8``: the FP8 peak where the chip
    has one; anything else: the BF16 peak. A missing (NaN or 0) peak falls back to
    the BF16 one.
    """
    bf16 = float(np.asarray(chip.peak_flop_per_s_bf16))
    fp32 = float(np.asarray(chip.peak_flop_per_s_fp32))
    fp32 = fp32 if math.isfinite(fp32) and fp32 > 0 else bf16
    if precision == "fp32":
        return fp32
    if precision == "tf32":
        return _TF32_BF16_RATIO * bf16 if chip.family in TF32_FAMILIES else fp32
    if precision == "fp8":
        fp8 = float(np.asarray(chip.peak_flop_per_s_fp8))
        return fp8 if math.isfinite(fp8) and fp8 > 0 else bf16
    return bf16


def at_run_precision(
    params: CostParams,
    chips: Mapping[str, ChipSpec],
    runs: RunBatch,
    ensemble: CostParams | None = None,
) -> tuple[CostParams, dict[str, ChipSpec], RunBatch, CostParams | None]:
    """Parameters, chips and runs with FP32 / TF32 rows timed at their own peak.

    The step model times the GEMMs at the BF16 peak (the FP8 one on FP8 rows). A row
    run in FP32 or TF32 gets the chip ``<key>@<precision>``: the same chip, with the
    fitted offsets of its key, whose BF16 peak is :func:`run_peak_flop_per_s`. So an
    FP32 run on H800 is timed at the FP32 peak, and its MFU is relative to it. Other
    rows are unchanged.
    """
    keys = list(runs.chip_keys)
    table = dict(chips)
    derived: dict[str, str] = {}
    for i, (key, prec) in enumerate(zip(runs.chip_keys, runs.precision, strict=True)):
        if prec not in ("fp32", "tf32") or key not in chips:
            continue
        name = f"{key}@{prec}"
        if name not in table:
            base = chips[key]
            table[name] = base.replace(
                key=name, peak_flop_per_s_bf16=run_peak_flop_per_s(base, prec)
            )
            derived[name] = key
        keys[i] = name
    if not derived:
        return params, table, runs, ensemble

    def offsets(p: CostParams) -> CostParams:
        extra = {n: p.chip[k] for n, k in derived.items() if k in p.chip}
        return p.replace(chip={**p.chip, **extra})

    return (
        offsets(params),
        table,
        runs.replace(chip_keys=tuple(keys)),
        None if ensemble is None else offsets(ensemble),
    )


def take_runs(runs: RunBatch, index: Sequence[int]) -> RunBatch:
    """The rows ``index`` of a ``RunBatch`` (every per-row field, in that order)."""
    n = len(runs.row_ids)
    idx = np.asarray(list(index), dtype=int)
    changes = {}
    for f in dataclasses.fields(runs):
        v = getattr(runs, f.name)
        if f.name == "excluded":
            continue
        if isinstance(v, tuple):
            if len(v) == n:
                changes[f.name] = tuple(v[i] for i in idx)
            continue
        changes[f.name] = jax.tree.map(
            lambda x: np.asarray(x)[idx] if np.ndim(x) and np.shape(x)[0] == n else x,
            v,
        )
    return runs.replace(**changes)


@dataclasses.dataclass(frozen=True)
class RowPredictions:
    """Predictions of every row of a frame.

    Attributes:
      columns: prediction column -> ``(n,)`` array (NaN, or False for
        ``pred_fits``, where the row failed).
      plan: per row, the plan as text ("" where the row failed).
      searched: per row, the plan columns a search chose.
      errors: row position in the frame -> one-line reason.
    """

    columns: dict[str, np.ndarray]
    plan: tuple[str, ...]
    searched: tuple[str, ...]
    errors: dict[int, str]


def predict_rows(
    params: CostParams,
    chips: Mapping[str, ChipSpec],
    frame: pd.DataFrame,
    *,
    ensemble: CostParams | None = None,
    log_residuals_pool: np.ndarray | None = None,
    on_error: Callable[[int, str], None] | None = None,
    progress: bool = False,
    plan_quantile: float | None = None,
) -> RowPredictions:
    """Predict every row of ``frame``; a row that cannot be predicted gets a reason.

    Args:
      params, chips: fitted parameters and the chip database.
      frame: rows of the training-run schema with unique ``row_id`` cells
        (:func:`jaxcost.io.benchmarks.runs_frame`).
      ensemble, log_residuals_pool: for the interval (see ``predict_run_batch``).
      on_error: called with (row position, reason) as soon as a row fails; raising
        there stops at the first failure (strict mode).
      progress: progress bars of the plan search on stderr.
      plan_quantile: rank the plans of a blank-plan search by this quantile of the
        ensemble's step times (e.g. 0.9: pessimistic, against the optimiser's curse)
        instead of the point estimate; needs ``ensemble``.

    Returns:
      :class:`RowPredictions` over the rows of ``frame``, in order.

    Raises:
      DataError: ``plan_quantile`` outside (0, 1) or given without an ensemble.
    """
    if plan_quantile is not None and not (
        ensemble is not None and 0.0 < float(plan_quantile) < 1.0
    ):
        raise DataError(
            f"plan_quantile={plan_quantile!r}: expected a number in (0, 1)"
            + (" with a calibration that has an ensemble" if ensemble is None else "")
        )
    n = len(frame)
    errors: dict[int, str] = {}
    pos = {str(r): k for k, r in enumerate(frame["row_id"])}

    def fail(k: int, reason: str) -> None:
        reason = " ".join(str(reason).split())
        errors[k] = reason
        if on_error is not None:
            on_error(k, reason)

    work = frame.copy()
    work["target"] = "step_time_s"
    work["step_time_s"] = 1.0
    try:
        runs = runs_to_arrays(work, chips)
    except JaxcostError as err:  # every row excluded
        for k in range(n):
            fail(k, err.detail)
        runs = None
    if runs is not None:
        for rid, why in runs.excluded:
            fail(pos[str(rid)], why)
    plan_text = [""] * n
    searched = [""] * n
    columns: dict[str, np.ndarray] = {}
    if runs is not None:
        params_p, chips_p, runs, ens_p = at_run_precision(params, chips, runs, ensemble)
        where = [pos[str(r)] for r in runs.row_ids]
        plan = jax.tree.map(lambda x: np.array(x, dtype=float), runs.plan)
        missing = np.asarray(runs.plan_missing, dtype=bool)
        good = []
        for b, k in enumerate(where):
            one = take_runs(runs, [b])
            try:
                one, text, srch = best_plans_for_missing(
                    params_p, chips_p, one, progress=progress,
                    ensemble=None if plan_quantile is None else ens_p,
                    quantile=plan_quantile,
                )
            except JaxcostError as err:
                fail(k, err.detail)
                continue
            if missing[b]:
                for f in plan.__dataclass_fields__:
                    getattr(plan, f)[b] = float(np.asarray(getattr(one.plan, f))[0])
            plan_text[k], searched[k] = text[0], srch[0]
            good.append(b)
        runs = runs.replace(plan=plan, plan_missing=np.zeros_like(missing))
        if good:
            pred = predict_run_batch(
                params_p,
                chips_p,
                take_runs(runs, good),
                ensemble=ens_p,
                log_residuals_pool=log_residuals_pool,
            )
            for name, vals in pred.items():
                vals = np.asarray(vals)
                full = np.full(
                    n,
                    False if vals.dtype == bool else np.nan,
                    dtype=vals.dtype if vals.dtype == bool else float,
                )
                full[[where[b] for b in good]] = vals
                columns[name] = full
            t = columns["pred_step_time_s"]
            for b in good:
                k = where[b]
                if not (math.isfinite(t[k]) and t[k] > 0):
                    fail(k, f"non-finite predicted step time ({t[k]})")
    for k in errors:
        plan_text[k] = searched[k] = ""
        for col in columns.values():
            col[k] = False if col.dtype == bool else np.nan
    return RowPredictions(columns, tuple(plan_text), tuple(searched), dict(errors))


def target_errors(
    frame: pd.DataFrame, pred: RowPredictions, chips: Mapping[str, ChipSpec]
) -> np.ndarray:
    """Signed relative error, predicted / measured - 1, of each row's measured value.

    The measured value is the row's ``target`` (or the first given of step time,
    tokens/s per chip, MFU, HFU, FLOP/s per chip). MFU and HFU compare with the
    predicted MFU rescaled to the peak the source divided by
    (``mfu_peak_flop_per_s``) where the row gives one; HFU is compared as MFU
    (recompute FLOP not counted: an underestimate of the predicted HFU); achieved
    FLOP/s per chip with the predicted MFU times the run's peak
    (:func:`run_peak_flop_per_s`). NaN where a row has no measured value or failed.
    """
    n = len(frame)
    out = np.full(n, np.nan)
    cols = pred.columns
    if not cols:
        return out
    order = (
        "step_time_s",
        "tokens_per_s_per_chip",
        "mfu",
        "hfu",
        "flop_per_s_per_chip",
    )

    def num(r, name):
        v = r.get(name)
        try:
            v = float(v)
        except (TypeError, ValueError):
            return math.nan
        return v

    for k, (_, r) in enumerate(frame.iterrows()):
        if k in pred.errors:
            continue
        target = r.get("target") if r.get("target") in order else None
        if target is None or not math.isfinite(num(r, target)):
            target = next((c for c in order if math.isfinite(num(r, c))), None)
        if target is None:
            continue
        obs = num(r, target)
        key = r.get("chip_key")
        prec = str(r.get("precision") or "fp16_bf16")
        peak = run_peak_flop_per_s(chips[key], prec) if key in chips else math.nan
        mfu = cols["pred_mfu"][k]
        if target == "step_time_s":
            p = cols["pred_step_time_s"][k]
        elif target == "tokens_per_s_per_chip":
            p = cols["pred_tokens_per_s_per_chip"][k]
        elif target in ("mfu", "hfu"):
            src = num(r, "mfu_peak_flop_per_s")
            p = mfu * peak / src if math.isfinite(src) and src > 0 else mfu
        else:
            p = mfu * peak
        if obs > 0 and math.isfinite(p):
            out[k] = p / obs - 1.0
    return out
