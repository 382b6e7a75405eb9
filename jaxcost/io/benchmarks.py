"""Benchmark data: schemas, validated loading, unit conversion, DataFrame -> arrays.

This is the only jaxcost module that imports pandas. It owns

* the schema of each benchmark CSV in ``data/benchmarks/`` (a tuple of
  :class:`jaxcost.io.schema.Column`: parser with type, bounds and allowed values;
  required column; filled cells),
* :func:`load_csv` / :func:`load_benchmarks` / :func:`load_runs`, which validate a file
  through the one generic validation (:func:`jaxcost.io.schema.read_table`), add the
  checks across columns (known chip, plan against chip count, target), collect every
  problem and raise the first as :class:`~jaxcost.errors.DataError` with one line
  naming the file, the row, the column, the bad value and what was expected,
* the unit conversion at the CSV boundary (:func:`add_si_columns`: TFLOP/s, GB/s, TB/s,
  ms and us as quoted -> FLOP/s, bytes/s and s),
* derived quantities that are code, not data (:func:`kernel_flop`: the FLOP count of a
  benchmarked kernel),
* conversion of validated frames to arrays: :func:`runs_to_arrays` (-> :class:`RunBatch`
  of stacked ``TransformerConfig`` and ``ParallelPlan``), :func:`collectives_to_arrays`,
  :func:`kernels_to_arrays`.

Rows are numbered as everywhere (:func:`jaxcost.errors.location`): ``row N (line M)``,
N the 1-based data row (header excluded), M the line of the file.

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
from jaxcost.errors import DataError, UnknownChipError, location
from jaxcost.io import notation
from jaxcost.io.atomic import atomic_path
from jaxcost.io.paths import data_dir
from jaxcost.io.runs import read_runs
from jaxcost.io.schema import (
    Column,
    Problem,
    Table,
    boolean,
    number,
    one_of,
    raise_problems,
    read_table,
)
from jaxcost.io.schema import text as text_cell

__all__ = [
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
    "row_place",
    "load_benchmarks",
    "load_user_benchmarks",
    "concat_benchmarks",
    "PROVENANCE_COLUMNS",
    "load_runs",
    "runs_frame",
    "load_user_runs",
    "CHIP_KEY_COLUMNS",
    "load_chips_frame",
    "add_si_columns",
    "kernel_flop",
    "write_csv_atomic",
]


# --------------------------------------------------------------------------- schema


def _col(
    name: str,
    kind: str = "str",
    *,
    required: bool = False,
    filled: bool = False,
    positive: bool = False,
    nonnegative: bool = False,
    fraction: bool = False,
    allowed: tuple[str, ...] | None = None,
    doc: str = "",
) -> Column:
    """One benchmark column as a :class:`~jaxcost.io.schema.Column`.

    Args:
      kind: ``"str"``, ``"float"``, ``"int"`` (a count: a whole number, kept as a
        float) or ``"bool"``; numbers are finite and blank means NaN.
      required: the column must be in the header.
      filled: every row must have a value (no blank cell).
      positive, nonnegative, fraction: bounds of a number (> 0, >= 0, (0, 1]).
      allowed: the permitted values of a text column (blank allowed unless
        ``filled``).
    """
    if kind in ("float", "int"):
        parse = number(
            positive=positive,
            nonnegative=nonnegative,
            fraction=fraction,
            whole=kind == "int",
        )
        default = math.nan
    elif kind == "bool":
        parse, default = boolean(), None
    else:
        parse = text_cell if allowed is None else one_of(*allowed)
        default = None
    if not doc:  # the form; the unit is in the name, the meaning in data/README.md
        bound = " > 0" if positive else " >= 0" if nonnegative else ""
        doc = {
            "float": "fraction in (0, 1]" if fraction else f"number{bound}",
            "int": f"count{bound}",
            "bool": "true or false",
        }.get(kind, f"one of {', '.join(allowed)}" if allowed else "text")
    return Column(
        name, parse, required=filled, default=default, doc=doc, present=required
    )


def _table(*parts: tuple[Column, ...]) -> tuple[Column, ...]:
    """The columns of ``parts`` by name (a later one wins), in order."""
    cols = {c.name: c for part in parts for c in part}
    return tuple(cols.values())


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

_SOURCE = (
    _col("row_id", "str", required=True, filled=True),
    _col("group", "str", required=True, filled=True),
    _col("source_title", "str", required=True, filled=True),
    _col("source_locator", "str", required=True, filled=True),
    _col("source_url", "str", required=True, filled=True),
    _col("provenance", "str", required=True, filled=True),
    _col("chip", "str", required=True, filled=True),
    _col("chip_key", "str", required=True),
    _col("notes", "str", required=True),
)

_MODEL_PLAN = (
    _col("model", "str"),
    _col("arch_model", "str"),
    _col("arch", "str", allowed=("dense", "moe")),
    _col("params_B", "float", positive=True),
    _col("active_params_B", "float", positive=True),
    _col("layers", "int", positive=True),
    _col("hidden", "int", positive=True),
    _col("ffn_hidden", "int", positive=True),
    _col("heads", "int", positive=True),
    _col("kv_heads", "int", positive=True),
    _col("head_dim", "int", positive=True),
    _col("seq_len", "int", positive=True),
    _col("vocab", "int", positive=True),
    _col("experts", "int", positive=True),
    _col("topk", "int", positive=True),
    _col("chip_mem_GB", "float", positive=True),
    _col("n_chips", "int", positive=True),
    _col("chips_per_node", "int", positive=True),
    _col("intra_node_fabric", "str"),
    _col("inter_node_fabric", "str"),
    # scale-out (NIC) bandwidth per chip and direction of the measured cluster, bytes/s;
    # blank: the chip's ``scaleout_bytes_per_s`` (data/chips.csv). Not in the reference
    # schema; tools/build_benchmarks.py fills it from data/benchmarks/fabrics.csv.
    _col("scaleout_bytes_per_s", "float", positive=True),
    _col("precision", "str"),
    _col("framework", "str"),
    _col("gbs_seqs", "int", positive=True),
    _col("gbs_tokens", "int", positive=True),
    _col("mbs", "int", positive=True),
    _col("tp", "int", positive=True),
    _col("pp", "int", positive=True),
    _col("vpp", "int", positive=True),
    _col("dp", "int", positive=True),
    _col("cp", "int", positive=True),
    _col("ep", "int", positive=True),
    _col("sp", "str", allowed=("yes", "no")),
    _col("zero_fsdp", "str"),
    _col("recompute", "str"),
    # attention kernel: "flash" (fused, the default when blank or absent) or "unfused"
    # (the T×T scores pass through HBM; frameworks before 2023). Not in the reference
    # schema; tools/build_benchmarks.py fills it from
    # data/benchmarks/software_rules.csv.
    _col("attention", "str", allowed=("flash", "unfused")),
    # MoE dispatch/combine: "nccl" (the framework's all-to-all, the default when blank
    # or absent) or "fused" (DeepEP-style kernels driving NVLink and RDMA at once).
    _col("ep_dispatcher", "str", allowed=("nccl", "fused")),
    # TP communication chunked and pipelined with the GEMMs: "yes" or "no" (default).
    _col("tp_comm_overlap", "str", allowed=("yes", "no")),
    # gradient reduction launched bucket by bucket during the backward pass
    # (Megatron-Core --overlap-grad-reduce, NeMo / Megatron-Bridge recipes, FSDP):
    # "yes" or "no" (default).
    _col("dp_comm_overlap", "str", allowed=("yes", "no")),
    # layers over pipeline stages: "uniform" (L/p each, the head on the last stage;
    # the default) or "balanced" (uneven whole layers so the head's stage is not the
    # slowest: Megatron --decoder-last-pipeline-num-layers, DeepSpeed
    # type:transformer|embedding).
    _col("pp_layout", "str", allowed=("uniform", "balanced")),
)

#: Software-setting columns of a training run (not in the reference schema) and the
#: value a blank or absent cell means.
SOFTWARE_DEFAULTS = {
    "attention": "flash",
    "ep_dispatcher": "nccl",
    "tp_comm_overlap": "no",
    "dp_comm_overlap": "no",
    "pp_layout": "uniform",
}

_OUTCOMES = (
    _col("step_time_s", "float", positive=True),
    _col("tokens_per_s_per_chip", "float", positive=True),
    _col("tflops_per_chip", "float", positive=True),
    _col("tflops_def", "str"),
    _col("mfu", "float", fraction=True),
    _col("hfu", "float", fraction=True),
    _col("mfu_peak_tflops", "float", positive=True),
    _col("flop_per_s_per_chip", "float", positive=True),
    _col("mfu_peak_flop_per_s", "float", positive=True),
)

#: Published training runs (``data/benchmarks/training_runs.csv``).
TRAINING_RUNS_SCHEMA: tuple[Column, ...] = _table(
    _SOURCE,
    _MODEL_PLAN,
    _OUTCOMES,
    (
        _col("derivation", "str", required=True),
        _col("weight", "float", required=True, filled=True, positive=True),
        _col("target", "str", required=True, allowed=TARGET_KINDS),
    ),
)
#: A user's runs handed to ``jaxcost predict`` / ``fit``: the same columns, without the
#: source columns; the model, the chip and the chip count are required.
RUNS_SCHEMA: tuple[Column, ...] = _table(
    _MODEL_PLAN,
    _OUTCOMES,
    (
        _col("chip_key", "str", required=True, filled=True),
        _col("row_id", "str"),
        _col("weight", "float", positive=True),
        _col("target", "str", allowed=TARGET_KINDS),
    ),
    tuple(
        dataclasses.replace(c, required=True, present=True)
        for c in _MODEL_PLAN
        if c.name
        in ("layers", "hidden", "heads", "seq_len", "vocab", "gbs_seqs", "n_chips")
    ),
)

#: Collective and copy bandwidths (``data/benchmarks/collectives.csv``).
COLLECTIVES_SCHEMA: tuple[Column, ...] = _table(
    _SOURCE,
    (
        _col("system", "str"),
        _col("collective", "str", required=True, filled=True),
        _col(
            "collective_kind",
            "str",
            required=True,
            filled=True,
            allowed=COLLECTIVE_KINDS,
        ),
        _col("algorithm", "str"),
        _col("n_ranks", "int", positive=True),
        _col("n_nodes", "int", positive=True),
        _col("ranks_per_node", "int", positive=True),
        _col("intra_node_fabric", "str"),
        _col("inter_node_fabric", "str"),
        _col("message_label", "str"),
        _col("message_bytes", "float", positive=True),
        _col("dtype", "str"),
        _col("time_us", "float", positive=True),
        _col("algbw_GBps", "float", nonnegative=True),
        _col("busbw_GBps", "float", nonnegative=True),
        _col("other_metric", "str"),
        _col("other_value", "float", nonnegative=True),
        _col("library", "str"),
        _col("time_s", "float", positive=True),
        _col("algbw_bytes_per_s", "float", nonnegative=True),
        _col("busbw_bytes_per_s", "float", nonnegative=True),
        _col("other_bytes_per_s", "float", nonnegative=True),
    ),
)

#: Kernel measurements (``data/benchmarks/kernels.csv``).
KERNELS_SCHEMA: tuple[Column, ...] = _table(
    _SOURCE,
    (
        _col("kernel", "str", required=True, filled=True),
        _col("kernel_kind", "str", required=True, filled=True, allowed=KERNEL_KINDS),
        _col("precision", "str"),
        _col("precision_kind", "str", allowed=PRECISION_KINDS),
        _col("implementation", "str"),
        _col("m", "int", positive=True),
        _col("n", "int", positive=True),
        _col("k", "int", positive=True),
        _col("groups", "int", positive=True),
        _col("batch", "int", positive=True),
        _col("seq_len", "int", positive=True),
        _col("heads", "int", positive=True),
        _col("head_dim", "int", positive=True),
        _col("causal", "bool"),
        _col("pass", "str", allowed=("fwd", "bwd", "fwd+bwd")),
        _col("value", "float", required=True, filled=True, positive=True),
        _col(
            "unit",
            "str",
            required=True,
            filled=True,
            allowed=("TFLOPS", "TB/s", "GB/s", "ms"),
        ),
        _col("secondary_value", "float", positive=True),
        _col("secondary_unit", "str"),
        _col("flop_per_s", "float", positive=True),
        _col("bytes_per_s", "float", positive=True),
        _col("time_s", "float", positive=True),
        _col("spec_flop_per_s", "float", positive=True),
        _col("spec_bytes_per_s", "float", positive=True),
    ),
)

#: Chip labels as sources print them -> keys of ``data/chips.csv``.
CHIP_ALIASES_SCHEMA: tuple[Column, ...] = (
    _col("chip_label", "str", required=True, filled=True),
    _col("chip_key", "str", required=True),
    _col("reference_chip_key", "str", required=True),
    _col("notes", "str", required=True),
)

_SCHEMAS: dict[str, tuple[Column, ...]] = {
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


def is_blank(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, float) and math.isnan(x):
        return True
    return isinstance(x, str) and x.strip() == ""


def chip_key_set(chips: Any) -> set[str] | None:
    if chips is None:
        return None
    if isinstance(chips, pd.DataFrame):
        return set(chips["key"].astype(str))
    if isinstance(chips, Mapping):
        return set(chips)
    return set(chips)


#: What the benchmark loaders need of the chips CSV: its keys (the chip table itself
#: is validated by ``jaxcost.model.hardware.load_chips`` against ``CHIP_COLUMNS``).
CHIP_KEY_COLUMNS: tuple[Column, ...] = (
    Column(
        "key", text_cell, required=True, present=True, doc="chip key of data/chips.csv"
    ),
)


def load_chips_frame(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read ``data/chips.csv`` as a DataFrame (strings kept as read), indexed 0..n-1.

    Only the ``key`` column is validated (:data:`CHIP_KEY_COLUMNS`); the frame is for
    looking keys up.

    Raises:
      DataError: the file is missing, has no ``key`` column or a blank key.
    """
    p = Path(path) if path is not None else data_dir() / "chips.csv"
    table = read_table(p, CHIP_KEY_COLUMNS)
    raise_problems(table.all_problems())
    header = list(dict.fromkeys(table.header))
    return pd.DataFrame([dict(r) for r in table.raw], columns=header, dtype=object)


