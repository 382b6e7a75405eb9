"""Residuals and the joint loss of the fit, over packed parameters.

One joint loss over three datasets, each a weighted mean of squared log ratios:

    L(theta) = sum_d lambda_d * sum_i w_i r_i^2 / sum_i w_i  -  rho * log_prior(theta)

* kernels (``roofline.op_time``): r = log(T_pred / T_obs) of one GEMM / attention /
  HBM-stream call (equivalently of its achieved FLOP/s or bytes/s);
* collectives (``collectives``): r = log(T_pred / T_obs) of one collective (times
  derived from nccl-tests bus bandwidths where only those are quoted);
* training runs (``step_time``): r = log(v_pred / v_obs) of the row's own target v:
  step time, tokens/s per chip, MFU (model FLOP, no recompute, divided by the peak the
  source used), HFU (recompute counted), or achieved model FLOP/s per chip.

``w_i`` is the row weight (campaign averages are down-weighted in the data), times a
resampling multiplicity (bootstrap) or a 0/1 fold mask (cross-validation). The fitted
leaves are packed into one matrix (:func:`pack_params`) so that many fits run as one
``jax.vmap``-ed program.

Symbols: r log residual, w row weight, lambda dataset weight, rho prior weight,
T time (s), v target value.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.calibrate.rows import DATASETS, TIME_TARGET, FitData
from jaxcost.model.collectives import collective_time
from jaxcost.model.hardware import ChipSpec, ClusterSpec
from jaxcost.model.params import (
    CHIP_SIGMA_SCALE,
    FAMILY_SIGMA_SCALE,
    PARAM_NAMES,
    CostParams,
    PhysicalParams,
    RawParams,
    default_params,
    prior_sigmas,
    to_physical,
    with_offsets,
    zero_offsets,
)
from jaxcost.model.roofline import op_time
from jaxcost.model.step_time import StepTime, predict_step_time_physical
from jaxcost.model.workload import (
    model_flop_per_token,
    recompute_flop_frac,
)

__all__ = [
    "FitOptions",
    "physical_from_matrix",
    "pack_params",
    "unpack_params",
    "prior_tables",
    "log_prior_packed",
    "with_network",
    "cluster_chips",
    "run_chips",
    "run_step_times",
    "run_values",
    "log_residuals",
    "log_residuals_packed",
    "step_sign",
    "base_weights",
    "loss_packed",
    "initial_params",
]


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """Options of the fit (all static).

    Attributes:
      dataset_weights: lambda_d for ("kernels", "collectives", "runs").
      prior_weight: rho, the weight of ``-log_prior`` relative to the mean squared
        log residuals (rho = 2 sigma^2 / N for Gaussian log-residuals of scale sigma
        over N rows).
      adam_steps: Adam iterations.
      adam_lr: Adam learning rate (raw units).
      lbfgs_steps: L-BFGS iterations after Adam.
      chunk: iterations per compiled call (progress is reported between calls).
      progress: print a progress bar on stderr.
    """

    dataset_weights: tuple[float, float, float] = (1.0, 1.0, 2.0)
    prior_weight: float = 1e-3
    adam_steps: int = 300
    adam_lr: float = 0.05
    lbfgs_steps: int = 150
    chunk: int = 50
    progress: bool = False


def physical_from_matrix(
    m: jax.Array, data: FitData, fam_idx, chip_idx
) -> PhysicalParams:
    nf = len(data.family_keys)
    raw = m[0][None, :] + m[1 + fam_idx] + m[1 + nf + chip_idx]
    return to_physical(RawParams(**{n: raw[:, j] for j, n in enumerate(PARAM_NAMES)}))


def pack_params(params: CostParams, data: FitData) -> jax.Array:
    """``CostParams`` as one ``(1 + F + C, P)`` matrix: the global raw row, then the
    offsets of ``data.family_keys`` and of ``data.chip_keys`` (missing: 0). Offsets of
    other families / chips are not represented (see :func:`unpack_params`)."""
    zero = zero_offsets()

    def row(r: RawParams) -> jax.Array:
        return jnp.stack(
            [jnp.asarray(getattr(r, n), dtype=float) for n in PARAM_NAMES], axis=-1
        )

    rows = (
        [row(params.global_raw)]
        + [row(params.family.get(k, zero)) for k in data.family_keys]
        + [row(params.chip.get(k, zero)) for k in data.chip_keys]
    )
    return jnp.stack(rows, axis=-2)


def unpack_params(
    m: jax.Array, data: FitData, base: CostParams | None = None
) -> CostParams:
    """Inverse of :func:`pack_params` (leading batch axes allowed); offsets of ``base``
    for families / chips not in ``data`` are kept."""

    def rec(v: jax.Array) -> RawParams:
        return RawParams(**{n: v[..., j] for j, n in enumerate(PARAM_NAMES)})

    nf = len(data.family_keys)
    fam = dict(base.family) if base is not None else {}
    chp = dict(base.chip) if base is not None else {}
    for i, k in enumerate(data.family_keys):
        fam[k] = rec(m[..., 1 + i, :])
    for i, k in enumerate(data.chip_keys):
        chp[k] = rec(m[..., 1 + nf + i, :])
    return CostParams(global_raw=rec(m[..., 0, :]), family=fam, chip=chp)


def prior_tables(data: FitData) -> tuple[jax.Array, jax.Array]:
    """Prior means and standard deviations of the packed matrix (as ``log_prior``)."""
    d = default_params()
    sg = prior_sigmas()
    mu0 = np.asarray([float(getattr(d.global_raw, n)) for n in PARAM_NAMES])
    s0 = np.asarray([float(getattr(sg, n)) for n in PARAM_NAMES])
    nf, nc = len(data.family_keys), len(data.chip_keys)
    mu = np.concatenate([mu0[None], np.zeros((nf + nc, len(PARAM_NAMES)))])
    sig = np.concatenate(
        [
            s0[None],
            np.tile(FAMILY_SIGMA_SCALE * s0, (nf, 1)),
            np.tile(CHIP_SIGMA_SCALE * s0, (nc, 1)),
        ]
    )
    return mu, sig


def log_prior_packed(m: jax.Array, data: FitData, tables=None) -> jax.Array:
    """``params.log_prior`` of the packed matrix (vectorised; same value).

    ``tables``: the result of ``prior_tables(data)`` (computed once, outside jit).
    """
    mu, sig = prior_tables(data) if tables is None else tables
    return -0.5 * jnp.sum(((m - mu) / sig) ** 2)


def _row_chips(data: FitData, chip_idx) -> ChipSpec:
    return jax.tree.map(lambda x: jnp.asarray(x)[chip_idx], data.chip_table)


def with_network(chip: ChipSpec, nic) -> ChipSpec:
    """``chip`` with the scale-out bandwidth ``nic`` of a run's cluster where it is
    given (NaN: the chip's own); scalars or ``(n,)`` arrays."""
    return chip.replace(
        scaleout_bytes_per_s=jnp.where(jnp.isnan(nic), chip.scaleout_bytes_per_s, nic)
    )


def cluster_chips(data: FitData) -> ChipSpec:
    """Chips of the training rows as their clusters had them: the scale-out bandwidth
    of the row's network where the row gives one (``scaleout_bytes_per_s``)."""
    r = data.runs
    return with_network(_row_chips(data, r.chip_idx), r.scaleout_bytes_per_s)


def run_chips(data: FitData) -> ChipSpec:
    """Chips of the training rows, with the FP8 peak in place of the BF16 one on FP8
    rows (``roofline.peak_flop_per_s(precision="fp8")``: the FP8 peak where the chip
    has one), so that one ``precision="bf16"`` evaluation serves every row."""
    r = data.runs
    chip = _row_chips(data, r.chip_idx)
    fp8 = jnp.asarray(np.asarray([p == "fp8" for p in data.precision_runs]))
    f8 = jnp.asarray(chip.peak_flop_per_s_fp8)
    use = fp8 & (f8 > 0)
    return chip.replace(
        peak_flop_per_s_bf16=jnp.where(
            use, jnp.where(use, f8, 1.0), chip.peak_flop_per_s_bf16
        )
    )


def _kernel_times(m: jax.Array, data: FitData) -> jax.Array:
    r = data.kernels
    pp = physical_from_matrix(m, data, r.fam_idx, r.chip_idx)
    chip = _row_chips(data, r.chip_idx)
    t16 = op_time(pp, chip, r.flop, r.num_bytes, r.op_kind, precision="bf16")
    t8 = op_time(pp, chip, r.flop, r.num_bytes, r.op_kind, precision="fp8")
    return jnp.where(r.fp8, t8, t16)


def _collective_times(m: jax.Array, data: FitData) -> jax.Array:
    r = data.collectives
    pp = physical_from_matrix(m, data, r.fam_idx, r.chip_idx)
    chip = _row_chips(data, r.chip_idx)

    def one(pp_i, chip_i, code, nb, n, rpd):
        default = jnp.minimum(n, jnp.maximum(chip_i.scaleup_domain_size, 1.0))
        k = jnp.where(jnp.isnan(rpd), default, rpd)
        return collective_time(code, pp_i, chip_i, nb, n, ranks_per_domain=k)

    return jax.vmap(one)(
        pp, chip, r.code, r.num_bytes, r.group_size, r.ranks_per_domain
    )


def run_step_times(m: jax.Array, data: FitData) -> StepTime:
    """The ``StepTime`` of every training row (``(n,)`` leaves), on the row's own
    cluster network and at its GEMM precision."""
    r = data.runs
    pp = physical_from_matrix(m, data, r.fam_idx, r.chip_idx)
    chip = cluster_chips(data)
    fp8 = jnp.asarray(
        np.asarray([p == "fp8" for p in data.precision_runs], dtype=float)
    )

    def one(pp_i, chip_i, w, plan, n, f8):
        # f8: traced precision flag (1 = FP8 GEMMs), see step_time.gemm_peak_flop_per_s
        return predict_step_time_physical(
            pp_i, ClusterSpec(chip=chip_i, num_chips=n), w, plan, precision=f8
        )

    return jax.vmap(one)(pp, chip, r.workload, r.plan, r.num_chips, fp8)


def run_values(m: jax.Array, data: FitData) -> tuple[jax.Array, jax.Array]:
    """Predicted target value and step time of every training row."""
    t = run_step_times(m, data).total_s
    return _target_from_time(t, data, run_chips(data)), t


def _target_from_time(t: jax.Array, data: FitData, chip: ChipSpec) -> jax.Array:
    r = data.runs
    w = r.workload
    chip_peak = chip.peak_flop_per_s_bf16  # FP8 peak on FP8 rows (run_chips)
    peak = jnp.where(jnp.isnan(r.peak_flop_per_s), chip_peak, r.peak_flop_per_s)
    tokens = w.global_batch_seqs * w.seq_len
    model_flop = jax.vmap(model_flop_per_token)(w) * tokens
    hw_flop = model_flop * (1.0 + jax.vmap(recompute_flop_frac)(w, r.plan) / 3.0)
    per_chip_s = t * r.num_chips
    k = r.target_kind
    return jnp.select(
        [k == 0, k == 1, k == 2, k == 3],
        [
            t,
            tokens / per_chip_s,
            model_flop / (per_chip_s * peak),
            hw_flop / (per_chip_s * peak),
        ],
        model_flop / per_chip_s,
    )


def log_residuals(params: CostParams, data: FitData) -> dict[str, jax.Array]:
    """log(pred / obs) of every row of every present dataset (pure, jit-able)."""
    return log_residuals_packed(pack_params(params, data), data)


def log_residuals_packed(m: jax.Array, data: FitData) -> dict[str, jax.Array]:
    out = {}
    if data.kernels is not None:
        out["kernels"] = jnp.log(_kernel_times(m, data) / data.kernels.obs)
    if data.collectives is not None:
        out["collectives"] = jnp.log(_collective_times(m, data) / data.collectives.obs)
    if data.runs is not None:
        v, _ = run_values(m, data)
        out["runs"] = jnp.log(v / data.runs.obs)
    return out


def step_sign(data: FitData) -> np.ndarray:
    """+1 where the target is a time, -1 where it is a rate (T ~ 1/rate)."""
    k = np.asarray(data.runs.target_kind)
    return np.where(k == TIME_TARGET, 1.0, -1.0)


def base_weights(data: FitData) -> dict[str, jax.Array]:
    return {
        d: getattr(data, d).weight for d in DATASETS if getattr(data, d) is not None
    }


def loss_packed(
    m: jax.Array, mult: dict[str, jax.Array], data: FitData, tables, options: FitOptions
) -> jax.Array:
    """Loss of the packed parameter matrix ``m`` (see :func:`pack_params`).

    ``mult``: per-dataset row multiplicities (bootstrap counts, fold masks);
    ``tables``: ``prior_tables(data)``.
    """
    lam = dict(zip(DATASETS, options.dataset_weights, strict=True))
    res = log_residuals_packed(m, data)
    total = jnp.zeros(())
    for d, r in res.items():
        w = getattr(data, d).weight * mult[d]
        total = total + lam[d] * jnp.sum(w * r**2) / jnp.maximum(jnp.sum(w), 1e-12)
    return total - options.prior_weight * log_prior_packed(m, data, tables)


def initial_params(data: FitData, params: CostParams | None = None) -> CostParams:
    """Defaults (or ``params``) with zero offsets registered for every family and
    chip in the data (so that they become learnable)."""
    p = default_params() if params is None else params
    p = jax.tree.map(lambda x: jnp.asarray(x, dtype=float), p)
    return with_offsets(p, families=data.family_keys, chips=data.chip_keys)
