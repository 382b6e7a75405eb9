"""Grouped cross-validation and bootstrap ensembles of the fit.

Folds leave out whole source groups (never single rows of a campaign); the bootstrap
resamples groups with replacement and refits every member from the full-data optimum,
all members in one vmapped program.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.calibrate.fit import BOOTSTRAP_LBFGS_STEPS, optimize_packed
from jaxcost.calibrate.metrics import ErrorRow, error_table
from jaxcost.calibrate.residuals import (
    FitOptions,
    initial_params,
    log_residuals_packed,
    pack_params,
    step_sign,
    unpack_params,
)
from jaxcost.calibrate.rows import DATASETS, FitData, x64
from jaxcost.errors import (
    DataError,
)
from jaxcost.model.params import (
    CostParams,
)

__all__ = [
    "CVResult",
    "BootstrapResult",
    "group_folds",
    "cross_validate",
    "bootstrap_weights",
    "bootstrap",
]


@dataclasses.dataclass(frozen=True)
class CVResult:
    """Outcome of :func:`cross_validate` (grouped: whole groups are held out).

    Attributes:
      folds: the held-out groups of each fold.
      step_log_residuals: ``(n_runs,)`` out-of-fold log(T_pred / T_obs).
      metrics: out-of-fold APE of step time (overall, family, chip, group).
      seconds: wall time, s.
    """

    folds: tuple[tuple[str, ...], ...]
    step_log_residuals: np.ndarray
    metrics: tuple[ErrorRow, ...]
    seconds: float


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """Outcome of :func:`bootstrap`.

    Attributes:
      params: ``CostParams`` with a leading ``(B,)`` axis on every leaf.
      losses: final loss of each resample, ``(B,)``.
      seconds: wall time, s.
    """

    params: CostParams
    losses: np.ndarray
    seconds: float


def group_folds(
    data: FitData, num_folds: int | None = None
) -> tuple[tuple[str, ...], ...]:
    """Folds of training-run groups: one group per fold (``num_folds=None``,
    leave-one-group-out) or ``num_folds`` folds of groups dealt round-robin in sorted
    order (deterministic)."""
    if data.runs is None:
        raise DataError("cross-validation needs training runs", column="group")
    groups = sorted(set(data.label("runs", "group")))
    if num_folds is None or num_folds >= len(groups):
        return tuple((g,) for g in groups)
    if num_folds < 2:
        raise DataError(f"num_folds={num_folds} must be >= 2", column="num_folds")
    return tuple(tuple(groups[i::num_folds]) for i in range(num_folds))


def _group_masks(data: FitData, held: Sequence[Sequence[str]]) -> dict[str, jax.Array]:
    """0/1 masks ``(F, n)`` per dataset: 0 on rows whose group is held out."""
    out = {}
    for d in DATASETS:
        if getattr(data, d) is None:
            continue
        g = np.asarray(data.label(d, "group"), dtype=object)
        out[d] = jnp.asarray(
            np.stack([~np.isin(g, list(h)) for h in held]).astype(float)
        )
    return out


def cross_validate(
    data: FitData,
    *,
    num_folds: int | None = None,
    options: FitOptions | None = None,
    params0: CostParams | None = None,
) -> CVResult:
    """Grouped cross-validation: each fold's groups are removed from every dataset,
    the model is fitted on the rest (all folds in one vmapped run) and the held-out
    training rows are predicted.

    Returns:
      CVResult with out-of-fold APE of step time overall, per family, chip and group.
    """
    options = FitOptions() if options is None else options
    t0 = time.perf_counter()
    folds = group_folds(data, num_folds)
    with x64():
        masks = _group_masks(data, folds)
        m0 = pack_params(initial_params(data, params0), data)
        mb = jnp.broadcast_to(m0, (len(folds),) + m0.shape)
        m, _ = optimize_packed(data, mb, masks, options, batched=True, desc="cv")
        res = np.asarray(
            jax.jit(
                jax.vmap(
                    lambda q, dat: log_residuals_packed(q, dat)["runs"],
                    in_axes=(0, None),
                )
            )(m, data)
        )
    g = np.asarray(data.label("runs", "group"), dtype=object)
    oof = np.full(g.shape, np.nan)
    for f, held in enumerate(folds):
        sel = np.isin(g, list(held))
        oof[sel] = res[f, sel]
    step = oof * step_sign(data)
    return CVResult(
        folds=folds,
        step_log_residuals=step,
        metrics=error_table(step, data),
        seconds=time.perf_counter() - t0,
    )


def bootstrap_weights(
    data: FitData, num_resamples: int, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Grouped bootstrap multiplicities ``(B, n)`` per dataset: in each dataset, its
    groups are drawn with replacement (as many draws as groups) and each row gets the
    count of its group."""
    rng = np.random.default_rng(seed)
    out = {}
    for d in DATASETS:
        if getattr(data, d) is None:
            continue
        g = np.asarray(data.label(d, "group"), dtype=object)
        uniq, inv = np.unique(g, return_inverse=True)
        draws = rng.integers(0, len(uniq), size=(num_resamples, len(uniq)))
        counts = np.stack([np.bincount(r, minlength=len(uniq)) for r in draws])
        out[d] = counts[:, inv].astype(float)
    return out


def bootstrap(
    data: FitData,
    num_resamples: int = 100,
    *,
    seed: int = 0,
    options: FitOptions | None = None,
    params0: CostParams | None = None,
) -> BootstrapResult:
    """Refit on ``num_resamples`` grouped bootstrap resamples, all in one vmapped run.

    Each resample starts from ``params0`` (pass the full-data fit: the resamples then
    need fewer steps; ``options`` default to 80 L-BFGS steps and no Adam, since Adam's
    first steps have the size of its learning rate and would move a warm start away
    from the optimum).

    Returns:
      BootstrapResult with a ``(B,)`` ensemble of parameters.
    """
    if num_resamples < 2:
        raise DataError(
            f"num_resamples={num_resamples} must be >= 2", column="bootstrap"
        )
    if options is None:
        options = FitOptions(adam_steps=0, lbfgs_steps=BOOTSTRAP_LBFGS_STEPS)
    t0 = time.perf_counter()
    with x64():
        w = {
            d: jnp.asarray(v)
            for d, v in bootstrap_weights(data, num_resamples, seed=seed).items()
        }
        m0 = pack_params(initial_params(data, params0), data)
        mb = jnp.broadcast_to(m0, (num_resamples,) + m0.shape)
        m, hist = optimize_packed(data, mb, w, options, batched=True, desc="bootstrap")
        p = unpack_params(m, data)
    return BootstrapResult(
        params=p, losses=np.asarray(hist)[:, -1], seconds=time.perf_counter() - t0
    )
