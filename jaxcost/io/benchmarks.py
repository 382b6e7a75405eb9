"""Benchmark data: schemas, validated loading, unit conversion, DataFrame -> arrays.

This is the only jaxcost module that imports pandas. It owns

* the schema of each benchmark CSV in ``data/benchmarks/`` (a dict of column name ->
  :class:`Col`: type, required, positive, allowed values),
* :func:`load_csv` / :func:`load_benchmarks` / :func:`load_runs`, which validate a file
  and raise :class:`~jaxcost.errors.DataError` with one line naming the file, the row,
  the column, the bad value and what was expected,
* the unit conversion at the CSV boundary (:func:`add_si_columns`: TFLOP/s, GB/s, TB/s,
  ms and us as quoted -> FLOP/s, bytes/s and s),
* derived quantities that are code, not data (:func:`kernel_flop`: the FLOP count of a
  benchmarked kernel),
* conversion of validated frames to arrays: :func:`runs_to_arrays` (-> :class:`RunBatch`
  of stacked ``TransformerConfig`` and ``ParallelPlan``), :func:`collectives_to_arrays`,
  :func:`kernels_to_arrays`.

Row numbers in error messages count as a spreadsheet does: the header is row 1 and
the first data row is row 2.

Symbols: B batch, T sequence length, N heads, H head dim, m/n/k GEMM dimensions.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxcost import units
from jaxcost.errors import DataError, UnknownChipError
from jaxcost.io import notation
from jaxcost.io.atomic import atomic_path
from jaxcost.io.paths import data_dir
from jaxcost.io.schema import Table, read_runs

__all__ = [
    "Col",
    "TRAINING_RUNS_SCHEMA",
    "RUNS_SCHEMA",
    "COLLECTIVES_SCHEMA",
    "KERNELS_SCHEMA",
    "CHIP_ALIASES_SCHEMA",
    "BENCHMARK_KINDS",
    "TARGET_KINDS",
    "COLLECTIVE_KINDS",
    "KERNEL_KINDS",
    "PRECISION_KINDS",
    "data_dir",
    "benchmark_path",
    "load_csv",
    "load_benchmarks",
    "load_user_benchmarks",
    "concat_benchmarks",
    "PROVENANCE_COLUMNS",
    "load_runs",
    "runs_frame",
    "load_user_runs",
    "load_chips_frame",
    "add_si_columns",
    "kernel_flop",
    "write_csv_atomic",
]


# --------------------------------------------------------------------------- schema


@dataclasses.dataclass(frozen=True)
class Col:
    """The rule for one CSV column.

    Attributes:
      kind: ``"str"``, ``"float"``, ``"int"`` (a count: a whole number) or ``"bool"``.
      required: the column must be present in the file.
      filled: every row must have a value (no blank cell).
      positive: numeric values must be > 0.
      nonnegative: numeric values must be >= 0.
      fraction: numeric values must lie in (0, 1].
      allowed: the permitted values of a text column (blank allowed unless ``filled``).
    """

    kind: str = "str"
    required: bool = False
    filled: bool = False
    positive: bool = False
    nonnegative: bool = False
    fraction: bool = False
    allowed: tuple[str, ...] | None = None


#: Targets a training-run row may name: the measured quantity the fit compares with.
TARGET_KINDS = (
    "step_time_s",
    "tokens_per_s_per_chip",
    "mfu",
    "hfu",
    "flop_per_s_per_chip",
)
COLLECTIVE_KINDS = (
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
KERNEL_KINDS = (
    "gemm",
    "moe_gemm",
    "attention",
    "mla",
    "hbm_stream",
    "transformer_layer",
)
PRECISION_KINDS = ("fp64", "fp32", "tf32", "fp16_bf16", "fp8")

_SOURCE = {
    "row_id": Col("str", required=True, filled=True),
    "group": Col("str", required=True, filled=True),
    "source_title": Col("str", required=True, filled=True),
    "source_locator": Col("str", required=True, filled=True),
    "source_url": Col("str", required=True, filled=True),
    "provenance": Col("str", required=True, filled=True),
    "chip": Col("str", required=True, filled=True),
    "chip_key": Col("str", required=True),
    "notes": Col("str", required=True),
}

_COUNT = Col("int", positive=True)

_MODEL_PLAN = {
    "model": Col("str"),
    "arch_model": Col("str"),
    "arch": Col("str", allowed=("dense", "moe")),
    "params_B": Col("float", positive=True),
    "active_params_B": Col("float", positive=True),
    "layers": _COUNT,
    "hidden": _COUNT,
    "ffn_hidden": _COUNT,
    "heads": _COUNT,
    "kv_heads": _COUNT,
    "head_dim": _COUNT,
    "seq_len": _COUNT,
    "vocab": _COUNT,
    "experts": _COUNT,
    "topk": _COUNT,
    "chip_mem_GB": Col("float", positive=True),
    "n_chips": _COUNT,
    "chips_per_node": _COUNT,
    "intra_node_fabric": Col("str"),
    "inter_node_fabric": Col("str"),
    # scale-out (NIC) bandwidth per chip and direction of the measured cluster, bytes/s;
    # blank: the chip's ``scaleout_bytes_per_s`` (data/chips.csv). Not in the reference
    # schema; tools/build_benchmarks.py fills it from data/benchmarks/fabrics.csv.
    "scaleout_bytes_per_s": Col("float", positive=True),
    "precision": Col("str"),
    "framework": Col("str"),
    "gbs_seqs": _COUNT,
    "gbs_tokens": _COUNT,
    "mbs": _COUNT,
    "tp": _COUNT,
    "pp": _COUNT,
    "vpp": _COUNT,
    "dp": _COUNT,
    "cp": _COUNT,
    "ep": _COUNT,
    "sp": Col("str", allowed=("yes", "no")),
    "zero_fsdp": Col("str"),
    "recompute": Col("str"),
    # attention kernel: "flash" (fused, the default when blank or absent) or "unfused"
    # (the T×T scores pass through HBM; frameworks before 2023). Not in the reference
    # schema; tools/build_benchmarks.py fills it from
    # data/benchmarks/software_rules.csv.
    "attention": Col("str", allowed=("flash", "unfused")),
    # MoE dispatch/combine: "nccl" (the framework's all-to-all, the default when blank
    # or absent) or "fused" (DeepEP-style kernels driving NVLink and RDMA at once).
    "ep_dispatcher": Col("str", allowed=("nccl", "fused")),
    # TP communication chunked and pipelined with the GEMMs: "yes" or "no" (default).
    "tp_comm_overlap": Col("str", allowed=("yes", "no")),
    # gradient reduction launched bucket by bucket during the backward pass
    # (Megatron-Core --overlap-grad-reduce, NeMo / Megatron-Bridge recipes, FSDP):
    # "yes" or "no" (default).
    "dp_comm_overlap": Col("str", allowed=("yes", "no")),
    # layers over pipeline stages: "uniform" (L/p each, the head on the last stage;
    # the default) or "balanced" (uneven whole layers so the head's stage is not the
    # slowest: Megatron --decoder-last-pipeline-num-layers, DeepSpeed
    # type:transformer|embedding).
    "pp_layout": Col("str", allowed=("uniform", "balanced")),
}

#: Software-setting columns of a training run (not in the reference schema) and the
#: value a blank or absent cell means.
SOFTWARE_DEFAULTS = {
    "attention": "flash",
    "ep_dispatcher": "nccl",
    "tp_comm_overlap": "no",
    "dp_comm_overlap": "no",
    "pp_layout": "uniform",
}

_OUTCOMES = {
    "step_time_s": Col("float", positive=True),
    "tokens_per_s_per_chip": Col("float", positive=True),
    "tflops_per_chip": Col("float", positive=True),
    "tflops_def": Col("str"),
    "mfu": Col("float", fraction=True),
    "hfu": Col("float", fraction=True),
    "mfu_peak_tflops": Col("float", positive=True),
    "flop_per_s_per_chip": Col("float", positive=True),
    "mfu_peak_flop_per_s": Col("float", positive=True),
}

#: Published training runs (``data/benchmarks/training_runs.csv``).
TRAINING_RUNS_SCHEMA: dict[str, Col] = {
    **_SOURCE,
    **_MODEL_PLAN,
    **_OUTCOMES,
    "derivation": Col("str", required=True),
    "weight": Col("float", required=True, filled=True, positive=True),
    "target": Col("str", required=True, allowed=TARGET_KINDS),
}
#: A user's runs handed to ``jaxcost predict`` / ``fit``: the same columns, without the
#: source columns; the model, the chip and the chip count are required.
RUNS_SCHEMA: dict[str, Col] = {
    **_MODEL_PLAN,
    **_OUTCOMES,
    "chip_key": Col("str", required=True, filled=True),
    "row_id": Col("str"),
    "weight": Col("float", positive=True),
    "target": Col("str", allowed=TARGET_KINDS),
}
for _name in ("layers", "hidden", "heads", "seq_len", "vocab", "gbs_seqs", "n_chips"):
    RUNS_SCHEMA[_name] = dataclasses.replace(
        RUNS_SCHEMA[_name], required=True, filled=True
    )

#: Collective and copy bandwidths (``data/benchmarks/collectives.csv``).
COLLECTIVES_SCHEMA: dict[str, Col] = {
    **_SOURCE,
    "system": Col("str"),
    "collective": Col("str", required=True, filled=True),
    "collective_kind": Col("str", required=True, filled=True, allowed=COLLECTIVE_KINDS),
    "algorithm": Col("str"),
    "n_ranks": _COUNT,
    "n_nodes": _COUNT,
    "ranks_per_node": _COUNT,
    "intra_node_fabric": Col("str"),
    "inter_node_fabric": Col("str"),
    "message_label": Col("str"),
    "message_bytes": Col("float", positive=True),
    "dtype": Col("str"),
    "time_us": Col("float", positive=True),
    "algbw_GBps": Col("float", nonnegative=True),
    "busbw_GBps": Col("float", nonnegative=True),
    "other_metric": Col("str"),
    "other_value": Col("float", nonnegative=True),
    "library": Col("str"),
    "time_s": Col("float", positive=True),
    "algbw_bytes_per_s": Col("float", nonnegative=True),
    "busbw_bytes_per_s": Col("float", nonnegative=True),
    "other_bytes_per_s": Col("float", nonnegative=True),
}

#: Kernel measurements (``data/benchmarks/kernels.csv``).
KERNELS_SCHEMA: dict[str, Col] = {
    **_SOURCE,
    "kernel": Col("str", required=True, filled=True),
    "kernel_kind": Col("str", required=True, filled=True, allowed=KERNEL_KINDS),
    "precision": Col("str"),
    "precision_kind": Col("str", allowed=PRECISION_KINDS),
    "implementation": Col("str"),
    "m": _COUNT,
    "n": _COUNT,
    "k": _COUNT,
    "groups": _COUNT,
    "batch": _COUNT,
    "seq_len": _COUNT,
    "heads": _COUNT,
    "head_dim": _COUNT,
    "causal": Col("bool"),
    "pass": Col("str", allowed=("fwd", "bwd", "fwd+bwd")),
    "value": Col("float", required=True, filled=True, positive=True),
    "unit": Col(
        "str", required=True, filled=True, allowed=("TFLOPS", "TB/s", "GB/s", "ms")
    ),
    "secondary_value": Col("float", positive=True),
    "secondary_unit": Col("str"),
    "flop_per_s": Col("float", positive=True),
    "bytes_per_s": Col("float", positive=True),
    "time_s": Col("float", positive=True),
    "spec_flop_per_s": Col("float", positive=True),
    "spec_bytes_per_s": Col("float", positive=True),
}

#: Chip labels as sources print them -> keys of ``data/chips.csv``.
CHIP_ALIASES_SCHEMA: dict[str, Col] = {
    "chip_label": Col("str", required=True, filled=True),
    "chip_key": Col("str", required=True),
    "reference_chip_key": Col("str", required=True),
    "notes": Col("str", required=True),
}

_SCHEMAS = {
    "training_runs": TRAINING_RUNS_SCHEMA,
    "collectives": COLLECTIVES_SCHEMA,
    "kernels": KERNELS_SCHEMA,
}
#: The benchmark files: kind -> schema.
BENCHMARK_KINDS = tuple(_SCHEMAS)


# ------------------------------------------------------------------------ locations


def benchmark_path(kind: str) -> Path:
    """Path of the shipped benchmark CSV of ``kind`` (one of
    :data:`BENCHMARK_KINDS`)."""
    if kind not in _SCHEMAS:
        raise DataError(
            f"unknown benchmark kind '{kind}'; expected one of "
            f"{', '.join(BENCHMARK_KINDS)}"
        )
    return data_dir() / "benchmarks" / f"{kind}.csv"


# ------------------------------------------------------------------------ validation


def row_label(i: int) -> str:
    """Spreadsheet row of the i-th (0-based) data row: header = row 1."""
    return f"row {i + 2} (header = row 1)"


def is_blank(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, float) and math.isnan(x):
        return True
    return isinstance(x, str) and x.strip() == ""


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def _parse_column(raw: pd.Series, col: Col, name: str, file: str) -> pd.Series:
    """Convert one column of strings to its type, raising on the first bad cell."""
    if col.kind == "str":
        out = pd.Series(
            [None if is_blank(x) else str(x).strip() for x in raw],
            index=raw.index,
            dtype=object,
        )
        if col.allowed is not None:
            for i, v in enumerate(out):
                if v is not None and v not in col.allowed:
                    raise DataError(
                        f"value '{v}' is not allowed; expected one of "
                        f"{', '.join(col.allowed)} or blank",
                        file=file,
                        row=row_label(i),
                        column=name,
                    )
        return out
    if col.kind == "bool":
        vals = []
        for i, x in enumerate(raw):
            if is_blank(x):
                vals.append(None)
                continue
            s = str(x).strip().lower()
            if s in _TRUE:
                vals.append(True)
            elif s in _FALSE:
                vals.append(False)
            else:
                raise DataError(
                    f"value '{x}' is not a boolean; expected True/False, yes/no or "
                    "blank",
                    file=file,
                    row=row_label(i),
                    column=name,
                )
        return pd.Series(vals, index=raw.index, dtype=object)
    # numeric
    vals = np.full(len(raw), np.nan)
    for i, x in enumerate(raw):
        if is_blank(x):
            continue
        try:
            v = float(str(x).strip())
        except ValueError:
            raise DataError(
                f"value '{x}' is not a number; expected "
                f"{'a whole number' if col.kind == 'int' else 'a number'} or blank",
                file=file,
                row=row_label(i),
                column=name,
            ) from None
        if not math.isfinite(v):
            raise DataError(
                f"value '{x}' is not finite; expected a finite number or blank",
                file=file,
                row=row_label(i),
                column=name,
            )
        if col.kind == "int" and v != round(v):
            raise DataError(
                f"value '{x}' is not a whole number; expected a count",
                file=file,
                row=row_label(i),
                column=name,
            )
        if col.positive and v <= 0:
            raise DataError(
                f"value '{x}' must be > 0", file=file, row=row_label(i), column=name
            )
        if col.nonnegative and v < 0:
            raise DataError(
                f"value '{x}' must be >= 0", file=file, row=row_label(i), column=name
            )
        if col.fraction and not (0.0 < v <= 1.0):
            raise DataError(
                f"value '{x}' is not a fraction; expected 0 < value <= 1",
                file=file,
                row=row_label(i),
                column=name,
            )
        vals[i] = v
    return pd.Series(vals, index=raw.index, dtype=float)


def chip_key_set(chips: Any) -> set[str] | None:
    if chips is None:
        return None
    if isinstance(chips, pd.DataFrame):
        return set(chips["key"].astype(str))
    if isinstance(chips, Mapping):
        return set(chips)
    return set(chips)


def load_chips_frame(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read ``data/chips.csv`` as a DataFrame (strings kept as read), indexed 0..n-1.

    Raises:
      DataError: the file is missing or has no ``key`` column.
    """
    p = Path(path) if path is not None else data_dir() / "chips.csv"
    if not p.exists():
        raise DataError("chip database not found; expected data/chips.csv", file=str(p))
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    if "key" not in df.columns:
        raise DataError("missing required column", file=str(p), column="key")
    return df


