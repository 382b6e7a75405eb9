"""Calibration: fit ``CostParams`` to published benchmarks, cross-validate, bootstrap.

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
resampling multiplicity (bootstrap) or a 0/1 fold mask (cross-validation). The
optimiser is Adam followed by L-BFGS (``optax.lbfgs`` with its zoom line search), a
fixed number of steps each, so that the same data and options always give
bit-identical parameters, and so that many fits (folds, bootstrap resamples) run as
one ``jax.vmap``-ed program.

The loss needs 64-bit floats. The public entry points (:func:`fit`,
:func:`cross_validate`, :func:`bootstrap`, :func:`predict_runs`) run inside
``jax.enable_x64(True)`` (a thread-local context); the library never changes the global config.

Training rows whose parallel plan is blank in the source are left out of the fit (a
plan search inside the loss would be too slow) and listed in ``FitData.excluded``.

Symbols: r log residual, w row weight, lambda dataset weight, rho prior weight,
T time (s), v target value, APE absolute percentage error |T_pred / T_obs - 1|.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxcost.model.collectives import Collective, collective_time
from jaxcost.errors import DataError, JaxcostError, NumericalError
from jaxcost.model.hardware import ChipSpec, ClusterSpec
from jaxcost.model.params import (
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
from jaxcost.model.roofline import OpKind, op_time
from jaxcost.model.step_time import predict_step_time_physical
from jaxcost.model.workload import model_flop_per_token, recompute_flop_frac

#: Names of the three datasets, in loss order.
DATASETS = ("kernels", "collectives", "runs")

#: Target kinds of training rows (same order as ``data.TARGET_KINDS``).
TARGET_KINDS = ("step_time_s", "tokens_per_s_per_chip", "mfu", "hfu",
                "flop_per_s_per_chip")
_TIME_TARGET = 0

# Collective kinds of ``data.COLLECTIVE_KINDS`` that the alpha-beta model covers.
_COLLECTIVE_CODES = {"all_reduce": Collective.ALL_REDUCE,
                     "all_gather": Collective.ALL_GATHER,
                     "reduce_scatter": Collective.REDUCE_SCATTER,
                     "all_to_all": Collective.ALL_TO_ALL,
                     "send_recv": Collective.SEND_RECV}
_DATA_COLLECTIVE_KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                          "send_recv", "memcpy_h2d", "memcpy_d2h", "memcpy_d2d", "other")
_DATA_KERNEL_KINDS = ("gemm", "moe_gemm", "attention", "mla", "hbm_stream",
                      "transformer_layer")
_DATA_PRECISIONS = ("fp64", "fp32", "tf32", "fp16_bf16", "fp8")
#: Bytes per element of the GEMM operands at each fitted precision.
_ELEM_BYTES = {"fp16_bf16": 2.0, "fp8": 1.0}
#: Array size assumed for HBM-stream rows that quote only a bandwidth, bytes (STREAM
#: and copy benchmarks run far above any launch-overhead scale; the fitted plateau is
#: what such rows identify).
HBM_STREAM_BYTES = 2.0**30




def _x64():
    """Context in which 64-bit floats are on (thread-local; global config untouched)."""
    return jax.enable_x64(True)


# ----------------------------------------------------------------------- records


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


@struct.dataclass
class _KernelRows:
    chip_idx: jax.Array
    fam_idx: jax.Array
    flop: jax.Array
    num_bytes: jax.Array
    op_kind: jax.Array
    fp8: jax.Array
    obs: jax.Array  # time, s
    weight: jax.Array


@struct.dataclass
class _CollectiveRows:
    chip_idx: jax.Array
    fam_idx: jax.Array
    code: jax.Array
    num_bytes: jax.Array
    group_size: jax.Array
    ranks_per_domain: jax.Array  # NaN: the model's default
    obs: jax.Array  # time, s
    weight: jax.Array


@struct.dataclass
class _RunRows:
    chip_idx: jax.Array
    fam_idx: jax.Array
    workload: Any
    plan: Any
    num_chips: jax.Array
    target_kind: jax.Array
    peak_flop_per_s: jax.Array  # the source's peak; NaN: the chip's
    obs: jax.Array  # target value, SI
    weight: jax.Array
    scaleout_bytes_per_s: jax.Array  # the run's cluster NIC bandwidth; NaN: the chip's


@struct.dataclass
class FitData:
    """Benchmark rows as arrays, ready for the loss.

    Attributes:
      kernels, collectives, runs: row arrays (None when a dataset is absent).
      chip_table: ``ChipSpec`` with ``(u,)`` leaves, one per chip key of ``chip_keys``.
      chip_keys, family_keys: the chips / families indexed by the rows (static).
      labels: ((dataset, ((column, per-row tuple), ...)), ...) with columns
        ``row_id``, ``group``, ``chip``, ``family`` (static, hashable; read with
        :meth:`label`).
      precision_runs: per training row "fp8" or "fp16_bf16" (static).
      excluded: dataset -> ((row_id, reason), ...) rows left out (static).
    """

    kernels: _KernelRows | None
    collectives: _CollectiveRows | None
    runs: _RunRows | None
    chip_table: ChipSpec
    chip_keys: tuple[str, ...] = struct.field(pytree_node=False)
    family_keys: tuple[str, ...] = struct.field(pytree_node=False)
    labels: Any = struct.field(pytree_node=False)
    precision_runs: tuple[str, ...] = struct.field(pytree_node=False)
    excluded: Any = struct.field(pytree_node=False)

    def label(self, dataset: str, column: str) -> tuple[str, ...]:
        """Per-row labels (``row_id``, ``group``, ``chip``, ``family``) of a dataset."""
        return dict(dict(self.labels)[dataset])[column]

    def excluded_rows(self, dataset: str) -> tuple[tuple[str, str], ...]:
        """(row_id, reason) of the rows of ``dataset`` left out of the fit."""
        return dict(self.excluded)[dataset]

    def num_rows(self, name: str) -> int:
        rows = getattr(self, name)
        return 0 if rows is None else int(rows.obs.shape[0])


@dataclasses.dataclass(frozen=True)
class ErrorRow:
    """Absolute percentage errors of step time over a set of training rows."""

    level: str  # "overall", "family", "chip", "group"
    key: str
    n: int
    median_ape: float
    mean_ape: float


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
      params: fitted ``CostParams``.
      loss: final loss.
      loss_history: loss at every iteration (Adam then L-BFGS), ``(steps,)``.
      dataset_losses: dataset -> weighted mean squared log residual at the optimum.
      log_residuals: dataset -> ``(n,)`` log(pred / obs) of each row's target.
      step_log_residuals: ``(n_runs,)`` log(T_pred / T_obs) of training step time
        (rate targets converted: T is proportional to 1 / rate).
      step_time_s: ``(n_runs,)`` predicted step time, s.
      metrics: in-sample APE of training step time (overall, family, chip, group).
      seconds: wall time of the fit, s.
    """

    params: CostParams
    loss: float
    loss_history: np.ndarray
    dataset_losses: dict[str, float]
    log_residuals: dict[str, np.ndarray]
    step_log_residuals: np.ndarray
    step_time_s: np.ndarray
    metrics: tuple[ErrorRow, ...]
    seconds: float


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


