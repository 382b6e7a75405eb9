"""Dtype-aware numerical guards: finite values and gradients in float32 and float64.

The cost formulas run in whatever precision JAX is in (no global flag is needed).
A fixed guard such as ``1e-30`` is safe in float64 but not in float32: its square
(1e-60) underflows to 0 and its inverse square overflows, so the backward pass of
``x / max(y, 1e-30)`` at y = 0 gives ``0 * inf = NaN``. The helpers here take the
guard from the dtype, and use the "double where" (optax's ``safe_norm`` idea) so that a
branch that is not taken never reaches the gradient.

In float64 they give the same values and gradients as the fixed guards they replace
for every input above the old guard: bit for bit op by op (see
``tests/test_precision.py``); under ``jit`` XLA may fuse the changed graph
differently, which moves a result by an ulp or so (1e-16 relative).

Symbols: x, y arrays of any floating dtype; p an exponent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.model.types import ArrayLike

__all__ = ["tiny_like", "clamp_tiny", "safe_pow", "pow2_scale"]


def _float_dtype(x: ArrayLike) -> np.dtype:
    """The floating dtype x computes in (the default float for integer x)."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return np.dtype(dtype)


def tiny_like(x: ArrayLike) -> jax.Array:
    """Guard for divisions and logarithms in x's dtype: sqrt(finfo(dtype).tiny).

    About 1.1e-19 in float32 and 1.5e-154 in float64. Its square is the smallest
    normal number, so a derivative such as ``-x / y**2`` evaluated at the guard
    neither underflows to 0 / 0 nor overflows for x = O(1); ``log`` of it is finite.

    Args:
      x: any array or scalar; only its dtype is used.

    Returns:
      a 0-d array of x's floating dtype.
    """
    dtype = _float_dtype(x)
    return jnp.asarray(np.sqrt(np.finfo(dtype).tiny), dtype=dtype)


def clamp_tiny(y: ArrayLike) -> jax.Array:
    """max(y, tiny_like(y)), with a gradient that is exactly 0 below the guard.

    Written as ``where`` rather than ``maximum``: the cotangent of the guarded branch
    is selected away, not multiplied by 0, so an infinite cotangent (x / guard**2
    in float32) cannot turn into NaN.
    """
    y = jnp.asarray(y)
    t = tiny_like(y)
    return jnp.where(y > t, y, t)


def safe_pow(r: ArrayLike, p: ArrayLike) -> jax.Array:
    """r ** p for r > 0 and 0 for r <= 0, with finite gradients at r = 0 (double where).

    Args:
      r: base, any shape (values <= 0 give 0).
      p: exponent > 0, broadcastable to r.
    """
    r = jnp.asarray(r)
    pos = r > 0
    return jnp.where(pos, jnp.where(pos, r, 1.0) ** p, 0.0)


def pow2_scale(x: ArrayLike) -> jax.Array:
    """Power of two s with |x| s in [0.5, 1) (s = 1 at x = 0); no gradient.

    Multiplying by s is exact in floating point, so ``f(x s) / s`` of a homogeneous
    formula gives the values and gradients of ``f(x)`` bit for bit, while its
    intermediates (ratios, their squares) stay O(1): used where a formula divides by
    its own scale, which in float32 under/overflows for scales far from 1.
    """
    x = jax.lax.stop_gradient(jnp.asarray(x))
    fi = np.finfo(_float_dtype(x))
    _, e = jnp.frexp(x)
    # keep s a normal number (|x| near the ends of the range only)
    e = jnp.clip(e, fi.minexp + 1, fi.maxexp - 2)
    return jnp.ldexp(jnp.ones_like(x), -e)