def load_csv(
    path: str | os.PathLike,
    schema: Mapping[str, Col],
    *,
    chips: Any = "default",
) -> pd.DataFrame:
    """Read and validate one CSV against ``schema``.

    Checks, in order: required columns present; each cell of a schema column has the
    column's type (numbers finite; counts whole; positive / fraction / allowed values
    where the schema says so); required cells filled; ``row_id`` unique; every
    non-blank ``chip_key`` is a key of the chip database; the parallel degrees of a
    training run multiply to its chip count (tp*pp*dp*cp == n_chips where all are
    given; blank cp counts as 1); a named ``target`` has a value in that row. Columns
    not in the schema are kept as text.

    Args:
      path: the CSV file.
      schema: column name -> :class:`Col`.
      chips: the chip database to check ``chip_key`` against: ``"default"`` reads
        ``data/chips.csv``; a DataFrame with a ``key`` column, a mapping keyed by chip
        key (e.g. ``hardware.load_chips()``), an iterable of keys; or ``None`` to skip.

    Returns:
      The validated DataFrame: numeric columns as float64 (NaN = blank), text columns
      as Python strings or None, boolean columns as True/False/None.

    Raises:
      DataError: one line naming the file, the row (header = row 1), the column, the
        bad value and what was expected. ``UnknownChipError`` for an unknown chip key.
    """
    file = str(path)
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", file=file)
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot parse CSV: {e}", file=file) from None
    except OSError as e:  # a folder, no permission, ...
        raise DataError(f"cannot read file: {e.strerror}", file=file) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    for name, col in schema.items():
        if col.required and name not in raw.columns:
            raise DataError("missing required column", file=file, column=name)
    df = raw.copy()
    for name, col in schema.items():
        if name not in raw.columns:
            continue
        df[name] = _parse_column(raw[name], col, name, file)
        if col.filled:
            for i, v in enumerate(df[name]):
                if is_blank(v):
                    raise DataError(
                        "blank cell; expected a value in every row",
                        file=file,
                        row=row_label(i),
                        column=name,
                    )
    for name in df.columns:
        if name not in schema:
            df[name] = pd.Series(
                [None if is_blank(x) else x for x in raw[name]],
                index=raw.index,
                dtype=object,
            )
    if "row_id" in df.columns:
        seen: dict[str, int] = {}
        for i, v in enumerate(df["row_id"]):
            if v is None:
                continue
            if v in seen:
                raise DataError(
                    f"duplicated row_id '{v}' (first at {row_label(seen[v])}); "
                    "expected unique row ids",
                    file=file,
                    row=row_label(i),
                    column="row_id",
                )
            seen[v] = i
    if isinstance(chips, str) and chips == "default":
        chips = load_chips_frame() if "chip_key" in df.columns else None
    keys = chip_key_set(chips)
    if keys is not None and "chip_key" in df.columns:
        for i, v in enumerate(df["chip_key"]):
            if v is not None and v not in keys:
                raise UnknownChipError(
                    f"unknown chip key '{v}'; expected a key of data/chips.csv "
                    "(or blank, with a note, for a chip not in the database)",
                    file=file,
                    row=row_label(i),
                    column="chip_key",
                )
    if {"tp", "pp", "dp", "n_chips"} <= set(df.columns):
        cp = (
            df["cp"].fillna(1.0)
            if "cp" in df.columns
            else pd.Series(1.0, index=df.index)
        )
        prod = df["tp"] * df["pp"] * df["dp"] * cp
        for i in range(len(df)):
            if np.isnan(prod.iloc[i]) or np.isnan(df["n_chips"].iloc[i]):
                continue
            if prod.iloc[i] != df["n_chips"].iloc[i]:
                raise DataError(
                    f"tp*pp*dp*cp = {prod.iloc[i]:g} but n_chips = "
                    f"{df['n_chips'].iloc[i]:g}; expected the product of the parallel "
                    "degrees to equal the chip count",
                    file=file,
                    row=row_label(i),
                    column="n_chips",
                )
    if "target" in df.columns:
        for i, t in enumerate(df["target"]):
            if t is not None and (t not in df.columns or is_blank(df[t].iloc[i])):
                raise DataError(
                    f"target '{t}' names a blank column; expected a value in '{t}'",
                    file=file,
                    row=row_label(i),
                    column=t,
                )
    return df


