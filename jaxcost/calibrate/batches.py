"""Validated benchmark frames to arrays: training runs, collectives, kernels.

:func:`runs_to_arrays` turns a validated training-run frame into a :class:`RunBatch`
of stacked ``TransformerConfig`` and ``ParallelPlan`` (architecture from
``data/models.csv`` where the row names one, software defaults where a cell is blank);
:func:`collectives_to_arrays` and :func:`kernels_to_arrays` do the same for the other
two kinds. Frames come from :mod:`jaxcost.io.benchmarks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import struct

from jaxcost.errors import (
    DataError,
)
from jaxcost.io.benchmarks import (
    COLLECTIVE_KINDS,
    KERNEL_KINDS,
    PRECISION_KINDS,
    SOFTWARE_DEFAULTS,
    TARGET_KINDS,
    chip_key_set,
    column_or_nan,
    is_blank,
    kernel_flop,
    precision_kind,
    recompute_setting,
    row_place,
    zero_stage,
)
from jaxcost.model.plan import ParallelPlan, Recompute, stack_plans
from jaxcost.model.workload import (
    MLA_FIELDS,
    TransformerConfig,
    load_models,
    stack_models,
)

#: Plan columns of the training-run schema: given cells constrain a plan search.
PLAN_COLUMNS = (
    "tp",
    "pp",
    "dp",
    "cp",
    "ep",
    "vpp",
    "mbs",
    "sp",
    "zero_fsdp",
    "recompute",
)

__all__ = [
    "PLAN_COLUMNS",
    "RunBatch",
    "fit_exclusions",
    "runs_to_arrays",
    "CollectiveBatch",
    "collectives_to_arrays",
    "KernelBatch",
    "kernels_to_arrays",
]


@struct.dataclass
class RunBatch:
    """Training runs as arrays, one entry per usable row (leading axis n).

    Attributes:
      row_ids, chip_keys, groups, precision: per-row labels (static tuples).
      workload: ``TransformerConfig`` with ``(n,)`` leaves.
      plan: ``ParallelPlan`` with ``(n,)`` leaves (for rows with ``plan_missing``, a
        placeholder pure data-parallel plan: dp = n_chips).
      num_chips: chip count, ``(n,)``.
      target_value: the measured value named by ``target_kind``, SI, ``(n,)``.
      target_kind: index into :data:`TARGET_KINDS`, ``(n,)`` int.
      weight: fitting weight, ``(n,)``.
      plan_missing: True where the source leaves tp, pp or dp blank, ``(n,)`` bool.
      peak_flop_per_s: the peak the source divided by for MFU/HFU (NaN if none),
        ``(n,)``.
      scaleout_bytes_per_s: the measured cluster's NIC bandwidth per chip and direction
        (NaN: the chip's), ``(n,)``.
      excluded: (row_id, reason) of the input rows left out (static).
      given: per row, the plan cells the source gives, as ``(column, text)`` pairs
        (static); a blank plan's given cells constrain its search.
    """

    row_ids: tuple[str, ...] = struct.field(pytree_node=False)
    chip_keys: tuple[str, ...] = struct.field(pytree_node=False)
    groups: tuple[str, ...] = struct.field(pytree_node=False)
    precision: tuple[str, ...] = struct.field(pytree_node=False)
    workload: Any
    plan: Any
    num_chips: jax.Array
    target_value: jax.Array
    target_kind: jax.Array
    weight: jax.Array
    plan_missing: jax.Array
    peak_flop_per_s: jax.Array
    scaleout_bytes_per_s: jax.Array
    excluded: tuple[tuple[str, str], ...] = struct.field(pytree_node=False)
    given: tuple[tuple[tuple[str, str], ...], ...] = struct.field(
        pytree_node=False, default=()
    )


_MODEL_REQUIRED = (
    "layers",
    "hidden",
    "heads",
    "seq_len",
    "vocab",
    "gbs_seqs",
    "n_chips",
)


def fit_exclusions(df: pd.DataFrame, chips: Any = None) -> pd.Series:
    """Why each training-run row cannot be fitted ('' where it can).

    A row is usable when its ``chip_key`` is set (and, if ``chips`` is given, known),
    it names a ``target`` whose value is present, and the model columns
    layers, hidden, heads, seq_len, vocab, gbs_seqs and n_chips are filled.

    Returns:
      A Series of reasons (str) indexed like ``df``.
    """
    keys = chip_key_set(chips)
    reasons = []
    for _, r in df.iterrows():
        why = []
        ck = r.get("chip_key")
        if is_blank(ck):
            why.append("chip not in chip database")
        elif keys is not None and ck not in keys:
            why.append(f"unknown chip key '{ck}'")
        t = r.get("target")
        if is_blank(t):
            why.append("no target")
        elif is_blank(r.get(t)):
            why.append(f"target '{t}' blank")
        blanks = [c for c in _MODEL_REQUIRED if is_blank(r.get(c))]
        if blanks:
            why.append("model/batch columns blank: " + ",".join(blanks))
        reasons.append("; ".join(why))
    return pd.Series(reasons, index=df.index, dtype=object)


def _opt(r: Mapping[str, Any], name: str, default: Any = None) -> Any:
    v = r.get(name)
    return default if is_blank(v) else v


def _software(r: Mapping[str, Any], name: str) -> Any:
    """A software-setting cell, or its default (``SOFTWARE_DEFAULTS``) when blank."""
    return _opt(r, name, SOFTWARE_DEFAULTS[name])


def _arch_labels(r, models) -> dict:
    """MLP kind, embedding tying, MoE layout and MLA widths of a run's model.

    Taken from the row's own ``mlp`` / ``tied_embeddings`` columns when present, else
    from the ``data/models.csv`` row named in ``arch_model``; otherwise the GPT-style
    defaults (GELU, untied) of :meth:`TransformerConfig.create`.
    """
    out: dict = {}
    ref = models.get(str(_opt(r, "arch_model", "")).strip().lower())
    if ref is not None:
        out["mlp"] = ref.mlp
        out["tied_embeddings"] = ref.tied_embeddings
        if float(ref.num_experts) > 1:
            out["num_dense_layers"] = float(ref.num_dense_layers)
            out["num_shared_experts"] = float(ref.num_shared_experts)
        # multi-latent attention: its stored tensors (the model table's MLA columns)
        for f in MLA_FIELDS:
            out[f] = int(round(float(getattr(ref, f))))
    mlp = _opt(r, "mlp", None)
    if mlp is not None:
        out["mlp"] = str(mlp).strip().lower()
    return out


def runs_to_arrays(
    df: pd.DataFrame, chips: Any = None, *, strict: bool = False
) -> RunBatch:
    """Convert validated training runs to a :class:`RunBatch`.

    Rows that cannot be fitted (see :func:`fit_exclusions`) are left out and listed in
    ``RunBatch.excluded`` with the reason; so are rows whose model or plan the
    ``TransformerConfig.create`` / ``ParallelPlan.create`` builders reject (or, with
    ``strict=True``, these raise ``DataError`` naming the row). Blank sp / zero_fsdp /
    recompute / mbs / cp / ep / vpp mean off / 0 / none / 1 / 1 / 1 / 1.

    Args:
      df: a frame from :func:`load_benchmarks` ("training_runs") or :func:`load_runs`.
      chips: chip database (mapping keyed by chip key, DataFrame or key iterable), or
        None to accept any non-blank key.
      strict: raise instead of skipping rows the builders reject.

    Returns:
      RunBatch with leaves of shape ``(n,)``, n = number of usable rows.
    """

    why = fit_exclusions(df, chips)
    models = load_models()
    excluded: list[tuple[str, str]] = []
    ids, keys, groups, precs = [], [], [], []
    workloads, plans = [], []
    n_chips, tval, tkind, weight, missing, peak, nic = [], [], [], [], [], [], []
    given: list[tuple[tuple[str, str], ...]] = []
    for pos, (idx, r) in enumerate(df.iterrows()):
        rid = str(_opt(r, "row_id", f"row{pos + 1}"))
        if why.loc[idx]:
            excluded.append((rid, why.loc[idx]))
            continue
        try:
            n = float(r["n_chips"])
            experts = float(_opt(r, "experts", 1.0))
            w = TransformerConfig.create(
                name=str(_opt(r, "model", rid)),
                num_layers=float(r["layers"]),
                d_model=float(r["hidden"]),
                num_heads=float(r["heads"]),
                seq_len=float(r["seq_len"]),
                global_batch_seqs=float(r["gbs_seqs"]),
                vocab_size=float(r["vocab"]),
                d_ff=_opt(r, "ffn_hidden") if experts <= 1 else None,
                num_kv_heads=_opt(r, "kv_heads"),
                head_dim=_opt(r, "head_dim"),
                num_experts=experts,
                top_k=float(_opt(r, "topk", 1.0)),
                moe_d_ff=_opt(r, "ffn_hidden") if experts > 1 else None,
                **_arch_labels(r, models),
            )
            plan_blank = any(is_blank(r.get(c)) for c in ("tp", "pp", "dp"))
            row_given = {c: r.get(c) for c in PLAN_COLUMNS if not is_blank(r.get(c))}
            # the software of the run (attention kernel, dispatcher, overlaps, layer
            # split) is the framework's, not a plan choice: a blank plan keeps it
            software = dict(
                flash_attn=_software(r, "attention") != "unfused",
                fused_a2a=_software(r, "ep_dispatcher") == "fused",
                tp_overlap=_software(r, "tp_comm_overlap") == "yes",
                pp_balance=_software(r, "pp_layout") == "balanced",
                dp_overlap=_software(r, "dp_comm_overlap") == "yes",
            )
            if plan_blank:
                p = ParallelPlan.create(dp=n, **software)
            else:
                rec, rec_lite = recompute_setting(r.get("recompute"))
                p = ParallelPlan.create(
                    dp=float(r["dp"]),
                    tp=float(r["tp"]),
                    pp=float(r["pp"]),
                    cp=float(_opt(r, "cp", 1.0)),
                    ep=float(_opt(r, "ep", 1.0)),
                    vpp=float(_opt(r, "vpp", 1.0)),
                    mbs=float(_opt(r, "mbs", 1.0)),
                    zero=zero_stage(r.get("zero_fsdp")),
                    recompute=Recompute(rec),
                    recompute_lite=rec_lite,
                    sp=_opt(r, "sp", "no") == "yes",
                    # an FP8 run's GEMMs (and its cached linear inputs) are FP8
                    fp8=precision_kind(r.get("precision")) == "fp8",
                    **software,
                )
        except (ValueError, TypeError) as e:
            msg = " ".join(str(e).split())
            if strict:
                raise DataError(
                    f"run rejected by the model/plan builders: {msg}",
                    **row_place(df, pos),
                    column="row_id",
                ) from None
            excluded.append((rid, f"rejected by builders: {msg}"))
            continue
        t = str(r["target"])
        ids.append(rid)
        keys.append(str(r["chip_key"]))
        groups.append(str(_opt(r, "group", "")))
        precs.append(precision_kind(r.get("precision")))
        workloads.append(w.replace(name="batch"))
        plans.append(p)
        n_chips.append(n)
        tval.append(float(r[t]))
        tkind.append(TARGET_KINDS.index(t))
        weight.append(float(_opt(r, "weight", 1.0)))
        missing.append(plan_blank)
        given.append(tuple(sorted((k, str(v)) for k, v in row_given.items())))
        peak.append(float(_opt(r, "mfu_peak_flop_per_s", math.nan)))
        nic.append(float(_opt(r, "scaleout_bytes_per_s", math.nan)))
    if not workloads:
        raise DataError("no usable training runs; every row was excluded")
    stacked_w = stack_models(workloads)
    return RunBatch(
        row_ids=tuple(ids),
        chip_keys=tuple(keys),
        groups=tuple(groups),
        precision=tuple(precs),
        workload=stacked_w,
        plan=stack_plans(plans),
        num_chips=jnp.asarray(n_chips),
        target_value=jnp.asarray(tval),
        target_kind=jnp.asarray(tkind, dtype=jnp.int32),
        weight=jnp.asarray(weight),
        plan_missing=jnp.asarray(missing, dtype=bool),
        peak_flop_per_s=jnp.asarray(peak),
        scaleout_bytes_per_s=jnp.asarray(nic),
        excluded=tuple(excluded),
        given=tuple(given),
    )


@struct.dataclass
class CollectiveBatch:
    """Collective measurements as arrays (leading axis n).

    Attributes:
      row_ids, chip_keys, groups: labels (static).
      kind: index into :data:`COLLECTIVE_KINDS`, int.
      num_ranks, num_nodes: group size and node span (NaN if blank).
      message_bytes: bytes per rank (NaN if blank).
      time_s: measured time; for all-reduce rows with only a bus bandwidth, derived
        as message_bytes / algbw with algbw = busbw * n / (2 (n - 1)) (nccl-tests).
      algbw_bytes_per_s, busbw_bytes_per_s: as measured (NaN if blank).
    """

    row_ids: tuple[str, ...] = struct.field(pytree_node=False)
    chip_keys: tuple[str, ...] = struct.field(pytree_node=False)
    groups: tuple[str, ...] = struct.field(pytree_node=False)
    kind: jax.Array
    num_ranks: jax.Array
    num_nodes: jax.Array
    message_bytes: jax.Array
    time_s: jax.Array
    algbw_bytes_per_s: jax.Array
    busbw_bytes_per_s: jax.Array


def collectives_to_arrays(df: pd.DataFrame) -> CollectiveBatch:
    """Convert validated collective rows with a known chip to a
    :class:`CollectiveBatch`.

    Rows with a blank ``chip_key`` are left out.
    """
    d = df[df["chip_key"].map(lambda x: not is_blank(x))]
    n = column_or_nan(d, "n_ranks").to_numpy()
    msg = column_or_nan(d, "message_bytes").to_numpy()
    t = column_or_nan(d, "time_s").to_numpy()
    alg = column_or_nan(d, "algbw_bytes_per_s").to_numpy()
    bus = column_or_nan(d, "busbw_bytes_per_s").to_numpy()
    kind = np.array(
        [COLLECTIVE_KINDS.index(k) for k in d["collective_kind"]], dtype=np.int32
    )
    is_ar = kind == COLLECTIVE_KINDS.index("all_reduce")
    with np.errstate(divide="ignore", invalid="ignore"):
        alg_from_bus = bus * n / (2.0 * (n - 1.0))
        alg_eff = np.where(np.isnan(alg) & is_ar, alg_from_bus, alg)
        t_der = np.where(alg_eff > 0, msg / alg_eff, np.nan)
    t = np.where(np.isnan(t), t_der, t)
    return CollectiveBatch(
        row_ids=tuple(d["row_id"]),
        chip_keys=tuple(d["chip_key"]),
        groups=tuple(d["group"]),
        kind=jnp.asarray(kind),
        num_ranks=jnp.asarray(n),
        num_nodes=jnp.asarray(column_or_nan(d, "n_nodes").to_numpy()),
        message_bytes=jnp.asarray(msg),
        time_s=jnp.asarray(t),
        algbw_bytes_per_s=jnp.asarray(alg),
        busbw_bytes_per_s=jnp.asarray(bus),
    )


@struct.dataclass
class KernelBatch:
    """Kernel measurements as arrays (leading axis n).

    Attributes:
      row_ids, chip_keys, groups: labels (static).
      kind: index into :data:`KERNEL_KINDS`, int.
      precision: index into :data:`PRECISION_KINDS` (-1 where blank), int.
      flop: FLOP per call from :func:`kernel_flop` (NaN where not fixed by the row).
      flop_per_s, bytes_per_s, time_s: measured (NaN if blank); ``time_s`` is
        flop / flop_per_s where the source quotes only a rate and the FLOP are known.
      m, n, k: GEMM dimensions (NaN if blank).
      implementations: the ``implementation`` column ("" where blank; static).
    """

    row_ids: tuple[str, ...] = struct.field(pytree_node=False)
    chip_keys: tuple[str, ...] = struct.field(pytree_node=False)
    groups: tuple[str, ...] = struct.field(pytree_node=False)
    kind: jax.Array
    precision: jax.Array
    flop: jax.Array
    flop_per_s: jax.Array
    bytes_per_s: jax.Array
    time_s: jax.Array
    m: jax.Array
    n: jax.Array
    k: jax.Array
    implementations: tuple[str, ...] = struct.field(pytree_node=False, default=())


def kernels_to_arrays(df: pd.DataFrame) -> KernelBatch:
    """Convert validated kernel rows with a known chip to a :class:`KernelBatch`."""
    d = df[df["chip_key"].map(lambda x: not is_blank(x))]
    flop = np.array([kernel_flop(r) for _, r in d.iterrows()], dtype=float)
    fps = column_or_nan(d, "flop_per_s").to_numpy()
    t = column_or_nan(d, "time_s").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.isnan(t), flop / fps, t)
    prec = np.array(
        [-1 if is_blank(p) else PRECISION_KINDS.index(p) for p in d["precision_kind"]],
        dtype=np.int32,
    )
    return KernelBatch(
        row_ids=tuple(d["row_id"]),
        chip_keys=tuple(d["chip_key"]),
        groups=tuple(d["group"]),
        kind=jnp.asarray(
            np.array([KERNEL_KINDS.index(k) for k in d["kernel_kind"]], dtype=np.int32)
        ),
        precision=jnp.asarray(prec),
        flop=jnp.asarray(flop),
        flop_per_s=jnp.asarray(fps),
        bytes_per_s=jnp.asarray(column_or_nan(d, "bytes_per_s").to_numpy()),
        time_s=jnp.asarray(t),
        m=jnp.asarray(column_or_nan(d, "m").to_numpy()),
        n=jnp.asarray(column_or_nan(d, "n").to_numpy()),
        k=jnp.asarray(column_or_nan(d, "k").to_numpy()),
        implementations=tuple(
            "" if is_blank(x) else str(x) for x in d["implementation"]
        ),
    )
