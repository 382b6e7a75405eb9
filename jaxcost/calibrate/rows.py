"""The rows of a fit: benchmark batches as one ``FitData`` pytree.

:func:`build_fit_data` indexes the chips and families of every row, turns each
kernel, collective and training run into the arrays the residuals need, and lists the
rows left out (blank plans). :func:`load_fit_files` reads benchmark CSVs of any kind.
The fit needs 64-bit floats: every public entry point of :mod:`jaxcost.calibrate`
runs inside :func:`x64` (a thread-local context; the global config is never changed).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.calibrate.batches import (
    collectives_to_arrays,
    kernels_to_arrays,
    runs_to_arrays,
)
from jaxcost.errors import (
    DataError,
    JaxcostError,
    UnknownChipError,
)
from jaxcost.io import benchmarks as D
from jaxcost.model.collectives import Collective
from jaxcost.model.hardware import ChipSpec, stack_chips
from jaxcost.model.roofline import OpKind

__all__ = [
    "DATASETS",
    "TARGET_KINDS",
    "TIME_TARGET",
    "HBM_STREAM_BYTES",
    "x64",
    "FitData",
    "build_fit_data",
    "benchmark_kind",
    "load_fit_files",
]

#: Names of the three datasets, in loss order.
DATASETS = ("kernels", "collectives", "runs")


#: Target kinds of training rows (same order as ``data.TARGET_KINDS``).
TARGET_KINDS = (
    "step_time_s",
    "tokens_per_s_per_chip",
    "mfu",
    "hfu",
    "flop_per_s_per_chip",
)


TIME_TARGET = 0


# Collective kinds of ``data.COLLECTIVE_KINDS`` that the alpha-beta model covers.
_COLLECTIVE_CODES = {
    "all_reduce": Collective.ALL_REDUCE,
    "all_gather": Collective.ALL_GATHER,
    "reduce_scatter": Collective.REDUCE_SCATTER,
    "all_to_all": Collective.ALL_TO_ALL,
    "send_recv": Collective.SEND_RECV,
}


_DATA_COLLECTIVE_KINDS = (
    "all_reduce",
    "all_gather",
    "reduce_scatter",
    "all_to_all",
    "send_recv",
    "memcpy_h2d",
    "memcpy_d2h",
    "memcpy_d2d",
    "other",
)


_DATA_KERNEL_KINDS = (
    "gemm",
    "moe_gemm",
    "attention",
    "mla",
    "hbm_stream",
    "transformer_layer",
)


_DATA_PRECISIONS = ("fp64", "fp32", "tf32", "fp16_bf16", "fp8")


#: Bytes per element of the GEMM operands at each fitted precision.
_ELEM_BYTES = {"fp16_bf16": 2.0, "fp8": 1.0}


#: Array size assumed for HBM-stream rows that quote only a bandwidth, bytes (STREAM
#: and copy benchmarks run far above any launch-overhead scale; the fitted plateau is
#: what such rows identify).
HBM_STREAM_BYTES = 2.0**30


def x64():
    """Context in which 64-bit floats are on (thread-local; global config untouched)."""
    return jax.enable_x64(True)


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
            raise UnknownChipError(
                f"unknown chip key '{k}'", file=dataset, column="chip_key"
            )


def build_fit_data(
    chips: Mapping[str, ChipSpec], *, runs=None, collectives=None, kernels=None
) -> FitData:
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
        m, n, k = (
            np.asarray(x, dtype=float) for x in (kernels.m, kernels.n, kernels.k)
        )
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
                    why = (
                        "unfused attention (score matrix through HBM), not the "
                        "flash-style attention op of the step model"
                    )
                else:
                    if kname == "attention":
                        nb, ok = 0.0, OpKind.ATTENTION
                    else:
                        groups = flop[i] / (2.0 * m[i] * n[i] * k[i])
                        nb = (
                            (m[i] * k[i] + k[i] * n[i] + m[i] * n[i])
                            * groups
                            * _ELEM_BYTES[pname]
                        )
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
            klab = {
                "row_id": tuple(kernels.row_ids[i] for i in sel),
                "group": tuple(kernels.groups[i] for i in sel),
                "chip": tuple(keys),
            }
            krows = {
                "flop": np.asarray(rec["flop"]),
                "num_bytes": np.asarray(rec["bytes"]),
                "op_kind": np.asarray(rec["kind"], np.int32),
                "fp8": np.asarray(rec["fp8"]),
                "obs": np.asarray(rec["obs"]),
                "weight": np.ones(len(sel)),
            }

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
            clab = {
                "row_id": tuple(collectives.row_ids[i] for i in sel),
                "group": tuple(collectives.groups[i] for i in sel),
                "chip": tuple(keys),
            }
            crows = {
                "code": np.asarray(codes, np.int32),
                "num_bytes": mb[s],
                "group_size": nr[s],
                "ranks_per_domain": rpd,
                "obs": t[s],
                "weight": np.ones(len(sel)),
            }

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
            rlab = {
                "row_id": tuple(runs.row_ids[i] for i in sel),
                "group": tuple(runs.groups[i] for i in sel),
                "chip": tuple(keys),
            }
            prec_runs = tuple(runs.precision[i] for i in sel)
            rrows = {
                "workload": jax.tree.map(take, runs.workload),
                "plan": jax.tree.map(take, runs.plan),
                "num_chips": np.asarray(runs.num_chips, float)[s],
                "target_kind": np.asarray(runs.target_kind, np.int32)[s],
                "peak_flop_per_s": np.asarray(runs.peak_flop_per_s, float)[s],
                "obs": np.asarray(runs.target_value, float)[s],
                "weight": np.asarray(runs.weight, float)[s],
                "scaleout_bytes_per_s": np.asarray(runs.scaleout_bytes_per_s, float)[s],
            }

    if krows is None and crows is None and rrows is None:
        raise DataError("no fittable benchmark row (every row was excluded)")
    chip_keys = tuple(sorted(set(used_keys)))
    family_keys = tuple(sorted({_family_of(chips, k) for k in chip_keys}))
    chip_table = stack_chips([chips[k] for k in chip_keys])

    def idx(lab):
        c = _index(lab["chip"], chip_keys)
        f = _index([_family_of(chips, k) for k in lab["chip"]], family_keys)
        lab["family"] = tuple(_family_of(chips, k) for k in lab["chip"])
        return jnp.asarray(c), jnp.asarray(f)

    def arrays(d):
        return {
            k: (v if k in ("workload", "plan") else jnp.asarray(v))
            for k, v in d.items()
        }

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
    labels = tuple(
        (d, None if lab is None else tuple(lab.items()))
        for d, lab in zip(DATASETS, (klab, clab, rlab), strict=True)
    )
    return FitData(
        kernels=kr,
        collectives=cr,
        runs=rr,
        chip_table=chip_table,
        chip_keys=chip_keys,
        family_keys=family_keys,
        labels=labels,
        precision_runs=prec_runs,
        excluded=tuple((d, tuple(excluded[d])) for d in DATASETS),
    )


def benchmark_kind(path: str) -> str:
    """Benchmark kind of a CSV from its header: ``training_runs`` (a ``target``
    column), ``collectives`` (``collective_kind``) or ``kernels`` (``kernel_kind``).

    Raises:
      JaxcostError: the file cannot be read or has none of those columns.
    """

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
    if "target" in header or _published_runs_header(header):
        return "training_runs"
    raise JaxcostError(
        "cannot tell the benchmark kind; expected a 'target', "
        "'collective_kind' or 'kernel_kind' column, or training runs in the input "
        "schema of docs/interfaces.md (a 'model' and a 'chip' or 'chip_key' column)",
        file=path,
        column="target",
    )


def _published_runs_header(header: Sequence[str]) -> bool:
    """True for training runs in the input schema (:mod:`jaxcost.io.runs`): no
    ``target`` column, a model and a chip column."""
    cols = set(header)
    return "target" not in cols and ("model" in cols or "arch" in cols) and bool(
        cols & {"chip", "chip_key"})


def _read_fit_file(kind: str, path: str, skipped: list[str] | None = None):
    """One fit file as a frame: training runs in the input schema go through
    :func:`jaxcost.io.benchmarks.load_user_runs` (published notations, aliases,
    fills), everything else through
    :func:`jaxcost.io.benchmarks.load_user_benchmarks`."""
    if kind == "training_runs":
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
        if _published_runs_header(header):
            return D.load_user_runs(path, skipped=skipped)
    return D.load_user_benchmarks(kind, path)


def load_fit_files(
    paths: Sequence[str],
    chips: Mapping[str, ChipSpec],
    *,
    skipped: list[str] | None = None,
) -> tuple[FitData, dict[str, str]]:
    """``FitData`` of benchmark CSVs of any kinds (told apart by
    :func:`benchmark_kind`), and the SHA-256 of each file by base name (provenance).

    Files of the same kind are concatenated in the order given. Provenance columns
    (:data:`jaxcost.io.benchmarks.PROVENANCE_COLUMNS`) are optional: a blank
    ``group`` is the file name's stem and a blank ``row_id`` is ``<stem>:<row>``
    (:func:`jaxcost.io.benchmarks.load_user_benchmarks`). Row ids must be unique
    across all files of a kind.

    Training runs in the input schema (published notations, no ``target`` column)
    are read by :func:`jaxcost.io.benchmarks.load_user_runs`; with ``skipped`` (a
    list) their invalid rows are left out and named there, one line each.

    Raises:
      JaxcostError: an unreadable or malformed file, a file given twice, a row id
        used in two files, or rows the builders reject; the message names the file
        (both files, for a duplicated row id).
    """

    frames: dict[str, list[tuple[str, Any]]] = {}
    hashes: dict[str, str] = {}
    conv = {
        "training_runs": lambda d: runs_to_arrays(d, chips),
        "collectives": collectives_to_arrays,
        "kernels": kernels_to_arrays,
    }
    seen_paths: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen_paths:
            raise JaxcostError(
                f"given twice (also as {seen_paths[real]}); expected each file once",
                file=path,
            )
        seen_paths[real] = path
        kind = benchmark_kind(path)
        df = _read_fit_file(kind, path, skipped)
        frames.setdefault(kind, []).append((path, df))
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        name = os.path.basename(path)
        hashes[name if name not in hashes else path] = digest
    batches: dict[str, Any] = {}
    for kind, parts in frames.items():
        merged = D.concat_benchmarks(parts)
        try:
            batches[kind] = conv[kind](merged)
        except JaxcostError as err:
            raise err.in_file(", ".join(p for p, _ in parts)) from None
    try:
        fd = build_fit_data(
            chips,
            runs=batches.get("training_runs"),
            collectives=batches.get("collectives"),
            kernels=batches.get("kernels"),
        )
    except JaxcostError as err:
        raise err.in_file(", ".join(paths)) from None
    return fd, hashes