def load_benchmarks(
    kind: str, path: str | os.PathLike | None = None, *, chips: Any = "default"
) -> pd.DataFrame:
    """Load and validate a benchmark CSV.

    Args:
      kind: ``"training_runs"``, ``"collectives"`` or ``"kernels"``.
      path: the file (default: the shipped ``data/benchmarks/<kind>.csv``).
      chips: chip database for the ``chip_key`` check (see :func:`load_csv`).

    Returns:
      The validated DataFrame with SI columns filled from the quoted ones where blank
      (:func:`add_si_columns`).
    """
    p = benchmark_path(kind) if path is None else Path(path)
    if kind not in _SCHEMAS:
        raise DataError(
            f"unknown benchmark kind '{kind}'; expected one of "
            f"{', '.join(BENCHMARK_KINDS)}"
        )
    df = load_csv(p, _SCHEMAS[kind], chips=chips)
    return add_si_columns(df, kind, file=str(p))


#: The columns that say where a benchmark row comes from; a user's file handed to
#: ``jaxcost fit`` may leave them out (:func:`load_user_benchmarks`).
PROVENANCE_COLUMNS = tuple(c for c in _SOURCE if c != "chip_key")


def load_user_benchmarks(
    kind: str, path: str | os.PathLike, *, chips: Any = "default"
) -> pd.DataFrame:
    """Load a benchmark CSV of ``kind`` whose provenance columns are optional.

    Like :func:`load_benchmarks`, except that the columns of
    :data:`PROVENANCE_COLUMNS`, ``derivation`` and ``weight`` may be missing or blank:
    a blank ``group`` is the file name's stem (``mine.csv`` -> ``mine``), a blank
    ``row_id`` is ``<stem>:<row>`` (spreadsheet row, header = row 1), a blank
    ``weight`` is 1, and the other cells stay blank.

    Raises:
      DataError: as :func:`load_benchmarks`.
    """
    if kind not in _SCHEMAS:
        raise DataError(
            f"unknown benchmark kind '{kind}'; expected one of "
            f"{', '.join(BENCHMARK_KINDS)}"
        )
    optional = (*PROVENANCE_COLUMNS, "derivation", "weight")
    schema = {
        name: (
            dataclasses.replace(col, required=False, filled=False)
            if name in optional
            else col
        )
        for name, col in _SCHEMAS[kind].items()
    }
    p = Path(path)
    df = load_csv(p, schema, chips=chips)
    stem = p.stem
    for name in optional:
        if name in schema and name not in df.columns:
            df[name] = pd.Series([None] * len(df), index=df.index, dtype=object)
    if "weight" in schema:
        df["weight"] = pd.to_numeric(df["weight"], errors="coerce").fillna(1.0)
    df["group"] = [stem if is_blank(g) else g for g in df["group"]]
    df["row_id"] = [
        f"{stem}:{i + 2}" if is_blank(r) else r for i, r in enumerate(df["row_id"])
    ]
    return add_si_columns(df, kind, file=str(p))