def _number(x: Any) -> float:
    """A validated numeric cell as a float (NaN when blank or bad)."""
    return math.nan if x is None else float(x)


def _cross_problems(table: Table, keys: set[str] | None) -> list[Problem]:
    """The checks that span columns of a row: known ``chip_key``, the parallel
    degrees against the chip count, a ``target`` that names a filled column."""
    header = set(table.header)
    probs: list[Problem] = []
    for i, v in enumerate(table.values):
        bad = {p.column for p in table.problems[i]}
        where = (table.file, i + 1)
        line = table.lines[i]
        ck = v.get("chip_key")
        if keys is not None and ck is not None and "chip_key" not in bad:
            if ck not in keys:
                probs.append(
                    Problem(
                        *where,
                        "chip_key",
                        f"unknown chip key '{ck}'; expected a key of data/chips.csv "
                        "(or blank, with a note, for a chip not in the database)",
                        line,
                        error_type=UnknownChipError,
                    )
                )
        if {"tp", "pp", "dp", "n_chips"} <= header:
            tp, pp, dp, n = (_number(v.get(c)) for c in ("tp", "pp", "dp", "n_chips"))
            cp = _number(v.get("cp")) if "cp" in header else 1.0
            prod = tp * pp * dp * (1.0 if math.isnan(cp) else cp)
            if not (math.isnan(prod) or math.isnan(n)) and prod != n:
                probs.append(
                    Problem(
                        *where,
                        "n_chips",
                        f"tp*pp*dp*cp = {prod:g} but n_chips = {n:g}; expected the "
                        "product of the parallel degrees to equal the chip count",
                        line,
                    )
                )
        t = v.get("target")
        if t is not None and t not in bad:
            cell = v.get(t, table.raw[i].get(t))
            if t not in header or is_blank(cell):
                probs.append(
                    Problem(
                        *where,
                        t,
                        f"target '{t}' names a blank column; expected a value in '{t}'",
                        line,
                    )
                )
    return probs