# ------------------------------------------------------------------ data -> arrays


#: ``implementation`` values of kernel rows whose attention materialises the T x T
#: score matrix (eager framework attention), matched case-insensitively.
_UNFUSED_ATTENTION = ("pytorch", "pytorch standard attention", "standard attention")


def _unfused_attention(kernels, i: int) -> bool:
    impl = getattr(kernels, "implementations", ())
    return bool(impl) and impl[i].strip().lower() in _UNFUSED_ATTENTION


def _family_of(chips: Mapping[str, ChipSpec], key: str) -> str:
    return chips[key].family


def _index(values: Sequence[str], table: Sequence[str]) -> np.ndarray:
    pos = {k: i for i, k in enumerate(table)}
    return np.asarray([pos[v] for v in values], dtype=np.int32)


def _check_chips(keys, chips, dataset):
    for k in keys:
        if k not in chips:
            from jaxcost.errors import UnknownChipError
            raise UnknownChipError(f"unknown chip key '{k}'", file=dataset,
                                   column="chip_key")


def build_fit_data(chips: Mapping[str, ChipSpec], *, runs=None, collectives=None,
                   kernels=None) -> FitData:
    """Select the fittable rows of ``data.RunBatch`` / ``CollectiveBatch`` /
    ``KernelBatch`` and turn them into :class:`FitData`.

    Left out (and listed in ``FitData.excluded``): training rows with a blank plan;
    collectives that are copies or otherwise not modelled, or lack a time, size or
    group size; kernels that are not GEMM / attention / HBM streams, are in a
    precision other than FP16/BF16/FP8, or whose FLOP count or time is unknown.

    Args:
      chips: chip database keyed by chip key.
      runs, collectives, kernels: batches from ``jaxcost.data`` (any may be None).

    Returns:
      FitData.

    Raises:
      DataError: no fittable row at all; UnknownChipError: a chip key not in ``chips``.
    """
    excluded: dict[str, list] = {d: [] for d in DATASETS}
    used_keys: list[str] = []
    krows = crows = rrows = None
    klab = clab = rlab = None
    prec_runs: tuple[str, ...] = ()

    if kernels is not None:
        kind = np.asarray(kernels.kind)
        prec = np.asarray(kernels.precision)
        flop = np.asarray(kernels.flop, dtype=float)
        t = np.asarray(kernels.time_s, dtype=float)
        bw = np.asarray(kernels.bytes_per_s, dtype=float)
        m, n, k = (np.asarray(x, dtype=float) for x in (kernels.m, kernels.n, kernels.k))
        sel, rec = [], {"flop": [], "bytes": [], "kind": [], "fp8": [], "obs": []}
        for i, rid in enumerate(kernels.row_ids):
            kname = _DATA_KERNEL_KINDS[int(kind[i])]
            pname = "fp16_bf16" if int(prec[i]) < 0 else _DATA_PRECISIONS[int(prec[i])]
            why = ""
            if kname in ("gemm", "moe_gemm", "attention"):
                if pname not in _ELEM_BYTES:
                    why = f"precision {pname} not fitted"
                elif not (math.isfinite(flop[i]) and flop[i] > 0):
                    why = "FLOP count unknown"
                elif not (math.isfinite(t[i]) and t[i] > 0):
                    why = "no time or FLOP/s"
                elif kname == "attention" and _unfused_attention(kernels, i):
                    why = ("unfused attention (score matrix through HBM), not the "
                           "flash-style attention op of the step model")
                else:
                    if kname == "attention":
                        nb, ok = 0.0, OpKind.ATTENTION
                    else:
                        groups = flop[i] / (2.0 * m[i] * n[i] * k[i])
                        nb = (m[i] * k[i] + k[i] * n[i] + m[i] * n[i]) * groups \
                            * _ELEM_BYTES[pname]
                        ok = OpKind.MATMUL
                    rec["flop"].append(flop[i])
                    rec["bytes"].append(nb)
                    rec["kind"].append(int(ok))
                    rec["fp8"].append(pname == "fp8")
                    rec["obs"].append(t[i])
            elif kname == "hbm_stream":
                if not (math.isfinite(bw[i]) and bw[i] > 0):
                    why = "no bandwidth"
                else:
                    rec["flop"].append(0.0)
                    rec["bytes"].append(HBM_STREAM_BYTES)
                    rec["kind"].append(int(OpKind.ELEMENTWISE))
                    rec["fp8"].append(False)
                    rec["obs"].append(HBM_STREAM_BYTES / bw[i])
            else:
                why = f"kernel kind {kname} not modelled by roofline.op_time"
            if why:
                excluded["kernels"].append((rid, why))
            else:
                sel.append(i)
        if sel:
            keys = [kernels.chip_keys[i] for i in sel]
            _check_chips(keys, chips, "kernels")
            used_keys += keys
            klab = {"row_id": tuple(kernels.row_ids[i] for i in sel),
                    "group": tuple(kernels.groups[i] for i in sel), "chip": tuple(keys)}
            krows = {"flop": np.asarray(rec["flop"]), "num_bytes": np.asarray(rec["bytes"]),
                     "op_kind": np.asarray(rec["kind"], np.int32),
                     "fp8": np.asarray(rec["fp8"]), "obs": np.asarray(rec["obs"]),
                     "weight": np.ones(len(sel))}

    if collectives is not None:
        kind = np.asarray(collectives.kind)
        nr = np.asarray(collectives.num_ranks, dtype=float)
        nn = np.asarray(collectives.num_nodes, dtype=float)
        mb = np.asarray(collectives.message_bytes, dtype=float)
        t = np.asarray(collectives.time_s, dtype=float)
        sel, codes = [], []
        for i, rid in enumerate(collectives.row_ids):
            cname = _DATA_COLLECTIVE_KINDS[int(kind[i])]
            why = ""
            if cname not in _COLLECTIVE_CODES:
                why = f"collective kind {cname} not modelled"
            elif not (math.isfinite(nr[i]) and nr[i] >= 2):
                why = "group size unknown or < 2"
            elif not (math.isfinite(mb[i]) and mb[i] > 0):
                why = "message size unknown"
            elif not (math.isfinite(t[i]) and t[i] > 0):
                why = "no time or bandwidth"
            if why:
                excluded["collectives"].append((rid, why))
            else:
                sel.append(i)
                codes.append(int(_COLLECTIVE_CODES[cname]))
        if sel:
            keys = [collectives.chip_keys[i] for i in sel]
            _check_chips(keys, chips, "collectives")
            used_keys += keys
            s = np.asarray(sel)
            with np.errstate(invalid="ignore", divide="ignore"):
                rpd = np.where(np.isfinite(nn[s]) & (nn[s] >= 1), nr[s] / nn[s], np.nan)
            clab = {"row_id": tuple(collectives.row_ids[i] for i in sel),
                    "group": tuple(collectives.groups[i] for i in sel),
                    "chip": tuple(keys)}
            crows = {"code": np.asarray(codes, np.int32), "num_bytes": mb[s],
                     "group_size": nr[s], "ranks_per_domain": rpd, "obs": t[s],
                     "weight": np.ones(len(sel))}

    if runs is not None:
        missing = np.asarray(runs.plan_missing, dtype=bool)
        excluded["runs"] += list(runs.excluded)
        sel = []
        for i, rid in enumerate(runs.row_ids):
            if missing[i]:
                excluded["runs"].append((rid, "parallel plan blank in the source"))
            else:
                sel.append(i)
        if sel:
            s = np.asarray(sel)
            keys = [runs.chip_keys[i] for i in sel]
            _check_chips(keys, chips, "runs")
            used_keys += keys
            take = lambda x: jnp.asarray(np.asarray(x)[s])  # noqa: E731
            rlab = {"row_id": tuple(runs.row_ids[i] for i in sel),
                    "group": tuple(runs.groups[i] for i in sel), "chip": tuple(keys)}
            prec_runs = tuple(runs.precision[i] for i in sel)
            rrows = {"workload": jax.tree.map(take, runs.workload),
                     "plan": jax.tree.map(take, runs.plan),
                     "num_chips": np.asarray(runs.num_chips, float)[s],
                     "target_kind": np.asarray(runs.target_kind, np.int32)[s],
                     "peak_flop_per_s": np.asarray(runs.peak_flop_per_s, float)[s],
                     "obs": np.asarray(runs.target_value, float)[s],
                     "weight": np.asarray(runs.weight, float)[s],
                     "scaleout_bytes_per_s":
                         np.asarray(runs.scaleout_bytes_per_s, float)[s]}

    if krows is None and crows is None and rrows is None:
        raise DataError("no fittable benchmark row (every row was excluded)")
    chip_keys = tuple(sorted(set(used_keys)))
    family_keys = tuple(sorted({_family_of(chips, k) for k in chip_keys}))
    from jaxcost.model.hardware import stack_chips
    chip_table = stack_chips([chips[k] for k in chip_keys])

    def idx(lab):
        c = _index(lab["chip"], chip_keys)
        f = _index([_family_of(chips, k) for k in lab["chip"]], family_keys)
        lab["family"] = tuple(_family_of(chips, k) for k in lab["chip"])
        return jnp.asarray(c), jnp.asarray(f)

    def arrays(d):
        return {k: (v if k in ("workload", "plan") else jnp.asarray(v))
                for k, v in d.items()}

    kr = cr = rr = None
    if krows is not None:
        c, f = idx(klab)
        kr = _KernelRows(chip_idx=c, fam_idx=f, **arrays(krows))
    if crows is not None:
        c, f = idx(clab)
        cr = _CollectiveRows(chip_idx=c, fam_idx=f, **arrays(crows))
    if rrows is not None:
        c, f = idx(rlab)
        rr = _RunRows(chip_idx=c, fam_idx=f, **arrays(rrows))
    labels = tuple((d, None if lab is None else tuple(lab.items()))
                   for d, lab in zip(DATASETS, (klab, clab, rlab), strict=True))
    return FitData(kernels=kr, collectives=cr, runs=rr, chip_table=chip_table,
                   chip_keys=chip_keys, family_keys=family_keys, labels=labels,
                   precision_runs=prec_runs,
                   excluded=tuple((d, tuple(excluded[d])) for d in DATASETS))


