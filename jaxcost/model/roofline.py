"""Time of one operation on one chip: compute time, memory time and their bounds.

    T_compute = F / (C * e_c(F)),   T_memory = Bytes / (W_hbm * e_m(Bytes))
    roofline_lower = max(T_compute, T_memory)       (scaling-book lower bound)
    roofline_upper = T_compute + T_memory           (no overlap at all)
    op_time        = smooth_max(T_compute, T_memory, p)   with fitted p in [1, inf)

Efficiencies are smooth saturating curves of the op's size, never step tables:
``e(x) = e_max * x / (x + x_half)``. Note that ``x / (C e(x)) = (x + x_half) / (C e_max)``:
the curve is a fixed cost plus a throughput term, which is how it is evaluated (finite
at x = 0).

Symbols: F FLOP of the op, C peak FLOP/s, W_hbm HBM bytes/s, e efficiency (0-1).
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from jaxcost.model.hardware import ChipSpec, Precision
from jaxcost.model.params import PhysicalParams
from jaxcost.model.types import ArrayLike

_TINY = 1e-30


class OpKind(enum.IntEnum):
    """Kinds of operations in ``LayerOps.kind``."""

    MATMUL = 0
    ATTENTION = 1
    ELEMENTWISE = 2


def compute_time(flop: ArrayLike, peak_flop_per_s: ArrayLike,
                 efficiency: ArrayLike = 1.0) -> jax.Array:
    """Compute time F / (C * e), in s."""
    return jnp.asarray(flop) / jnp.maximum(jnp.asarray(peak_flop_per_s) *
                                           jnp.asarray(efficiency), _TINY)


def memory_time(num_bytes: ArrayLike, bytes_per_s: ArrayLike,
                efficiency: ArrayLike = 1.0) -> jax.Array:
    """Memory time Bytes / (W * e), in s."""
    return jnp.asarray(num_bytes) / jnp.maximum(jnp.asarray(bytes_per_s) *
                                                jnp.asarray(efficiency), _TINY)


def arithmetic_intensity(flop: ArrayLike, num_bytes: ArrayLike) -> jax.Array:
    """FLOP per byte moved."""
    return jnp.asarray(flop) / jnp.maximum(jnp.asarray(num_bytes), _TINY)


def ridge_point(chip: ChipSpec, *, precision: str = "bf16") -> jax.Array:
    """Arithmetic intensity at which compute and memory time are equal, C / W_hbm (FLOP/byte)."""
    return peak_flop_per_s(chip, precision=precision) / chip.hbm_bytes_per_s


def roofline_lower(t_compute: ArrayLike, t_memory: ArrayLike) -> jax.Array:
    """Lower bound: perfect overlap, max(T_compute, T_memory), s."""
    return jnp.maximum(t_compute, t_memory)


def roofline_upper(t_compute: ArrayLike, t_memory: ArrayLike) -> jax.Array:
    """Upper bound: no overlap, T_compute + T_memory, s."""
    return jnp.asarray(t_compute) + jnp.asarray(t_memory)


def smooth_max(a: ArrayLike, b: ArrayLike, sharpness: ArrayLike) -> jax.Array:
    """p-norm (a^p + b^p)^(1/p) of non-negative a, b; p = ``sharpness`` >= 1.

    Equals a + b at p = 1 and tends to max(a, b) as p -> inf; always between the two
    bounds. Evaluated as m * ((a/m)^p + (b/m)^p)^(1/p) with m = max(a, b) (exact by
    homogeneity, so the gradient is finite at a == b and the same from either side);
    0 at a = b = 0 with finite gradient.
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    p = jnp.asarray(sharpness)
    m = jnp.maximum(jnp.maximum(a, b), _TINY)
    base = _safe_pow(a / m, p) + _safe_pow(b / m, p)
    # the ratios lie in [0, 1] and one of them is 1 unless a = b = 0: base in [1, 2].
    pos = base > 0
    return jnp.where(pos, m * jnp.where(pos, base, 1.0) ** (1.0 / p), 0.0)


def _safe_pow(r: jax.Array, p: jax.Array) -> jax.Array:
    """r ** p for r >= 0 with finite gradients at r = 0 (double where)."""
    pos = r > 0
    return jnp.where(pos, jnp.where(pos, r, 1.0) ** p, 0.0)


def peak_flop_per_s(chip: ChipSpec, *, precision: Precision | str = Precision.BF16
                    ) -> jax.Array:
    """Dense peak FLOP/s at ``precision`` (FP8 falls back to BF16 where it is 0).

    Raises:
      ValueError: ``precision`` is not a :class:`Precision` (or its text).
    """
    if precision == Precision.BF16:
        return jnp.asarray(chip.peak_flop_per_s_bf16)
    if precision == Precision.FP8:
        fp8 = jnp.asarray(chip.peak_flop_per_s_fp8)
        return jnp.where(fp8 > 0, fp8, chip.peak_flop_per_s_bf16)
    raise ValueError(f"precision must be 'bf16' or 'fp8', got {precision!r}")


def op_time(pp: PhysicalParams, chip: ChipSpec, flop: ArrayLike, num_bytes: ArrayLike,
            kind: ArrayLike, *, precision: str = "bf16") -> jax.Array:
    """Time of one op on one chip, s (elementwise over arrays of ops).

    Each op has one size-dependent efficiency curve, on its primary resource: FLOP for
    matmuls (kind 0) and the attention core (kind 1), bytes for memory-bound ops
    (kind 2); the other resource runs at its plateau efficiency:
      kinds 0, 1: T_c = (F + F_half) / (C e_max),  T_m = B / (W e_hbm)
      kind 2:     T_c = F / (C e_mm),             T_m = (B + B_half) / (W e_hbm)
    (a zero F or B costs 0), and the op time is smooth_max(T_c, T_m, p). With e <= 1
    the result is never below the ideal roofline max(F/C, B/W).

    Args:
      pp: physical parameters of the chip.
      chip: the chip.
      flop: FLOP of the op, any shape.
      num_bytes: bytes moved to/from HBM, same shape.
      kind: :class:`OpKind` codes, same shape.
      precision: "bf16" or "fp8" (static).

    Returns:
      seconds, same shape. Never below ``roofline_lower`` of the ideal (e = 1) times.
    """
    flop = jnp.asarray(flop)
    num_bytes = jnp.asarray(num_bytes)
    kind = jnp.asarray(kind)
    peak = peak_flop_per_s(chip, precision=precision)
    is_attn = kind == OpKind.ATTENTION
    is_mem = kind == OpKind.ELEMENTWISE
    e_max = jnp.where(is_attn, pp.attn_eff_max, pp.mm_eff_max)
    half_c = jnp.where(is_mem, 0.0, jnp.where(is_attn, pp.attn_half_flop,
                                               pp.mm_half_flop))
    half_m = jnp.where(is_mem, pp.hbm_half_bytes, 0.0)
    t_c = jnp.where(flop > 0, (flop + half_c) / (peak * e_max), 0.0)
    t_m = jnp.where(num_bytes > 0,
                    (num_bytes + half_m) / (chip.hbm_bytes_per_s * pp.hbm_eff_max),
                    0.0)
    return smooth_max(t_c, t_m, pp.roofline_sharpness)