def _frame(table: Table, columns: Sequence[Column]) -> pd.DataFrame:
    """The validated table as a frame: numeric columns float64 (NaN = blank), the
    others Python objects (None = blank); columns not in the schema as read."""
    by_name = {c.name: c for c in columns}
    data: dict[str, Any] = {}
    for name in dict.fromkeys(table.header):
        col = by_name.get(name)
        if col is not None and isinstance(col.default, float):
            data[name] = np.array([v[name] for v in table.values], dtype=float)
        elif col is not None:
            data[name] = pd.Series([v[name] for v in table.values], dtype=object)
        else:
            data[name] = pd.Series(
                [None if is_blank(r.get(name)) else r.get(name) for r in table.raw],
                dtype=object,
            )
    df = pd.DataFrame(data, index=pd.RangeIndex(len(table)))
    df.attrs["lines"] = tuple(table.lines)
    return df


def row_place(df: pd.DataFrame, i: int) -> dict[str, int | None]:
    """``row`` and ``line`` of the i-th (0-based) row of a frame loaded by
    :func:`load_csv` (keyword arguments of :class:`~jaxcost.errors.JaxcostError` and
    :class:`~jaxcost.io.schema.Problem`); the line is None once the frame no longer
    has the file's rows (filtered or concatenated)."""
    lines = df.attrs.get("lines", ())
    return {"row": i + 1, "line": lines[i] if len(lines) == len(df) else None}