def concat_benchmarks(parts: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One frame of the validated frames ``(file, frame)`` of one benchmark kind, in
    order; a column missing from a file is blank in its rows.

    Raises:
      DataError: a ``row_id`` used twice; the message names both files and rows.
    """
    first: dict[str, tuple[str, int]] = {}
    for file, df in parts:
        for i, rid in enumerate(df["row_id"]):
            if is_blank(rid):
                continue
            if rid in first:
                other, j = first[rid]
                where = "" if other == file else f"{other}, "
                raise DataError(
                    f"row_id '{rid}' also at {where}{row_label(j)}; expected row ids "
                    "unique across the files of a kind (rename one)",
                    file=file,
                    row=row_label(i),
                    column="row_id",
                )
            first[rid] = (file, i)
    if len(parts) == 1:
        return parts[0][1]
    return pd.concat([df for _, df in parts], ignore_index=True, sort=False)


def load_runs(path: str | os.PathLike, *, chips: Any = "default") -> pd.DataFrame:
    """Load a user's training-run CSV (``jaxcost predict`` input):
    :data:`RUNS_SCHEMA`."""
    df = load_csv(path, RUNS_SCHEMA, chips=chips)
    return add_si_columns(df, "training_runs", file=str(path))


def load_user_runs(
    path: str | os.PathLike, *, skipped: list[str] | None = None
) -> pd.DataFrame:
    """A user's training runs in any published notation, validated and filled
    (:func:`jaxcost.io.schema.read_runs`, a measured value required), as the frame
    ``runs_to_arrays`` takes: the fit path of the one input schema.

    ``row_id`` is the file's where given, else ``<stem>:<row>`` (1-based data row);
    ``group`` defaults to the file name's stem.

    Args:
      path: the CSV file.
      skipped: if given, rows with problems are left out and each one's first
        problem is appended to it as one line; if None, the first problem raises.

    Raises:
      DataError: the first problem of the file (one line: file, row, column), unless
        ``skipped`` is given.
    """
    table = read_runs(path)
    for probs in table.problems:
        if probs:
            if skipped is None:
                raise probs[0].error()
            skipped.append(str(probs[0]))
    df = runs_frame(table)
    stem = Path(path).stem
    df["row_id"] = [
        f"{stem}:{r}" if is_blank(s) else str(s)
        for r, s in zip(df["row_id"], df["source_row_id"], strict=True)
    ]
    return df


def runs_frame(table: Table, rows: Sequence[int] | None = None) -> pd.DataFrame:
    """Frame of the rows of a validated training-run table
    (:func:`jaxcost.io.schema.read_runs`), ready for ``runs_to_arrays``.

    Values are the table's (parsed and filled), numbers as float64 (NaN = blank),
    text as str or None. ``row_id`` is the 1-based data row number as text (unique
    and what the table's problems name); the row id given in the file, if any, is
    kept in ``source_row_id``.

    Args:
      table: the validated table.
      rows: 0-based indices of the rows to take (default: the rows without problems).
    """
    take = table.valid_rows() if rows is None else list(rows)
    records = []
    for i in take:
        rec = dict(table.values[i])
        rec["source_row_id"] = rec.get("row_id")
        rec["row_id"] = str(i + 1)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    for name in df.columns:
        vals = [v for v in df[name] if v is not None and not is_blank(v)]
        if vals and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals
        ):
            df[name] = pd.to_numeric(df[name], errors="coerce").astype(float)
        else:
            df[name] = pd.Series(
                [None if is_blank(v) else v for v in df[name]],
                index=df.index,
                dtype=object,
            )
    return df


# ------------------------------------------------------------------ unit conversion


def _fill_si(
    df: pd.DataFrame,
    si: str,
    quoted: pd.Series,
    file: str | None,
    *,
    rtol: float = 1e-6,
) -> None:
    """Fill ``df[si]`` from ``quoted`` (already converted); check agreement where
    both."""
    if si not in df.columns:
        df[si] = quoted.astype(float)
        return
    cur = df[si].astype(float)
    both = cur.notna() & quoted.notna()
    bad = both & ((cur - quoted).abs() > rtol * quoted.abs())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"value {cur.iloc[i]:g} disagrees with the quoted column "
            f"({quoted.iloc[i]:g} after unit conversion); expected equal values",
            file=file,
            row=row_label(i),
            column=si,
        )
    df[si] = cur.where(cur.notna(), quoted)


def column_or_nan(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").astype(float)
    return pd.Series(np.nan, index=df.index, dtype=float)


def add_si_columns(
    df: pd.DataFrame, kind: str, *, file: str | None = None
) -> pd.DataFrame:
    """Add (or check) the SI columns of a benchmark frame from its quoted columns.

    Decimal prefixes throughout (``units.TERA``, ``units.GIGA``): TFLOP/s x 1e12 ->
    FLOP/s; GB/s x 1e9 and TB/s x 1e12 -> bytes/s; ms x 1e-3 and us x 1e-6 -> s.

    * training_runs: ``flop_per_s_per_chip`` = tflops_per_chip x 1e12,
      ``mfu_peak_flop_per_s`` = mfu_peak_tflops x 1e12.
    * collectives: ``time_s`` = time_us x 1e-6, ``algbw_bytes_per_s`` /
      ``busbw_bytes_per_s`` = GB/s x 1e9, ``other_bytes_per_s`` = other_value x 1e9
      where ``other_metric`` is a GB/s figure.
    * kernels: ``value``/``unit`` and ``secondary_value``/``secondary_unit`` ->
      ``flop_per_s``, ``bytes_per_s``, ``time_s`` (measurements) and
      ``spec_flop_per_s``/``spec_bytes_per_s`` (peaks quoted by the source).

    Returns a copy; raises ``DataError`` where an SI cell disagrees with its quoted
    cell.
    """
    df = df.copy()
    if kind == "training_runs":
        _fill_si(
            df,
            "flop_per_s_per_chip",
            column_or_nan(df, "tflops_per_chip") * units.TERA,
            file,
        )
        _fill_si(
            df,
            "mfu_peak_flop_per_s",
            column_or_nan(df, "mfu_peak_tflops") * units.TERA,
            file,
        )
    elif kind == "collectives":
        _fill_si(df, "time_s", column_or_nan(df, "time_us") * units.MICRO, file)
        _fill_si(
            df, "algbw_bytes_per_s", column_or_nan(df, "algbw_GBps") * units.GIGA, file
        )
        _fill_si(
            df, "busbw_bytes_per_s", column_or_nan(df, "busbw_GBps") * units.GIGA, file
        )
        metric = (
            df["other_metric"].fillna("").astype(str)
            if "other_metric" in df.columns
            else pd.Series("", index=df.index)
        )
        is_gbs = metric.str.contains("GB/s", regex=False) | metric.str.contains(
            "equivalent bandwidth", regex=False
        )
        _fill_si(
            df,
            "other_bytes_per_s",
            column_or_nan(df, "other_value").where(is_gbs) * units.GIGA,
            file,
        )
    elif kind == "kernels":
        unit = (
            df["unit"].fillna("").astype(str)
            if "unit" in df.columns
            else pd.Series("", index=df.index)
        )
        val = column_or_nan(df, "value")
        sunit = (
            df["secondary_unit"].fillna("").astype(str)
            if "secondary_unit" in df.columns
            else pd.Series("", index=df.index)
        )
        sval = column_or_nan(df, "secondary_value")
        nan = pd.Series(np.nan, index=df.index)
        flop = val.where(unit == "TFLOPS", nan) * units.TERA
        bw = (val.where(unit == "TB/s", nan) * units.TERA).combine_first(
            val.where(unit == "GB/s", nan) * units.GIGA
        )
        t = val.where(unit == "ms", nan) * units.MILLI
        is_spec = sunit.str.contains("theoretical", regex=False) | sunit.str.contains(
            "spec", regex=False
        )
        measured_bw = sunit.str.startswith("GB/s") & ~is_spec
        bw = bw.combine_first(sval.where(measured_bw, nan) * units.GIGA)
        t = t.combine_first(sval.where(sunit == "ms", nan) * units.MILLI)
        spec_flop = sval.where(is_spec & (unit == "TFLOPS"), nan) * units.TERA
        spec_bw = (
            sval.where(is_spec & (unit == "GB/s"), nan) * units.GIGA
        ).combine_first(sval.where(is_spec & (unit == "TB/s"), nan) * units.TERA)
        _fill_si(df, "flop_per_s", flop, file)
        _fill_si(df, "bytes_per_s", bw, file)
        _fill_si(df, "time_s", t, file)
        _fill_si(df, "spec_flop_per_s", spec_flop, file)
        _fill_si(df, "spec_bytes_per_s", spec_bw, file)
    else:
        raise DataError(
            f"unknown benchmark kind '{kind}'; expected one of "
            f"{', '.join(BENCHMARK_KINDS)}"
        )
    return df


# ------------------------------------------------------------------- derived values


def kernel_flop(row: Mapping[str, Any]) -> float:
    """FLOP count of one benchmarked kernel call, or NaN where the row does not fix it.

    * GEMM (``kernel_kind`` gemm / moe_gemm): 2*m*n*k, times ``groups`` where given.
    * Attention (FlashAttention benchmark convention, ``benchmark_flash_attention.py``):
      forward 4*B*T^2*N*H, halved when causal; backward 2.5x forward; fwd+bwd 3.5x.
    * Anything else (MLA decode, whole layers, streams): NaN.

    Args:
      row: a mapping with the kernels-schema columns (blank = NaN / None).

    Returns:
      FLOP (a count), float.
    """

    def num(name: str) -> float:
        v = row.get(name)
        try:
            return float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            return math.nan

    kind = row.get("kernel_kind")
    if kind in ("gemm", "moe_gemm"):
        groups = num("groups")
        g = 1.0 if math.isnan(groups) else groups
        return 2.0 * num("m") * num("n") * num("k") * g
    if kind == "attention":
        b, t, n, h = num("batch"), num("seq_len"), num("heads"), num("head_dim")
        causal = row.get("causal")
        passes = row.get("pass")
        if causal is None or passes is None:
            return math.nan
        fwd = 4.0 * b * t * t * n * h * (0.5 if bool(causal) else 1.0)
        factor = {"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}.get(str(passes), math.nan)
        return fwd * factor
    return math.nan


# ------------------------------------------------------------------ plan parsing


def zero_stage(text: Any) -> int:
    """ZeRO stage from the ``zero_fsdp`` text: blank/none -> 0, FSDP -> 3."""
    if is_blank(text):
        return 0
    s = str(text).strip().lower()
    if s in ("none", "no", "0"):
        return 0
    if "fsdp" in s:
        return 3
    m = re.search(r"zero-?\s*(\d)", s)
    if m:
        return int(m.group(1))
    if s.isdigit():
        return int(s)
    raise DataError(
        f"value '{text}' is not a ZeRO stage; expected e.g. ZeRO-1, zero1=8, FSDP"
    )


def recompute_code(text: Any) -> int:
    """Recompute kind code (``parallel.Recompute`` value) from the ``recompute``
    text."""
    if is_blank(text):
        return 0
    s = str(text).strip().lower()
    if s in ("none", "no", "off"):
        return 0
    if s.startswith("full"):
        return 2
    # Fine-grained module recompute (Megatron-Core --recompute-modules): recomputing
    # only norms and activation functions costs a few memory-bound passes, which the
    # step model neglects (none); recomputing the whole MoE block repeats most of the
    # layer's FLOP (full). Other selective recompute is the attention core
    # (Korthikanti).
    modules = s.split("(", 1)[1] if "(" in s else s
    if "moe layernorm" in modules or "whole moe block" in modules:
        return 2
    if s in ("norm, act", "norm,act") or "moe_act, layernorm" in modules:
        return 0
    if s.startswith("selective"):
        return 1
    raise DataError(
        f"value '{text}' is not a recompute mode; expected none, selective, full"
    )


def precision_kind(text: Any) -> str:
    """Compute precision of a training run (:func:`notation.parse_precision`):
    ``fp32``, ``tf32``, ``fp16_bf16`` or ``fp8``; blank or unreadable text is
    fp16_bf16 unless it names FP8."""
    if is_blank(text):
        return "fp16_bf16"
    try:
        return notation.parse_precision(text)
    except DataError:
        return "fp8" if "fp8" in str(text).lower() else "fp16_bf16"


# ----------------------------------------------------------------------- batches


# ---------------------------------------------------------------------- output


def write_csv_atomic(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` to ``path`` as CSV atomically (temporary file + rename).

    Floats are written with up to 10 significant digits (``%.10g``: scientific
    notation for large and small magnitudes), blanks as empty cells.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")
