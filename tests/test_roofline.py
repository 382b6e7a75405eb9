"""Tests of roofline: golden cases, bounds, smooth max, transforms, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import make_chip
from jax.test_util import check_grads

from jaxcost.model.params import default_params, physical
from jaxcost.model.roofline import (
    arithmetic_intensity,
    compute_time,
    memory_time,
    op_time,
    peak_flop_per_s,
    ridge_point,
    roofline_lower,
    roofline_upper,
    smooth_max,
)


def ideal_pp(p=64.0):
    """Physical parameters in the ideal limit: efficiencies 1, no half sizes."""
    pp = physical(default_params(), make_chip())
    return pp.replace(mm_eff_max=1.0, attn_eff_max=1.0, hbm_eff_max=1.0,
                      mm_half_flop=0.0, attn_half_flop=0.0, hbm_half_bytes=0.0,
                      roofline_sharpness=p)


def test_ridge_point_golden():
    # scaling book, TPU v5e: 1.97e14 FLOP/s / 8.1e11 B/s ≈ 240 FLOP/byte
    chip = make_chip(peak_flop_per_s_bf16=1.97e14, hbm_bytes_per_s=8.1e11)
    np.testing.assert_allclose(ridge_point(chip), 1.97e14 / 8.1e11, rtol=1e-12)
    np.testing.assert_allclose(ridge_point(chip), 240.0, rtol=0.02)  # book rounds


def test_matmul_intensity_about_batch():
    # B x D @ D x F in bf16: intensity ≈ B when B << D, F (scaling book)
    B, D, F = 64.0, 8192.0, 32768.0
    flop = 2 * B * D * F
    nbytes = 2 * (B * D + D * F + B * F)
    np.testing.assert_allclose(arithmetic_intensity(flop, nbytes), B, rtol=0.02)


def test_compute_memory_time_and_bounds():
    tc = compute_time(4e12, 2e14, 0.5)
    tm = memory_time(1e9, 1e12, 0.8)
    np.testing.assert_allclose(tc, 0.04, rtol=1e-12)
    np.testing.assert_allclose(tm, 1.25e-3, rtol=1e-12)
    assert roofline_lower(tc, tm) == tc
    np.testing.assert_allclose(roofline_upper(tc, tm), 0.04125, rtol=1e-12)


@pytest.mark.parametrize("a,b", [(1.0, 2.0), (3.0, 3.0), (0.0, 5.0), (1e-9, 1e3)])
def test_smooth_max_between_bounds_and_limits(a, b):
    for p in (1.0, 2.0, 4.0, 16.0):
        s = smooth_max(a, b, p)
        assert (
            roofline_lower(a, b) * (1 - 1e-12)
            <= s
            <= roofline_upper(a, b) * (1 + 1e-12)
        )
    np.testing.assert_allclose(smooth_max(a, b, 1.0), a + b, rtol=1e-12)
    # tends to max: (2)^(1/p) bound at a == b
    np.testing.assert_allclose(smooth_max(a, b, 2000.0), max(a, b), rtol=1e-3)


def test_smooth_max_gradients_finite_at_kink_and_zero():
    sm = jax.jit(smooth_max)
    check_grads(sm, (1.0, 1.0, 4.0), order=1, modes=["rev"])
    check_grads(sm, (0.3, 2.0, 1.5), order=1, modes=["rev"])
    grad = jax.jit(jax.grad(smooth_max, argnums=(0, 1, 2)))
    for args in ((0.0, 0.0, 4.0), (0.0, 2.0, 4.0)):
        assert all(np.isfinite(x) for x in grad(*args))
    # symmetric at the kink
    ga, gb, _ = grad(2.0, 2.0, 4.0)
    np.testing.assert_allclose(ga, gb, rtol=1e-12)


def test_op_time_ideal_limit_is_pnorm_of_roofline_times():
    chip = make_chip()
    pp = ideal_pp(p=64.0)
    flop = jnp.array([2e12, 1e9, 5e6])
    nbytes = jnp.array([1e9, 4e9, 2e8])
    kind = jnp.array([0, 1, 2])
    t = op_time(pp, chip, flop, nbytes, kind)
    lo = roofline_lower(flop / 200e12, nbytes / 1e12)
    np.testing.assert_allclose(t, smooth_max(flop / 200e12, nbytes / 1e12, 64.0),
                               rtol=1e-12)
    assert np.all(t >= lo * (1 - 1e-12))
    assert np.all(t <= lo * 2 ** (1 / 64) * (1 + 1e-12))


def test_op_time_never_below_ideal_with_default_params():
    chip = make_chip()
    pp = physical(default_params(), chip)
    flop = jnp.geomspace(1e3, 1e15, 25)
    nbytes = jnp.geomspace(1e9, 1e3, 25)
    op = jax.jit(op_time, static_argnames="precision")
    for k in (0, 1, 2):
        t = op(pp, chip, flop, nbytes, jnp.full((25,), k))
        assert np.all(t >= roofline_lower(flop / 200e12, nbytes / 1e12))
        assert np.all(np.isfinite(t))
    # zero-sized op costs nothing
    assert op_time(pp, chip, 0.0, 0.0, 0) == 0.0


def test_fp8_uses_fp8_peak_with_fallback():
    c0 = make_chip()
    c8 = make_chip(peak_flop_per_s_fp8=400e12)
    assert peak_flop_per_s(c0, precision="fp8") == 200e12
    assert peak_flop_per_s(c8, precision="fp8") == 400e12
    pp = physical(default_params(), c8)
    t16 = op_time(pp, c8, 1e13, 1e6, 0)
    t8 = op_time(pp, c8, 1e13, 1e6, 0, precision="fp8")
    assert t8 < t16
    with pytest.raises(ValueError, match="precision"):
        peak_flop_per_s(c0, precision="fp16")


def test_op_time_monotone_and_grads_at_kink_and_curve_points():
    chip = make_chip()
    pp = physical(default_params(), chip)

    @jax.jit
    def f(log_flop, log_bytes, log_peak, log_bw):
        c = chip.replace(peak_flop_per_s_bf16=200e12 * jnp.exp(log_peak),
                         hbm_bytes_per_s=1e12 * jnp.exp(log_bw))
        return op_time(pp, c, jnp.exp(log_flop), jnp.exp(log_bytes), 0)

    # choose bytes so that compute and memory times are equal (the kink)
    flop = 1e11
    t_c = (flop + pp.mm_half_flop) / (200e12 * pp.mm_eff_max)
    nbytes = float(t_c * 1e12 * pp.hbm_eff_max)
    args = (np.log(flop), np.log(nbytes), 0.0, 0.0)
    check_grads(f, args, order=1, modes=["rev"])
    # at the matmul half-saturation size
    check_grads(f, (float(np.log(pp.mm_half_flop)), np.log(1e6), 0.0, 0.0), order=1,
                modes=["rev"])
    g = jax.grad(f, argnums=(2, 3))(*args)
    assert g[0] <= 0 and g[1] <= 0  # more FLOP/s or bandwidth never slower


def test_jit_and_vmap_equal_eager():
    chip = make_chip()
    pp = physical(default_params(), chip)
    flop = jnp.geomspace(1e6, 1e13, 7)
    nbytes = jnp.geomspace(1e4, 1e9, 7)
    kind = jnp.array([0, 1, 2, 0, 1, 2, 0])
    flop, nbytes, kind = flop[:3], nbytes[:3], kind[:3]
    eager = op_time(pp, chip, flop, nbytes, kind)
    jitted = jax.jit(op_time, static_argnames="precision")(pp, chip, flop, nbytes, kind)
    vm = jax.vmap(lambda f, b, k: op_time(pp, chip, f, b, k))(flop, nbytes, kind)
    loop = jnp.stack([op_time(pp, chip, flop[i], nbytes[i], kind[i]) for i in range(3)])
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)
    np.testing.assert_allclose(vm, loop, rtol=1e-12)