def benchmark_kind(path: str) -> str:
    """Benchmark kind of a CSV from its header: ``training_runs`` (a ``target``
    column), ``collectives`` (``collective_kind``) or ``kernels`` (``kernel_kind``).

    Raises:
      JaxcostError: the file cannot be read or has none of those columns.
    """
    import csv

    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
    except OSError as err:
        raise JaxcostError(f"cannot read file ({err.strerror})", file=path) from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"expected a UTF-8 CSV file ({err})", file=path) from None
    if "kernel_kind" in header:
        return "kernels"
    if "collective_kind" in header:
        return "collectives"
    if "target" in header:
        return "training_runs"
    raise JaxcostError("cannot tell the benchmark kind; expected a 'target', "
                       "'collective_kind' or 'kernel_kind' column", file=path,
                       row=1, column="target")


def load_fit_files(paths: Sequence[str], chips: Mapping[str, ChipSpec]
                   ) -> tuple[FitData, dict[str, str]]:
    """``FitData`` of benchmark CSVs (at most one per kind, told apart by
    :func:`benchmark_kind`), and the SHA-256 of each file by base name (provenance).

    Raises:
      JaxcostError: an unreadable or malformed file, two files of one kind, or rows
        the builders reject; the message names the file.
    """
    import hashlib
    import os

    from jaxcost.io import benchmarks as D

    batches: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    conv = {"training_runs": lambda d: D.runs_to_arrays(d, chips),
            "collectives": D.collectives_to_arrays,
            "kernels": D.kernels_to_arrays}
    for path in paths:
        kind = benchmark_kind(path)
        if kind in batches:
            raise JaxcostError(f"a second {kind} file; give one file per kind",
                               file=path)
        df = D.load_benchmarks(kind, path)
        try:
            batches[kind] = conv[kind](df)
        except JaxcostError as err:
            raise err.in_file(path) from None
        with open(path, "rb") as fh:
            hashes[os.path.basename(path)] = hashlib.sha256(fh.read()).hexdigest()
    try:
        fd = build_fit_data(chips, runs=batches.get("training_runs"),
                            collectives=batches.get("collectives"),
                            kernels=batches.get("kernels"))
    except JaxcostError as err:
        raise err.in_file(", ".join(paths)) from None
    return fd, hashes


