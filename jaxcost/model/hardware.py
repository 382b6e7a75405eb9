"""Hardware records: what the chips are. No formulas live here.

``ChipSpec`` holds one accelerator's cited specifications in SI units (per chip; every
bandwidth is *per chip, per direction*). ``ClusterSpec`` says how many chips of which
types, and how they are connected. Both are ``flax.struct`` pytrees: every float a
model might differentiate or batch over is a leaf; names and flags are static.

A "batch of chips" is one ``ChipSpec`` whose leaves have shape ``(n,)``
(see :func:`stack_chips`).

Symbols: C = peak FLOP/s, W_hbm = HBM bytes/s, W_up = scale-up bytes/s per direction,
W_out = scale-out bytes/s per direction.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import PlanError, UnknownChipError
from jaxcost.io import schema
from jaxcost.io.paths import data_dir

__all__ = [
    "Precision",
    "ChipSpec",
    "ClusterSpec",
    "stack_chips",
    "CHIP_COLUMNS",
    "CHIP_REQUIRED_COLUMNS",
    "load_chips",
    "get_chip",
    "MAX_CHIP_COUNT",
    "check_chip_count",
]


class Precision(enum.StrEnum):
    """Number format of the linear layers' GEMMs: the peak a run is timed at.

    A ``StrEnum``: ``Precision.FP8 == "fp8"``, so the members pass wherever the text
    does. Attention, norms and the LM head run at the BF16 peak in either case.
    """

    BF16 = "bf16"
    FP8 = "fp8"


@struct.dataclass
class ChipSpec:
    """One accelerator, SI units, bandwidths per chip and per direction.

    Attributes:
      name: full name as in ``data/chips.csv`` (static).
      key: short normalised key, e.g. ``"H100-SXM"`` (static); benchmark rows use it.
      vendor: vendor name (static).
      family: architecture family used to pool fitted parameters, e.g. ``"hopper"``
        (static).
      datacenter: designed or marketed for datacenters (static; export rules use it).
      peak_flop_per_s_bf16: dense BF16/FP16 tensor throughput, FLOP/s.
      peak_flop_per_s_fp8: dense FP8 throughput, FLOP/s (0 where the format is absent
        in hardware, NaN where unknown; the same holds for every peak below).
      peak_op_per_s_int8: dense INT8 throughput, op/s.
      peak_flop_per_s_fp32: FP32 throughput (non-tensor unless stated), FLOP/s.
      peak_flop_per_s_fp64: FP64 throughput, FLOP/s.
      peak_flop_per_s_fp4: dense FP4 throughput, FLOP/s.
      hbm_capacity_bytes: device memory capacity, bytes.
      hbm_bytes_per_s: device memory bandwidth, bytes/s.
      scaleup_bytes_per_s: scale-up (NVLink / HCCS / ICI) bandwidth per chip per
        direction, bytes/s (0 where the chip has no scale-up fabric).
      scaleup_domain_size: chips in one scale-up domain (e.g. 8 for an HGX node).
      scaleout_bytes_per_s: scale-out NIC bandwidth per chip per direction, bytes/s.
      io_bidir_bytes_per_s: aggregate bidirectional I/O to non-memory ICs (the 2022
        rule's quantity), bytes/s.
      die_area_m2: applicable die area for performance density, m^2 (NaN if unknown).
      tdp_w: board power, W.
      price_usd: indicative unit price, USD (NaN if unknown).
      year: year of introduction.
      memory_type: device memory technology, e.g. ``"HBM3"`` (static; export rules
        use it). Defaults to ``""`` (unknown).
    """

    name: str = struct.field(pytree_node=False)
    key: str = struct.field(pytree_node=False)
    vendor: str = struct.field(pytree_node=False)
    family: str = struct.field(pytree_node=False)
    datacenter: bool = struct.field(pytree_node=False)
    peak_flop_per_s_bf16: jax.Array | float
    peak_flop_per_s_fp8: jax.Array | float
    peak_op_per_s_int8: jax.Array | float
    peak_flop_per_s_fp32: jax.Array | float
    peak_flop_per_s_fp64: jax.Array | float
    peak_flop_per_s_fp4: jax.Array | float
    hbm_capacity_bytes: jax.Array | float
    hbm_bytes_per_s: jax.Array | float
    scaleup_bytes_per_s: jax.Array | float
    scaleup_domain_size: jax.Array | float
    scaleout_bytes_per_s: jax.Array | float
    io_bidir_bytes_per_s: jax.Array | float
    die_area_m2: jax.Array | float
    tdp_w: jax.Array | float
    price_usd: jax.Array | float
    year: jax.Array | float
    memory_type: str = struct.field(pytree_node=False, default="")

    @classmethod
    def from_row(
        cls,
        mapping: Mapping[str, str],
        *,
        file: str | os.PathLike = "<row>",
        row: int = 1,
    ) -> ChipSpec:
        """Build and validate one chip from a CSV row (``row``: 1-based data row);
        see :func:`_chip_from_row`."""
        return _chip_from_row(cls, mapping, file=file, row=row)


@struct.dataclass
class ClusterSpec:
    """A homogeneous cluster: ``num_chips`` of one ``chip`` type.

    Heterogeneous clusters are lists of ``ClusterSpec`` groups (one per chip type) in
    ``step_time``; a group's chips share a scale-up domain of
    ``chip.scaleup_domain_size``.

    Attributes:
      chip: the chip type.
      num_chips: number of chips (a leaf, so that relaxed chip counts can be smooth).
    """

    chip: ChipSpec
    num_chips: jax.Array | float


def stack_chips(chips: list[ChipSpec]) -> ChipSpec:
    """Stack chips into one ``ChipSpec`` with leaves of shape ``(n,)``.

    Static fields of the result are taken from the first chip.
    """
    first = chips[0]
    static = {
        f.name: getattr(first, f.name)
        for f in dataclasses.fields(ChipSpec)
        if not f.metadata.get("pytree_node", True)
    }
    stacked = jax.tree.map(
        lambda *x: jnp.stack([jnp.asarray(v) for v in x]),
        *[c.replace(**static) for c in chips],
    )
    return stacked


# ------------------------------------------------------------------ loading from CSV

_SI = "in SI units"
_required = schema.number(positive=True, unit=_SI)
_optional = schema.number(nonnegative=True, unit=_SI)


def _text(name: str, doc: str) -> schema.Column:
    return schema.Column(name, schema.text, required=True, present=True, doc=doc)


def _peak(name: str, doc: str, *, required: bool = False) -> schema.Column:
    return schema.Column(
        name,
        _required if required else _optional,
        required=required,
        default=math.nan,
        present=True,
        doc=doc,
    )


#: The schema of ``data/chips.csv`` (see ``data/README.md``). Every column here must
#: be in the header; required ones must be filled (numbers > 0), the other numbers
#: may be blank (unknown: NaN) and are >= 0 when given. Other columns (sources,
#: notes, ...) are kept by the file and ignored here.
CHIP_COLUMNS: tuple[schema.Column, ...] = (
    _text("name", "full name, e.g. 'NVIDIA H100 SXM5 80GB'"),
    _text("key", "short key used by benchmark rows and scenarios, e.g. 'H100-SXM'"),
    _text("vendor", "vendor"),
    _text("family", "architecture family pooling fitted parameters, e.g. 'hopper'"),
    schema.Column(
        "datacenter",
        schema.boolean(),
        required=True,
        present=True,
        doc="designed or marketed for datacenters: True or False",
    ),
    _text("source", "where the numbers come from (URL, document)"),
    _peak("peak_flop_per_s_bf16", "dense BF16/FP16 tensor FLOP/s", required=True),
    _peak("peak_flop_per_s_fp8", "dense FP8 FLOP/s (0: no FP8 in hardware)"),
    _peak("peak_op_per_s_int8", "dense INT8 op/s"),
    _peak("peak_flop_per_s_fp32", "FP32 FLOP/s (non-tensor unless stated)"),
    _peak("peak_flop_per_s_fp64", "FP64 FLOP/s"),
    _peak("peak_flop_per_s_fp4", "dense FP4 FLOP/s (0: no FP4 in hardware)"),
    _peak("hbm_capacity_bytes", "device memory, bytes", required=True),
    _peak("hbm_bytes_per_s", "device memory bandwidth, bytes/s", required=True),
    _peak(
        "scaleup_bytes_per_s",
        "scale-up (NVLink / HCCS / ICI) bytes/s per chip per direction",
    ),
    _peak("scaleup_domain_size", "chips in one scale-up domain", required=True),
    _peak("scaleout_bytes_per_s", "scale-out NIC bytes/s per chip per direction"),
    _peak("io_bidir_bytes_per_s", "aggregate bidirectional I/O bytes/s (2022 rule)"),
    schema.Column(
        "die_area_m2",
        schema.number(positive=True, unit=_SI),
        default=math.nan,
        present=True,
        doc="applicable die area, m^2 (> 0; blank: unknown)",
    ),
    _peak("tdp_w", "board power, W"),
    _peak("price_usd", "indicative unit price, USD"),
    _peak("year", "year of introduction", required=True),
    schema.Column("memory_type", schema.text, default="", doc="e.g. 'HBM3'"),
)
#: The numeric columns of :data:`CHIP_COLUMNS` (the ``ChipSpec`` leaves).
_NUMERIC_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in CHIP_COLUMNS if isinstance(c.default, float)
)
#: Columns every chips CSV must have.
CHIP_REQUIRED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in CHIP_COLUMNS if c.present
)


def _chip(cls, v: Mapping[str, Any]) -> ChipSpec:
    """A ``ChipSpec`` of one validated row (column -> value)."""
    return cls(**{c.name: v[c.name] for c in CHIP_COLUMNS if c.name != "source"})


def _chip_from_row(
    cls, mapping: Mapping[str, str], *, file: str | os.PathLike = "<row>", row: int = 1
) -> ChipSpec:
    """Build and validate one ``ChipSpec`` from a CSV row (strings, SI units).

    Args:
      mapping: column name -> cell text, as read by ``csv.DictReader``; the columns
        are those of :data:`CHIP_COLUMNS` (extra columns are ignored).
      file: file name used in error messages.
      row: the 1-based data row (header excluded), used in error messages.

    Returns:
      the chip, with NaN for unknown optional values.

    Raises:
      DataError: a required column is missing or empty, a cell is not a number, or a
        value is out of range; the message names the file, row and column (every
        problem of the row in ``err.problems``).
    """
    file = str(file)
    missing = [
        schema.Problem(file, row, c.name, "missing required column")
        for c in CHIP_COLUMNS
        if c.present and c.name not in mapping
    ]
    schema.raise_problems(missing)
    values, problems = schema.validate_rows(
        [{k: ("" if v is None else v) for k, v in mapping.items()}],
        CHIP_COLUMNS,
        file=file,
    )
    schema.raise_problems(
        dataclasses.replace(p, row=row, line=None) for p in problems[0]
    )
    return _chip(cls, values[0])


def load_chips(path: str | os.PathLike | None = None) -> dict[str, ChipSpec]:
    """Load a chips CSV into ``{key: ChipSpec}``, in file order.

    Validated against :data:`CHIP_COLUMNS` by :func:`jaxcost.io.schema.read_table`;
    keys and (case-insensitively) names must be unique.

    Args:
      path: a CSV with the columns of ``data/chips.csv``; default the shipped file
        (resolved when called).

    Raises:
      DataError: unreadable file, missing column, bad cell, duplicate key or name, or
        no chip; the message is the first problem (file, row, column) and
        ``err.problems`` lists every problem of the file.
    """
    path = Path(path) if path is not None else data_dir() / "chips.csv"
    table = schema.read_table(
        path,
        CHIP_COLUMNS,
        unique=("key",),
        unique_folded=("name",),
        need_rows="expected at least one chip row",
    )
    schema.raise_problems(table.all_problems())
    return {v["key"]: _chip(ChipSpec, v) for v in table.values}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def get_chip(key_or_name: str, chips: Mapping[str, ChipSpec] | None = None) -> ChipSpec:
    """Find a chip by key or full name, case-insensitively.

    Matching tries, in order: exact key, key or name ignoring case, key or name
    ignoring case and punctuation (``"h100 sxm"`` finds ``"H100-SXM"``).

    Raises:
      UnknownChipError: no chip matches; the message lists close matches.
    """
    chips = load_chips() if chips is None else chips
    if key_or_name in chips:
        return chips[key_or_name]
    low = key_or_name.strip().lower()
    for chip in chips.values():
        if low in (chip.key.lower(), chip.name.lower()):
            return chip
    norm = _norm(key_or_name)
    found = [
        c for c in chips.values() if norm and norm in (_norm(c.key), _norm(c.name))
    ]
    if len(found) == 1:
        return found[0]
    candidates = {c.key.lower(): c.key for c in chips.values()}
    candidates.update({c.name.lower(): c.key for c in chips.values()})
    close = difflib.get_close_matches(low, list(candidates), n=5, cutoff=0.5)
    keys = list(dict.fromkeys(candidates[c] for c in close))
    hint = f"; close matches: {', '.join(keys)}" if keys else ""
    raise UnknownChipError(
        f"unknown chip {key_or_name!r}{hint} (known keys: {', '.join(chips)})"
    )


#: Largest chip count the public entry points accept (2^32, about 4e9: far above any
#: cluster, and small enough that plan enumeration over its divisors stays quick).
MAX_CHIP_COUNT = 2.0**32


def check_chip_count(value: Any, *, name: str = "num_chips") -> None:
    """Check a chip count given to a public entry point (outside jitted code).

    Args:
      value: a number or array of chip counts. Traced values (inside ``jit``,
        ``vmap`` or ``grad``) are not checked.
      name: the argument's name, for the message.

    Raises:
      PlanError: an element is not finite, below 1 or above :data:`MAX_CHIP_COUNT`.
    """
    try:
        a = np.asarray(value, dtype=float)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    except (TypeError, ValueError):
        raise PlanError(f"{name}={value!r}: expected a number of chips",
                        column=name) from None
    bad = ~(np.isfinite(a) & (a >= 1.0) & (a <= MAX_CHIP_COUNT))
    if bad.any():
        v = a.reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])]
        raise PlanError(f"{name}={float(v):g}: expected a finite number of chips in "
                        "[1, 2^32]", column=name)
