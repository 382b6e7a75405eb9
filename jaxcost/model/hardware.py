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

import csv
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

from jaxcost.errors import DataError, PlanError, UnknownChipError
from jaxcost.io.paths import data_dir

__all__ = [
    "Precision",
    "ChipSpec",
    "ClusterSpec",
    "stack_chips",
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
        row: int = 0,
    ) -> ChipSpec:
        """Build and validate one chip from a CSV row; see :func:`_chip_from_row`."""
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
#: CSV column -> ChipSpec field for the numeric leaves. Units are SI (see
#: ``data/README.md``); ``required`` columns must be non-empty and > 0, the others may
#: be empty (unknown, NaN) and must be >= 0 when given.
_NUMERIC_COLUMNS: dict[str, bool] = {
    "peak_flop_per_s_bf16": True,
    "peak_flop_per_s_fp8": False,
    "peak_op_per_s_int8": False,
    "peak_flop_per_s_fp32": False,
    "peak_flop_per_s_fp64": False,
    "peak_flop_per_s_fp4": False,
    "hbm_capacity_bytes": True,
    "hbm_bytes_per_s": True,
    "scaleup_bytes_per_s": False,
    "scaleup_domain_size": True,
    "scaleout_bytes_per_s": False,
    "io_bidir_bytes_per_s": False,
    "die_area_m2": False,
    "tdp_w": False,
    "price_usd": False,
    "year": True,
}
_TEXT_COLUMNS = ("name", "key", "vendor", "family", "datacenter", "source")
#: Columns every chips CSV must have.
CHIP_REQUIRED_COLUMNS: tuple[str, ...] = _TEXT_COLUMNS + tuple(_NUMERIC_COLUMNS)
_POSITIVE_IF_GIVEN = ("die_area_m2",)


def _parse_bool(text: str, *, file: str, row: int, column: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise DataError(
        f"expected True or False, got {text!r}", file=file, row=row, column=column
    )


def _parse_number(
    text: str, *, file: str, row: int, column: str, required: bool
) -> float:
    raw = "" if text is None else str(text).strip()
    if raw == "":
        if required:
            raise DataError(
                "expected a positive number, got an empty cell",
                file=file,
                row=row,
                column=column,
            )
        return math.nan
    try:
        value = float(raw)
    except ValueError:
        raise DataError(
            f"expected a number in SI units, got {raw!r}",
            file=file,
            row=row,
            column=column,
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"expected a finite number, got {raw!r}", file=file, row=row, column=column
        )
    if required and value <= 0:
        raise DataError(
            f"expected a positive number, got {raw}", file=file, row=row, column=column
        )
    if column in _POSITIVE_IF_GIVEN and value <= 0:
        raise DataError(
            f"expected a positive number or an empty cell, got {raw}",
            file=file,
            row=row,
            column=column,
        )
    if value < 0:
        raise DataError(
            f"expected a non-negative number, got {raw}",
            file=file,
            row=row,
            column=column,
        )
    return value


def _chip_from_row(
    cls, mapping: Mapping[str, str], *, file: str | os.PathLike = "<row>", row: int = 0
) -> ChipSpec:
    """Build and validate one ``ChipSpec`` from a CSV row (strings, SI units).

    Args:
      mapping: column name -> cell text, as read by ``csv.DictReader``; the columns
        are those of ``data/chips.csv`` (extra columns are ignored).
      file: file name used in error messages.
      row: line number in the file (the header is line 1), used in error messages.

    Returns:
      the chip, with NaN for unknown optional values.

    Raises:
      DataError: a required column is missing or empty, a cell is not a number, or a
        value is out of range; the message names the file, row and column.
    """
    file = str(file)
    for column in CHIP_REQUIRED_COLUMNS:
        if column not in mapping:
            raise DataError(
                "missing required column", file=file, row=row, column=column
            )
    for column in _TEXT_COLUMNS:
        if column == "datacenter":
            continue
        if not str(mapping[column] or "").strip():
            raise DataError(
                "expected a non-empty value", file=file, row=row, column=column
            )
    values = {
        column: _parse_number(
            mapping[column], file=file, row=row, column=column, required=required
        )
        for column, required in _NUMERIC_COLUMNS.items()
    }
    return cls(
        name=mapping["name"].strip(),
        key=mapping["key"].strip(),
        vendor=mapping["vendor"].strip(),
        family=mapping["family"].strip(),
        datacenter=_parse_bool(
            mapping["datacenter"] or "", file=file, row=row, column="datacenter"
        ),
        memory_type=str(mapping.get("memory_type", "") or "").strip(),
        **values,
    )


def load_chips(path: str | os.PathLike | None = None) -> dict[str, ChipSpec]:
    """Load a chips CSV into ``{key: ChipSpec}``, in file order.

    Args:
      path: a CSV with the columns of ``data/chips.csv``; default the shipped file.

    Raises:
      DataError: unreadable file, missing column, bad cell, duplicate key or name.
    """
    path = Path(path) if path is not None else data_dir() / "chips.csv"
    file = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for column in CHIP_REQUIRED_COLUMNS:
                if column not in header:
                    raise DataError(
                        "missing required column", file=file, row=1, column=column
                    )
            chips: dict[str, ChipSpec] = {}
            names: dict[str, int] = {}
            for line, mapping in enumerate(reader, start=2):
                if None in mapping:
                    raise DataError(
                        f"expected {len(header)} cells, got more", file=file, row=line
                    )
                chip = ChipSpec.from_row(mapping, file=file, row=line)
                if chip.key in chips:
                    raise DataError(
                        f"duplicate key {chip.key!r}", file=file, row=line, column="key"
                    )
                if chip.name.lower() in names:
                    raise DataError(
                        f"duplicate name {chip.name!r} (first on row "
                        f"{names[chip.name.lower()]})",
                        file=file,
                        row=line,
                        column="name",
                    )
                names[chip.name.lower()] = line
                chips[chip.key] = chip
    except OSError as err:
        raise DataError(f"cannot read chips file: {err.strerror}", file=file) from None
    except UnicodeDecodeError:
        raise DataError("expected a UTF-8 text CSV file", file=file) from None
    except csv.Error as err:  # e.g. a cell over the csv module's size limit
        raise DataError(f"malformed CSV: {err}", file=file) from None
    if not chips:
        raise DataError("expected at least one chip row", file=file)
    return chips


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
