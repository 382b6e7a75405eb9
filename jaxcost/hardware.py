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

import jax
import jax.numpy as jnp
from flax import struct


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
      peak_flop_per_s_fp8: dense FP8 throughput, FLOP/s (0 where unsupported).
      peak_op_per_s_int8: dense INT8 throughput, op/s (0 where unsupported).
      peak_flop_per_s_fp32: FP32 throughput (non-tensor unless stated), FLOP/s.
      peak_flop_per_s_fp64: FP64 throughput, FLOP/s (0 where unknown).
      peak_flop_per_s_fp4: dense FP4 throughput, FLOP/s (0 where unsupported).
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


@struct.dataclass
class ClusterSpec:
    """A homogeneous cluster: ``num_chips`` of one ``chip`` type.

    Heterogeneous clusters are lists of ``ClusterSpec`` groups (one per chip type) in
    ``step_time``; a group's chips share a scale-up domain of ``chip.scaleup_domain_size``.

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
    stacked = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]),
                           *[c.replace(name=first.name, key=first.key,
                                       vendor=first.vendor, family=first.family,
                                       datacenter=first.datacenter) for c in chips])
    return stacked