# ------------------------------------------------------------------- predictions


def _row_physical(params: CostParams, data: FitData, fam_idx, chip_idx
                  ) -> PhysicalParams:
    """Physical parameters of each row (global + family + chip offsets), ``(n,)``."""
    m = pack_params(params, data)
    return _physical_from_matrix(m, data, fam_idx, chip_idx)


def _physical_from_matrix(m: jax.Array, data: FitData, fam_idx, chip_idx
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
        return jnp.stack([jnp.asarray(getattr(r, n), dtype=float) for n in PARAM_NAMES],
                         axis=-1)

    rows = ([row(params.global_raw)]
            + [row(params.family.get(k, zero)) for k in data.family_keys]
            + [row(params.chip.get(k, zero)) for k in data.chip_keys])
    return jnp.stack(rows, axis=-2)


def unpack_params(m: jax.Array, data: FitData, base: CostParams | None = None
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


def _prior_tables(data: FitData) -> tuple[jax.Array, jax.Array]:
    """Prior means and standard deviations of the packed matrix (as ``log_prior``)."""
    from jaxcost.model.params import CHIP_SIGMA_SCALE, FAMILY_SIGMA_SCALE
    d = default_params()
    sg = prior_sigmas()
    mu0 = np.asarray([float(getattr(d.global_raw, n)) for n in PARAM_NAMES])
    s0 = np.asarray([float(getattr(sg, n)) for n in PARAM_NAMES])
    nf, nc = len(data.family_keys), len(data.chip_keys)
    mu = np.concatenate([mu0[None], np.zeros((nf + nc, len(PARAM_NAMES)))])
    sig = np.concatenate([s0[None], np.tile(FAMILY_SIGMA_SCALE * s0, (nf, 1)),
                          np.tile(CHIP_SIGMA_SCALE * s0, (nc, 1))])
    return mu, sig


def log_prior_packed(m: jax.Array, data: FitData, tables=None) -> jax.Array:
    """``params.log_prior`` of the packed matrix (vectorised; same value).

    ``tables``: the result of ``_prior_tables(data)`` (computed once, outside jit).
    """
    mu, sig = _prior_tables(data) if tables is None else tables
    return -0.5 * jnp.sum(((m - mu) / sig) ** 2)


def _row_chips(data: FitData, chip_idx) -> ChipSpec:
    return jax.tree.map(lambda x: jnp.asarray(x)[chip_idx], data.chip_table)


def _with_network(chip: ChipSpec, nic) -> ChipSpec:
    """``chip`` with the scale-out bandwidth ``nic`` of a run's cluster where it is
    given (NaN: the chip's own); scalars or ``(n,)`` arrays."""
    return chip.replace(scaleout_bytes_per_s=jnp.where(
        jnp.isnan(nic), chip.scaleout_bytes_per_s, nic))


def _cluster_chips(data: FitData) -> ChipSpec:
    """Chips of the training rows as their clusters had them: the scale-out bandwidth
    of the row's network where the row gives one (``scaleout_bytes_per_s``)."""
    r = data.runs
    return _with_network(_row_chips(data, r.chip_idx), r.scaleout_bytes_per_s)


def _run_chips(data: FitData) -> ChipSpec:
    """Chips of the training rows, with the FP8 peak in place of the BF16 one on FP8
    rows (``roofline.peak_flop_per_s(precision="fp8")``: the FP8 peak where the chip
    has one), so that one ``precision="bf16"`` evaluation serves every row."""
    r = data.runs
    chip = _row_chips(data, r.chip_idx)
    fp8 = jnp.asarray(np.asarray([p == "fp8" for p in data.precision_runs]))
    f8 = jnp.asarray(chip.peak_flop_per_s_fp8)
    use = fp8 & (f8 > 0)
    return chip.replace(peak_flop_per_s_bf16=jnp.where(use, jnp.where(use, f8, 1.0),
                                                       chip.peak_flop_per_s_bf16))


def _kernel_times(m: jax.Array, data: FitData) -> jax.Array:
    r = data.kernels
    pp = _physical_from_matrix(m, data, r.fam_idx, r.chip_idx)
    chip = _row_chips(data, r.chip_idx)
    t16 = op_time(pp, chip, r.flop, r.num_bytes, r.op_kind, precision="bf16")
    t8 = op_time(pp, chip, r.flop, r.num_bytes, r.op_kind, precision="fp8")
    return jnp.where(r.fp8, t8, t16)


def _collective_times(m: jax.Array, data: FitData) -> jax.Array:
    r = data.collectives
    pp = _physical_from_matrix(m, data, r.fam_idx, r.chip_idx)
    chip = _row_chips(data, r.chip_idx)

    def one(pp_i, chip_i, code, nb, n, rpd):
        default = jnp.minimum(n, jnp.maximum(chip_i.scaleup_domain_size, 1.0))
        k = jnp.where(jnp.isnan(rpd), default, rpd)
        return collective_time(code, pp_i, chip_i, nb, n, ranks_per_domain=k)

    return jax.vmap(one)(pp, chip, r.code, r.num_bytes, r.group_size,
                         r.ranks_per_domain)


def _run_values(m: jax.Array, data: FitData) -> tuple[jax.Array, jax.Array]:
    """Predicted target value and step time of every training row."""
    r = data.runs
    pp = _physical_from_matrix(m, data, r.fam_idx, r.chip_idx)
    chip = _cluster_chips(data)
    fp8 = jnp.asarray(np.asarray([p == "fp8" for p in data.precision_runs],
                                 dtype=float))

    def total(pp_i, chip_i, w, plan, n, f8):
        # f8: traced precision flag (1 = FP8 GEMMs), see step_time.gemm_peak_flop_per_s
        st = predict_step_time_physical(pp_i, ClusterSpec(chip=chip_i, num_chips=n),
                                        w, plan, precision=f8)
        return st.total_s

    t = jax.vmap(total)(pp, chip, r.workload, r.plan, r.num_chips, fp8)
    return _target_from_time(t, data, _run_chips(data)), t


def _target_from_time(t: jax.Array, data: FitData, chip: ChipSpec) -> jax.Array:
    r = data.runs
    w = r.workload
    chip_peak = chip.peak_flop_per_s_bf16  # FP8 peak on FP8 rows (_run_chips)
    peak = jnp.where(jnp.isnan(r.peak_flop_per_s), chip_peak, r.peak_flop_per_s)
    tokens = w.global_batch_seqs * w.seq_len
    model_flop = jax.vmap(model_flop_per_token)(w) * tokens
    hw_flop = model_flop * (1.0 + jax.vmap(recompute_flop_frac)(w, r.plan) / 3.0)
    per_chip_s = t * r.num_chips
    k = r.target_kind
    return jnp.select(
        [k == 0, k == 1, k == 2, k == 3],
        [t, tokens / per_chip_s, model_flop / (per_chip_s * peak),
         hw_flop / (per_chip_s * peak)],
        model_flop / per_chip_s)


def log_residuals(params: CostParams, data: FitData) -> dict[str, jax.Array]:
    """log(pred / obs) of every row of every present dataset (pure, jit-able)."""
    return _log_residuals_packed(pack_params(params, data), data)


def _log_residuals_packed(m: jax.Array, data: FitData) -> dict[str, jax.Array]:
    out = {}
    if data.kernels is not None:
        out["kernels"] = jnp.log(_kernel_times(m, data) / data.kernels.obs)
    if data.collectives is not None:
        out["collectives"] = jnp.log(_collective_times(m, data)
                                     / data.collectives.obs)
    if data.runs is not None:
        v, _ = _run_values(m, data)
        out["runs"] = jnp.log(v / data.runs.obs)
    return out


def _step_sign(data: FitData) -> np.ndarray:
    """+1 where the target is a time, -1 where it is a rate (T ~ 1/rate)."""
    k = np.asarray(data.runs.target_kind)
    return np.where(k == _TIME_TARGET, 1.0, -1.0)


# ------------------------------------------------------------------------- loss


def _base_weights(data: FitData) -> dict[str, jax.Array]:
    return {d: getattr(data, d).weight for d in DATASETS if getattr(data, d) is not None}


def _loss(m: jax.Array, mult: dict[str, jax.Array], data: FitData, tables,
          options: FitOptions) -> jax.Array:
    """Loss of the packed parameter matrix ``m`` (see :func:`pack_params`).

    ``mult``: per-dataset row multiplicities (bootstrap counts, fold masks);
    ``tables``: ``_prior_tables(data)``.
    """
    lam = dict(zip(DATASETS, options.dataset_weights, strict=True))
    res = _log_residuals_packed(m, data)
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


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.t0 = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        frac = done / max(self.total, 1)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{self.desc:<12} [{bar:<30}] {done}/{self.total} "
                         f"{time.perf_counter() - self.t0:6.1f} s")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _check_finite(values: np.ndarray, stage: str, start: int) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        where = np.argwhere(bad)[0]
        step = start + int(where[-1])
        member = f" (batch member {int(where[0])})" if values.ndim > 1 else ""
        raise NumericalError(f"non-finite loss or gradient in {stage} at iteration "
                             f"{step}{member}; check the data for zero or negative "
                             "targets, or lower adam_lr")


#: L-BFGS iterations of a bootstrap member, warm-started from the full-data fit (the
#: resampled optimum is near it; 100 resamples must refit in 3 minutes on 2 cores).
BOOTSTRAP_LBFGS_STEPS = 80

#: Members per call of the compiled batched loss (CV folds and bootstrap resamples
#: are padded to a multiple of it, so that one compiled program serves every batch).
LOSS_BATCH = 20


class _HostLoss:
    """The loss and its gradient, compiled once per (data, options), and exposed to
    the optimiser programs as a host call with a custom VJP.

    The step-time graph is large and XLA compile time grows with every copy of it
    (Adam body, L-BFGS body, line search, vmapped variants). Compiling it once as
    ``value_and_grad`` (single and batched) and calling it from the small optimiser
    programs through ``jax.pure_callback`` keeps compile time to two compilations.
    """

    def __init__(self, data: FitData, options: FitOptions) -> None:
        self.data = data
        self.options = options
        self.tables = tuple(jnp.asarray(t) for t in _prior_tables(data))
        vg = jax.value_and_grad(_loss)
        self._single = jax.jit(vg, static_argnums=4)
        self._batch = jax.jit(jax.vmap(vg, in_axes=(0, 0, None, None, None)),
                              static_argnums=4)

    def host_vg(self, m: np.ndarray, mult: dict) -> tuple[np.ndarray, np.ndarray]:
        # inputs arrive bit-cast to uint32 pairs: the callback thread may run with
        # 32-bit defaults, which would round float64 inputs
        m = _from_bits(m)
        mult = {k: _from_bits(v) for k, v in mult.items()}
        with _x64():
            if m.ndim == 2:
                v, g = self._single(m, mult, self.data, self.tables, self.options)
                return _np_bits(v), _np_bits(g)
            b = m.shape[0]
            mult = {k: np.broadcast_to(v, (b,) + v.shape[-1:]) for k, v in mult.items()}
            pad = (-b) % LOSS_BATCH
            if pad:
                m = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)])
                mult = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)])
                        for k, v in mult.items()}
            vs, gs = [], []
            for i in range(0, b + pad, LOSS_BATCH):
                sl = slice(i, i + LOSS_BATCH)
                v, g = self._batch(m[sl], {k: x[sl] for k, x in mult.items()},
                                   self.data, self.tables, self.options)
                vs.append(np.asarray(v))
                gs.append(np.asarray(g))
            return (_np_bits(np.concatenate(vs)[:b]), _np_bits(np.concatenate(gs)[:b]))

    def loss_fn(self) -> Callable:
        """``loss(m, mult)`` usable in jit / vmap / grad (first order)."""

        def call(m, mult):
            shapes = (jax.ShapeDtypeStruct((2,), jnp.uint32),
                      jax.ShapeDtypeStruct(m.shape + (2,), jnp.uint32))
            v, g = jax.pure_callback(self.host_vg, shapes, _to_bits(m),
                                     jax.tree.map(_to_bits, mult),
                                     vmap_method="expand_dims")
            return (jax.lax.bitcast_convert_type(v, jnp.float64),
                    jax.lax.bitcast_convert_type(g, jnp.float64))

        @jax.custom_vjp
        def loss(m, mult):
            return call(m, mult)[0]

        def fwd(m, mult):
            v, g = call(m, mult)
            return v, (g, mult)

        def bwd(res, ct):
            g, mult = res
            return ct * g, jax.tree.map(jnp.zeros_like, mult)

        loss.defvjp(fwd, bwd)
        return loss


