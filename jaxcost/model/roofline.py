"""Time of one operation on one chip: compute time, memory time and their bounds.

    T_compute = F / (C * e_c(F)),   T_memory = Bytes / (W_hbm * e_m(Bytes))
    roofline_lower = max(T_compute, T_memory)       (scaling-book lower bound)
    roofline_upper = T_compute + T_memory           (no overlap at all)
    op_time        = smooth_max(T_compute, T_memory, p)   with fitted p in [1, inf)

Efficiencies are smooth saturating curves of the op's size, never step tables:
``e(x) = e_max * x / (x + x_half)``. Note that
``x / (C e(x)) = (x + x_half) / (C e_max)``:
the curve is a fixed cost plus a throughput term, which is how it is evaluated (finite
at x = 0).

Symbols: F FLOP of the op, C peak FLOP/s, W_hbm HBM bytes/s, e efficiency (0-1).
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from jaxcost.model.hardware import ChipSpec, Precision
from jaxcost.model.numerics import clamp_tiny, pow2_scale, safe_pow
from jaxcost.model.params import PhysicalParams
from jaxcost.model.types import ArrayLike

__all__ = [
    "OpKind",
    "compute_time",
    "memory_time",
    "arithmetic_intensity",
    "ridge_point",
    "roofline_lower",
    "roofline_upper",
    "smooth_max",
    "peak_flop_per_s",
    "op_time",
]


class OpKind(enum.IntEnum):
    """Kinds of operations in ``LayerOps.kind``."""

    MATMUL = 0
    ATTENTION = 1
    ELEMENTWISE = 2


def compute_time(flop: ArrayLike, peak_flop_per_s: ArrayLike,
                 efficiency: ArrayLike = 1.0) -> jax.Array:
    """Compute time F / (C * e), in s (C * e floored at ``tiny_like``)."""
    return jnp.asarray(flop) / clamp_tiny(jnp.asarray(peak_flop_per_s) *
                                          jnp.asarray(efficiency))


def memory_time(num_bytes: ArrayLike, bytes_per_s: ArrayLike,
                efficiency: ArrayLike = 1.0) -> jax.Array:
    """Memory time Bytes / (W * e), in s (W * e floored at ``tiny_like``)."""
    return jnp.asarray(num_bytes) / clamp_tiny(jnp.asarray(bytes_per_s) *
                                               jnp.asarray(efficiency))


def arithmetic_intensity(flop: ArrayLike, num_bytes: ArrayLike) -> jax.Array:
    """FLOP per byte moved."""
    return jnp.asarray(flop) / clamp_tiny(num_bytes)


def ridge_point(chip: ChipSpec, *, precision: str = "bf16") -> jax.Array:
    """Arithmetic intensity at which compute and memory time are equal, C / W_hbm
    (FLOP/byte)."""
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
    0 at a = b = 0 with finite gradient (0). a and b are first scaled by the power of
    two that brings m into [0.5, 1) (exact), so that m**2 in the backward pass neither
    underflows nor overflows in float32 at any scale.
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    p = jnp.asarray(sharpness)
    s = pow2_scale(jnp.maximum(a, b))
    a, b = a * s, b * s
    m_ab = jnp.maximum(a, b)
    nonzero = m_ab > 0
    m = jnp.where(nonzero, m_ab, 1.0)  # double where: a = b = 0 never divides by 0
    base = safe_pow(a / m, p) + safe_pow(b / m, p)
    # the ratios lie in [0, 1] and one of them is 1 unless a = b = 0: base in [1, 2].
    pos = base > 0
    return jnp.where(pos, m * jnp.where(pos, base, 1.0) ** (1.0 / p), 0.0) / s


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


def op_time(phys: PhysicalParams, chip: ChipSpec, flop: ArrayLike, num_bytes: ArrayLike,
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
      phys: physical parameters of the chip.
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
    e_max = jnp.where(is_attn, phys.attn_eff_max, phys.mm_eff_max)
    half_c = jnp.where(is_mem, 0.0, jnp.where(is_attn, phys.attn_half_flop,
                                               phys.mm_half_flop))
    half_m = jnp.where(is_mem, phys.hbm_half_bytes, 0.0)
    t_c = jnp.where(flop > 0, (flop + half_c) / (peak * e_max), 0.0)
    t_m = jnp.where(num_bytes > 0,
                    (num_bytes + half_m) / (chip.hbm_bytes_per_s * phys.hbm_eff_max),
                    0.0)
    return smooth_max(t_c, t_m, phys.roofline_sharpness)