def load_csv(
    path: str | os.PathLike,
    schema: Sequence[Column],
    *,
    chips: Any = "default",
) -> pd.DataFrame:
    """Read and validate one CSV against ``schema`` (a tuple of
    :class:`~jaxcost.io.schema.Column`).

    Through :func:`jaxcost.io.schema.read_table`: required columns present; each cell
    of a schema column has the column's type (numbers finite; counts whole;
    positive / fraction / allowed values where the schema says so); required cells
    filled; ``row_id`` unique. Then, row by row: every non-blank ``chip_key`` is a
    key of the chip database; the parallel degrees of a training run multiply to its
    chip count (tp*pp*dp*cp == n_chips where all are given; blank cp counts as 1); a
    named ``target`` has a value in that row. Columns not in the schema are kept as
    text. Every problem of the file is collected; the first one raises.

    Args:
      path: the CSV file.
      schema: the columns.
      chips: the chip database to check ``chip_key`` against: ``"default"`` reads
        ``data/chips.csv``; a DataFrame with a ``key`` column, a mapping keyed by chip
        key (e.g. ``hardware.load_chips()``), an iterable of keys; or ``None`` to skip.

    Returns:
      The validated DataFrame: numeric columns as float64 (NaN = blank), text columns
      as Python strings or None, boolean columns as True/False/None.

    Raises:
      DataError: one line naming the file, the row (``row N (line M)``), the column,
        the bad value and what was expected (``err.problems``: every problem).
        ``UnknownChipError`` for an unknown chip key.
    """
    names = {c.name for c in schema}
    table = read_table(path, schema, unique=("row_id",) if "row_id" in names else ())
    if isinstance(chips, str) and chips == "default":
        chips = load_chips_frame() if "chip_key" in table.header else None
    keys = chip_key_set(chips) if "chip_key" in table.header else None
    raise_problems(table.all_problems() + _cross_problems(table, keys))
    return _frame(table, schema)


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
PROVENANCE_COLUMNS = tuple(c.name for c in _SOURCE if c.name != "chip_key")