def _to_bits(x: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(jnp.asarray(x, dtype=jnp.float64), jnp.uint32)


def _from_bits(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.uint32)
    flat = np.ascontiguousarray(a.reshape(-1))
    return flat.view(np.float64).reshape(a.shape[:-1])


def _np_bits(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    flat = np.ascontiguousarray(a.reshape(-1))
    return flat.view(np.uint32).reshape(a.shape + (2,))


_HOST_CACHE: dict = {}


def _host_loss(data: FitData, options: FitOptions) -> _HostLoss:
    # the loss depends only on the dataset and prior weights, not on the steps
    loss_opts = FitOptions(dataset_weights=options.dataset_weights,
                           prior_weight=options.prior_weight)
    key = (id(data), loss_opts)
    hit = _HOST_CACHE.get(key)
    if hit is None or hit.data is not data:
        _HOST_CACHE.clear()
        hit = _HOST_CACHE[key] = _HostLoss(data, loss_opts)
    return hit


def _optimize(data: FitData, params0: jax.Array, mult: dict[str, jax.Array],
              options: FitOptions, *, batched: bool, desc: str
              ) -> tuple[jax.Array, np.ndarray]:
    """Adam then L-BFGS from the packed matrix ``params0``; ``batched``: leading
    axis on params0 and mult.

    Returns the final packed params and the loss history ``([B,] steps)``.
    """
    loss = _host_loss(data, options).loss_fn()
    adam = optax.adam(options.adam_lr)
    lbfgs = optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=20, store_grad=True))

    def adam_chunk(p, s, m, n):
        vg = jax.value_and_grad(lambda q: loss(q, m))

        def body(carry, _):
            q, st = carry
            v, g = vg(q)
            u, st = adam.update(g, st, q)
            # a non-finite gradient shows in the history through 0 * norm
            return (optax.apply_updates(q, u), st), v + 0.0 * jnp.sum(g)

        (p, s), hist = jax.lax.scan(body, (p, s), None, length=n)
        return p, s, hist

    def lbfgs_chunk(p, s, m, n):
        f = lambda q: loss(q, m)  # noqa: E731
        vg = optax.value_and_grad_from_state(f)

        def body(carry, _):
            q, st = carry
            v, g = vg(q, state=st)
            u, st = lbfgs.update(g, st, q, value=v, grad=g, value_fn=f)
            return (optax.apply_updates(q, u), st), v + 0.0 * jnp.sum(g)

        (p, s), hist = jax.lax.scan(body, (p, s), None, length=n)
        return p, s, hist

    def vm(f):
        return jax.vmap(f) if batched else f

    init_a = jax.vmap(adam.init) if batched else adam.init
    init_l = jax.vmap(lbfgs.init) if batched else lbfgs.init
    chunk_a = {}
    chunk_l = {}

    def get(cache, fn, n):
        if n not in cache:
            cache[n] = jax.jit(vm(lambda p, s, m: fn(p, s, m, n)))
        return cache[n]

    total = options.adam_steps + options.lbfgs_steps
    prog = _Progress(total, desc, options.progress)
    hist = []
    p = params0
    s = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), init_a(p))
    done = 0
    while done < options.adam_steps:
        n = min(options.chunk, options.adam_steps - done)
        p, s, h = get(chunk_a, adam_chunk, n)(p, s, mult)
        h = np.asarray(h)
        _check_finite(h, "Adam", done)
        hist.append(h)
        done += n
        prog.update(done)
    # strong types: a weakly typed state leaf would recompile the second chunk
    s = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), init_l(p))
    k = 0
    while k < options.lbfgs_steps:
        n = min(options.chunk, options.lbfgs_steps - k)
        p, s, h = get(chunk_l, lbfgs_chunk, n)(p, s, mult)
        h = np.asarray(h)
        _check_finite(h, "L-BFGS", options.adam_steps + k)
        hist.append(h)
        k += n
        done += n
        prog.update(done)
    if not np.all(np.isfinite(np.asarray(p))):
        raise NumericalError(f"{desc}: non-finite parameters after the fit")
    history = np.concatenate(hist, axis=-1) if hist else np.zeros((0,))
    return p, history


# -------------------------------------------------------------------- public API


def fit_params(data: FitData, *, options: FitOptions = FitOptions(),
        params0: CostParams | None = None) -> FitResult:
    """Fit ``CostParams`` to all rows of ``data`` (x64 enabled inside).

    Args:
      data: from :func:`build_fit_data`.
      options: see :class:`FitOptions`.
      params0: starting point (default: the priors of ``data/priors.csv``).

    Returns:
      FitResult (deterministic: same data and options give bit-identical params).

    Raises:
      NumericalError: the loss or its gradient became non-finite.
    """
    t0 = time.perf_counter()
    with _x64():
        p0 = initial_params(data, params0)
        m0 = pack_params(p0, data)
        mult = {d: jnp.ones_like(w) for d, w in _base_weights(data).items()}
        m, hist = _optimize(data, m0, mult, options, batched=False, desc="fit")
        res = {d: np.asarray(r) for d, r in
               jax.jit(_log_residuals_packed)(m, data).items()}
        t_pred = (np.asarray(jax.jit(lambda q, dat: _run_values(q, dat)[1])(m, data))
                  if data.runs is not None else np.zeros((0,)))
        final = float(_from_bits(_host_loss(data, options).host_vg(
            _np_bits(m), {k: _np_bits(v) for k, v in mult.items()})[0]))
        p = unpack_params(m, data, base=p0)
    if not math.isfinite(final):
        raise NumericalError("non-finite loss at the fitted parameters")
    dl = {}
    for d, r in res.items():
        w = np.asarray(getattr(data, d).weight)
        dl[d] = float(np.sum(w * r**2) / np.sum(w))
    step = res["runs"] * _step_sign(data) if "runs" in res else np.zeros((0,))
    metrics = error_table(step, data) if data.runs is not None else ()
    return FitResult(params=p, loss=final, loss_history=hist, dataset_losses=dl,
                     log_residuals=res, step_log_residuals=step, step_time_s=t_pred,
                     metrics=metrics,
                     seconds=time.perf_counter() - t0)