def load_user_benchmarks(
    kind: str, path: str | os.PathLike, *, chips: Any = "default"
) -> pd.DataFrame:
    """Load a benchmark CSV of ``kind`` whose provenance columns are optional.

    Like :func:`load_benchmarks`, except that the columns of
    :data:`PROVENANCE_COLUMNS`, ``derivation`` and ``weight`` may be missing or blank:
    a blank ``group`` is the file name's stem (``mine.csv`` -> ``mine``), a blank
    ``row_id`` is ``<stem>:<row>`` (the 1-based data row), a blank
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
    schema = tuple(
        dataclasses.replace(col, required=False, present=False)
        if col.name in optional
        else col
        for col in _SCHEMAS[kind]
    )
    names = {col.name for col in schema}
    p = Path(path)
    df = load_csv(p, schema, chips=chips)
    stem = p.stem
    for name in optional:
        if name in names and name not in df.columns:
            df[name] = pd.Series([None] * len(df), index=df.index, dtype=object)
    if "weight" in names:
        df["weight"] = pd.to_numeric(df["weight"], errors="coerce").fillna(1.0)
    df["group"] = [stem if is_blank(g) else g for g in df["group"]]
    df["row_id"] = [
        f"{stem}:{i + 1}" if is_blank(r) else r for i, r in enumerate(df["row_id"])
    ]
    return add_si_columns(df, kind, file=str(p))


def concat_benchmarks(parts: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One frame of the validated frames ``(file, frame)`` of one benchmark kind, in
    order; a column missing from a file is blank in its rows.

    Raises:
      DataError: a ``row_id`` used twice; the message names both files and rows.
    """
    first: dict[str, tuple[str, pd.DataFrame, int]] = {}
    problems: list[Problem] = []
    for file, df in parts:
        for i, rid in enumerate(df["row_id"]):
            if is_blank(rid):
                continue
            if rid in first:
                other, odf, j = first[rid]
                there = location(None if other == file else other, **row_place(odf, j))
                problems.append(
                    Problem(
                        file,
                        column="row_id",
                        message=f"row_id '{rid}' also at {there}; expected row ids "
                        "unique across the files of a kind (rename one)",
                        **row_place(df, i),
                    )
                )
            else:
                first[rid] = (file, df, i)
    raise_problems(problems)
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
    (:func:`jaxcost.io.runs.read_runs`, a measured value required), as the frame
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
    (:func:`jaxcost.io.runs.read_runs`), ready for ``runs_to_arrays``.

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
    problems: list[Problem],
    *,
    rtol: float = 1e-6,
) -> None:
    """Fill ``df[si]`` from ``quoted`` (already converted); a problem for every row
    where both are given and disagree."""
    if si not in df.columns:
        df[si] = quoted.astype(float)
        return
    cur = df[si].astype(float)
    both = cur.notna() & quoted.notna()
    bad = both & ((cur - quoted).abs() > rtol * quoted.abs())
    for i in np.flatnonzero(bad.to_numpy()):
        problems.append(
            Problem(
                file,
                column=si,
                message=f"value {cur.iloc[i]:g} disagrees with the quoted column "
                f"({quoted.iloc[i]:g} after unit conversion); expected equal values",
                **row_place(df, int(i)),
            )
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
    problems: list[Problem] = []
    if kind == "training_runs":
        _fill_si(
            df,
            "flop_per_s_per_chip",
            column_or_nan(df, "tflops_per_chip") * units.TERA,
            file,
            problems,
        )
        _fill_si(
            df,
            "mfu_peak_flop_per_s",
            column_or_nan(df, "mfu_peak_tflops") * units.TERA,
            file,
            problems,
        )
    elif kind == "collectives":
        _fill_si(
            df, "time_s", column_or_nan(df, "time_us") * units.MICRO, file, problems
        )
        _fill_si(
            df,
            "algbw_bytes_per_s",
            column_or_nan(df, "algbw_GBps") * units.GIGA,
            file,
            problems,
        )
        _fill_si(
            df,
            "busbw_bytes_per_s",
            column_or_nan(df, "busbw_GBps") * units.GIGA,
            file,
            problems,
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
            problems,
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
        _fill_si(df, "flop_per_s", flop, file, problems)
        _fill_si(df, "bytes_per_s", bw, file, problems)
        _fill_si(df, "time_s", t, file, problems)
        _fill_si(df, "spec_flop_per_s", spec_flop, file, problems)
        _fill_si(df, "spec_bytes_per_s", spec_bw, file, problems)
    else:
        raise DataError(
            f"unknown benchmark kind '{kind}'; expected one of "
            f"{', '.join(BENCHMARK_KINDS)}"
        )
    raise_problems(problems)
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


#: Recompute code (``parallel.Recompute`` value) and cheap-module flag of each
#: normalised recompute text (:func:`jaxcost.io.notation.parse_recompute`).
_RECOMPUTE_MODES = {
    "none": (0, False),
    "modules": (0, True),
    "selective": (1, False),
    "selective+modules": (1, True),
    "full": (2, False),
}


def recompute_setting(text: Any) -> tuple[int, bool]:
    """The recompute code (``parallel.Recompute`` value) and the plan's
    ``recompute_lite`` of a ``recompute`` text, in any form
    :func:`jaxcost.io.notation.parse_recompute` reads (blank: none). Module lists of
    norms and activation functions only are code 0 with ``recompute_lite``; the whole
    MoE block is full; other selective recompute is the attention core (Korthikanti).

    Raises:
      DataError: not a recompute mode.
    """
    if is_blank(text):
        return 0, False
    return _RECOMPUTE_MODES[notation.parse_recompute(text)]


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