def group_folds(data: FitData, num_folds: int | None = None
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
        out[d] = jnp.asarray(np.stack([~np.isin(g, list(h)) for h in held])
                             .astype(float))
    return out


def cross_validate(data: FitData, *, num_folds: int | None = None,
                   options: FitOptions = FitOptions(),
                   params0: CostParams | None = None) -> CVResult:
    """Grouped cross-validation: each fold's groups are removed from every dataset,
    the model is fitted on the rest (all folds in one vmapped run) and the held-out
    training rows are predicted.

    Returns:
      CVResult with out-of-fold APE of step time overall, per family, chip and group.
    """
    t0 = time.perf_counter()
    folds = group_folds(data, num_folds)
    with _x64():
        masks = _group_masks(data, folds)
        m0 = pack_params(initial_params(data, params0), data)
        mb = jnp.broadcast_to(m0, (len(folds),) + m0.shape)
        m, _ = _optimize(data, mb, masks, options, batched=True, desc="cv")
        res = np.asarray(jax.jit(jax.vmap(
            lambda q, dat: _log_residuals_packed(q, dat)["runs"],
            in_axes=(0, None)))(m, data))
    g = np.asarray(data.label("runs", "group"), dtype=object)
    oof = np.full(g.shape, np.nan)
    for f, held in enumerate(folds):
        sel = np.isin(g, list(held))
        oof[sel] = res[f, sel]
    step = oof * _step_sign(data)
    return CVResult(folds=folds, step_log_residuals=step,
                    metrics=error_table(step, data),
                    seconds=time.perf_counter() - t0)


def bootstrap_weights(data: FitData, num_resamples: int, *, seed: int = 0
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


def bootstrap(data: FitData, num_resamples: int = 100, *, seed: int = 0,
              options: FitOptions | None = None,
              params0: CostParams | None = None) -> BootstrapResult:
    """Refit on ``num_resamples`` grouped bootstrap resamples, all in one vmapped run.

    Each resample starts from ``params0`` (pass the full-data fit: the resamples then
    need fewer steps; ``options`` default to 80 L-BFGS steps and no Adam, since Adam's
    first steps have the size of its learning rate and would move a warm start away
    from the optimum).

    Returns:
      BootstrapResult with a ``(B,)`` ensemble of parameters.
    """
    if num_resamples < 2:
        raise DataError(f"num_resamples={num_resamples} must be >= 2",
                        column="bootstrap")
    if options is None:
        options = FitOptions(adam_steps=0, lbfgs_steps=BOOTSTRAP_LBFGS_STEPS)
    t0 = time.perf_counter()
    with _x64():
        w = {d: jnp.asarray(v) for d, v in bootstrap_weights(data, num_resamples,
                                                              seed=seed).items()}
        m0 = pack_params(initial_params(data, params0), data)
        mb = jnp.broadcast_to(m0, (num_resamples,) + m0.shape)
        m, hist = _optimize(data, mb, w, options, batched=True, desc="bootstrap")
        p = unpack_params(m, data)
    return BootstrapResult(params=p, losses=np.asarray(hist)[:, -1],
                           seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------- metrics


def _ape(step_log_res: np.ndarray) -> np.ndarray:
    return np.abs(np.expm1(step_log_res))


def error_table(step_log_residuals: np.ndarray, data: FitData) -> tuple[ErrorRow, ...]:
    """Median and mean APE of step time: overall, per family, per chip, per group."""
    ape = _ape(np.asarray(step_log_residuals, dtype=float))
    lab = dict(dict(data.labels)["runs"])
    rows = [ErrorRow("overall", "all", int(ape.size), float(np.median(ape)),
                     float(np.mean(ape)))]
    for level, col in (("family", "family"), ("chip", "chip"), ("group", "group")):
        keys = np.asarray(lab[col], dtype=object)
        for k in sorted(set(lab[col])):
            a = ape[keys == k]
            rows.append(ErrorRow(level, k, int(a.size), float(np.median(a)),
                                 float(np.mean(a))))
    return tuple(rows)


def format_error_table(rows: Sequence[ErrorRow], title: str) -> str:
    """Plain-text table of :class:`ErrorRow` (APE in percent)."""
    lines = [title, f"{'level':<8} {'key':<28} {'n':>4} {'median%':>8} {'mean%':>8}"]
    for r in rows:
        lines.append(f"{r.level:<8} {r.key:<28} {r.n:>4} {100 * r.median_ape:>8.1f} "
                     f"{100 * r.mean_ape:>8.1f}")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class CoverageRow:
    """Held-out coverage of the step-time interval over a set of training rows."""

    level: str  # "overall", "family", "chip"
    key: str
    n: int
    coverage: float  # fraction of rows whose measurement lies inside their interval


def interval_coverage(step_log_residuals: np.ndarray, data: FitData,
                      interval: tuple[float, float] = (0.05, 0.95)
                      ) -> tuple[CoverageRow, ...]:
    """How often a measured step time falls inside the residual interval, held out.

    ``jaxcost predict`` widens a prediction T by the ``interval`` quantiles of the
    stored out-of-fold log residuals e = log(T_pred / T_obs): the measurement is
    inside iff -e_i lies between them. Here row i is judged against the quantiles of
    the residuals of the *other* groups only (its own group left out, as a new source
    would be), centred on its out-of-fold prediction. The bootstrap spread that
    ``predict`` adds widens the interval further, so the figures are a lower bound
    for the shipped intervals.

    Returns:
      ``CoverageRow`` overall, per family and per chip (nominal: interval[1] -
      interval[0]).
    """
    r = np.asarray(step_log_residuals, dtype=float)
    lab = dict(dict(data.labels)["runs"])
    groups = np.asarray(lab["group"], dtype=object)
    inside = np.zeros(r.size, dtype=bool)
    for g in sorted(set(groups)):
        sel = groups == g
        pool = r[~sel & np.isfinite(r)]
        if pool.size == 0:
            continue
        lo, hi = np.quantile(pool, interval)
        inside[sel] = (-r[sel] >= lo) & (-r[sel] <= hi)
    rows = [CoverageRow("overall", "all", int(r.size), float(np.mean(inside)))]
    for level in ("family", "chip"):
        keys = np.asarray(lab[level], dtype=object)
        for k in sorted(set(lab[level])):
            rows.append(CoverageRow(level, k, int(np.sum(keys == k)),
                                    float(np.mean(inside[keys == k]))))
    return tuple(rows)


def format_coverage_table(rows: Sequence[CoverageRow], title: str) -> str:
    """Plain-text table of :class:`CoverageRow` (coverage in percent)."""
    lines = [title, f"{'level':<8} {'key':<28} {'n':>4} {'covered%':>9}"]
    for r in rows:
        lines.append(f"{r.level:<8} {r.key:<28} {r.n:>4} {100 * r.coverage:>9.1f}")
    return "\n".join(lines)


# ------------------------------------------------------------------ ensembles


def ensemble_to_json(params: CostParams) -> dict:
    """A batched ``CostParams`` (leading axis B) as JSON lists (raw values)."""
    def rec(r: RawParams) -> dict:
        return {n: [float(f"{v:.9g}") for v in np.asarray(getattr(r, n)).ravel()]
                for n in PARAM_NAMES}
    return {"global": rec(params.global_raw),
            "family": {k: rec(v) for k, v in sorted(params.family.items())},
            "chip": {k: rec(v) for k, v in sorted(params.chip.items())}}


def ensemble_from_json(doc: Mapping, *, file: str = "<params>") -> CostParams:
    """Inverse of :func:`ensemble_to_json`.

    Raises:
      ParamsError: malformed lists (unequal lengths, non-finite values).
    """
    from jaxcost.errors import ParamsError

    def rec(d, where):
        if not isinstance(d, Mapping) or set(d) != set(PARAM_NAMES):
            raise ParamsError("expected one list per parameter", file=file,
                              row=f"key '{where}'")
        vals = {}
        for n in PARAM_NAMES:
            a = np.asarray(d[n], dtype=float)
            if a.ndim != 1 or not np.all(np.isfinite(a)):
                raise ParamsError("expected a list of finite numbers", file=file,
                                  row=f"key '{where}.{n}'")
            vals[n] = jnp.asarray(a)
        sizes = {v.shape[0] for v in vals.values()}
        if len(sizes) != 1:
            raise ParamsError("lists of unequal length", file=file, row=f"key '{where}'")
        return RawParams(**vals)

    try:
        glob = rec(doc["global"], "bootstrap.global")
        fam = {k: rec(v, f"bootstrap.family.{k}") for k, v in doc.get("family", {}).items()}
        chp = {k: rec(v, f"bootstrap.chip.{k}") for k, v in doc.get("chip", {}).items()}
    except (KeyError, TypeError, ValueError):
        raise ParamsError("malformed bootstrap ensemble", file=file,
                          row="key 'bootstrap'") from None
    return CostParams(global_raw=glob, family=fam, chip=chp)


# ------------------------------------------------------------------ prediction


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
    with _x64():
        fd = build_fit_data(chips, runs=runs.replace(
            plan_missing=jnp.zeros_like(jnp.asarray(runs.plan_missing))))
        fd = fd.replace(runs=fd.runs.replace(target_kind=jnp.zeros_like(
            fd.runs.target_kind)))

        def times(m):
            return _run_values(m, fd)[1]

        m = pack_params(params, fd)
        t = np.asarray(jax.jit(times)(m))
        w = fd.runs.workload
        tokens = np.asarray(w.global_batch_seqs * w.seq_len)
        n = np.asarray(fd.runs.num_chips)
        chip = _run_chips(fd)
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


def best_plans_for_missing(params: CostParams, chips: Mapping[str, ChipSpec], runs, *,
                           progress: bool = False) -> tuple[Any, tuple[str, ...]]:
    """Fill the blank plans of a ``RunBatch`` with the fastest valid plan.

    For each row with ``plan_missing``, every valid plan (``parallel.enumerate_plans``:
    divisibility and memory) is scored by predicted step time and the best is kept
    (``sweep.sweep_topk``). Returns the batch with those plans and every row's plan
    as text (``parallel.plan_to_str``).

    Raises:
      PlanError: no valid plan for a row.
    """
    from jaxcost.errors import PlanError
    from jaxcost.model.parallel import enumerate_plans, plan_at, plan_to_str
    from jaxcost.model.params import physical
    from jaxcost.search.sweep import sweep_topk

    missing = np.asarray(runs.plan_missing, dtype=bool)
    plan = jax.tree.map(lambda x: np.array(x, dtype=float), runs.plan)
    with _x64():
        for i in np.flatnonzero(missing):
            w = jax.tree.map(lambda x: np.asarray(x)[i], runs.workload)
            chip = _with_network(chips[runs.chip_keys[i]],
                                 np.asarray(runs.scaleout_bytes_per_s)[i])
            n = int(round(float(np.asarray(runs.num_chips)[i])))
            cands = enumerate_plans(w, n, chip)
            if cands.dp.shape[0] == 0:
                raise PlanError(f"no valid parallel plan of this model on {n} "
                                f"{chip.key} (divisibility or memory)",
                                row=f"row_id {runs.row_ids[i]}", column="tp")
            pp = physical(params, chip)
            cl = ClusterSpec(chip=chip, num_chips=float(n))

            def score(pl, pp=pp, cl=cl, w=w):  # one plan (sweep_topk vmaps it)
                return predict_step_time_physical(pp, cl, w, pl).total_s

            idx, _, _ = sweep_topk(score, cands, 1, progress=progress,
                                   desc=f"plans {runs.row_ids[i]}")
            best = plan_at(cands, int(idx[0]))
            for f in plan.__dataclass_fields__:
                getattr(plan, f)[i] = float(np.asarray(getattr(best, f)))
    text = tuple(plan_to_str(jax.tree.map(lambda x, i=i: x[i], plan))
                 for i in range(missing.size))
    return runs.replace(plan=jax.tree.map(jnp.asarray, plan),
                        plan_missing=np.zeros_like(missing)), text


__all__ = [
    "DATASETS",
    "FitOptions",
    "FitData",
    "FitResult",
    "CVResult",
    "BootstrapResult",
    "ErrorRow",
    "build_fit_data",
    "log_residuals",
    "initial_params",
    "fit_params",
    "group_folds",
    "cross_validate",
    "bootstrap_weights",
    "bootstrap",
    "error_table",
    "format_error_table",
    "ensemble_to_json",
    "ensemble_from_json",
    "predict_run_batch",
    "best_plans_for_missing",
    "pack_params",
    "unpack_params",
]
