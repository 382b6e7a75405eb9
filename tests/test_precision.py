"""Precision: the cost model is correct in float32 and in float64, with no global flag.

``conftest.py`` turns x64 on for the whole suite; a float32 case runs inside
``jax.enable_x64(False)`` (thread-local, the global config is untouched) and builds
its inputs there, so that every leaf is float32 (each test asserts the dtype it got).

Tolerances: float32 against float64 step times ``rtol=1e-4``: float32 rounds at 6e-8
relative per operation and a step time chains a few hundred operations (sums of
per-op times, products of counts), so 1e-4 leaves a wide margin while catching any
lost term or guard (a guard that fires changes a result by orders of magnitude).
jit against eager in float32 ``rtol=1e-6``: XLA may fuse and reorder operations (a
few ulp). Helper identities in float64 are exact (``assert_array_equal``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcost as jc
from jaxcost.model.numerics import clamp_tiny, pow2_scale, safe_pow, tiny_like
from jaxcost.model.roofline import smooth_max
from jaxcost.policy.export_control import _soft_ge

#: float32 vs float64 results (see the module docstring)
F32_RTOL = 1e-4
#: jit vs eager, vmap vs loop in float32: a few ulp of reordering
JIT_RTOL = 1e-6

X64 = pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])


def _dtype(x64: bool):
    return jnp.float64 if x64 else jnp.float32


def _leaves_with_path(tree):
    return [(jax.tree_util.keystr(k), np.asarray(v))
            for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _readme_case():
    """The README example: Llama-2-70B on 256 H800, plan dp8-tp8-pp4 (call inside the
    precision context)."""
    cluster = jc.ClusterSpec(chip=jc.get_chip("H800-SXM"), num_chips=256.0)
    w = jc.get_model("llama2-70b")
    plan = jc.plan_from_str("dp8-tp8-pp4-cp1-ep1-vpp1-mbs1-z1-rsel")
    return jc.default_params(), cluster, w, plan


def _case(name: str):
    """(params, hardware, workload, plan) of a named case (inside the context)."""
    if name == "readme":
        return _readme_case()
    params = jc.default_params()
    if name == "gpt3_1024_a100":
        return (params, jc.ClusterSpec(chip=jc.get_chip("A100-SXM"), num_chips=1024.0),
                jc.get_model("gpt3-175b"),
                jc.plan_from_str("dp16-tp8-pp8-cp1-ep1-vpp1-mbs1-z1-rsel"))
    if name == "moe_mixtral_ep8":
        return (params, jc.ClusterSpec(chip=jc.get_chip("MI300X"), num_chips=64.0),
                jc.get_model("mixtral-8x7b").replace(global_batch_seqs=256.0),
                jc.plan_from_str("dp8-tp1-pp1-cp1-ep8-vpp1-mbs1-z1-rsel"))
    if name == "hetero_a100_h100_pipeline":
        w = jc.get_model("korthikanti-22b").replace(global_batch_seqs=64.0)
        plan = jc.ParallelPlan.create(dp=1, tp=8, pp=2)  # dp = 1: zero dp time
        clusters = (jc.ClusterSpec(chip=jc.get_chip("A100-SXM"), num_chips=16.0),
                    jc.ClusterSpec(chip=jc.get_chip("H100-SXM"), num_chips=16.0))
        return params, clusters, w, (plan, plan)
    raise KeyError(name)


# ------------------------------------------------------------ the README example


@X64
def test_readme_gradient_finite_for_every_leaf(x64):
    # every CostParams leaf and every chip-spec leaf. float32 used to give NaN for
    # scaleup_bw_eff and scaleout_bw_eff: smooth_max at a = b = 0 divided by a 1e-30
    # guard whose square underflows
    with jax.enable_x64(x64):
        params, cluster, w, plan = _readme_case()
        g_params, g_chip = jax.jit(jax.grad(
            lambda p, c: jc.predict_step_time(p, cluster.replace(chip=c), w,
                                              plan).total_s,
            argnums=(0, 1)))(params, cluster.chip)
    leaves = _leaves_with_path(g_params)
    assert len(leaves) == len(jax.tree.leaves(params))
    assert any(np.any(v != 0) for _, v in leaves)
    chip_leaves = _leaves_with_path(g_chip)
    assert len(chip_leaves) == len(jax.tree.leaves(cluster.chip))
    for name, v in leaves + chip_leaves:
        assert v.dtype == _dtype(x64), name
        assert np.all(np.isfinite(v)), f"d total_s / d {name} = {v}"
    d = dict(chip_leaves)
    # more FLOP/s, HBM or link bandwidth: not slower
    for k in (".peak_flop_per_s_bf16", ".hbm_bytes_per_s", ".scaleup_bytes_per_s",
              ".scaleout_bytes_per_s"):
        assert d[k] <= 0, (k, d[k])


@pytest.mark.parametrize("name", ["gpt3_1024_a100", "moe_mixtral_ep8",
                                  "hetero_a100_h100_pipeline"])
def test_step_time_float32_agrees_with_float64(name):
    out = {}
    for x64 in (False, True):
        with jax.enable_x64(x64):
            st = jc.predict_step_time(*_case(name))
        out[x64] = {k: np.asarray(v) for k, v in _leaves_with_path(st)}
        assert out[x64][".total_s"].dtype == _dtype(x64)
    total = float(out[True][".total_s"])
    for k, v64 in out[True].items():
        v32 = out[False][k]
        assert np.all(np.isfinite(v32)), k
        # time terms that are 0 in float64 (dp = 1) must be ~0, not a guard's 1e19
        atol = F32_RTOL * total if k.endswith("_s") else 0.0
        np.testing.assert_allclose(v32, v64, rtol=F32_RTOL, atol=atol, err_msg=k)


# ------------------------------------------------------------------- smooth max


@X64
@pytest.mark.parametrize("scale", [0.0, 1e-20, 1e-6, 1.0, 1e20])
def test_smooth_max_gradient_finite_at_any_scale(x64, scale):
    p = 8.0
    with jax.enable_x64(x64):
        dt = _dtype(x64)
        for ra, rb in ((1.0, 1.0), (1.0, 0.5), (0.0, 1.0)):
            a, b = jnp.asarray(ra * scale, dt), jnp.asarray(rb * scale, dt)
            v, g = jax.value_and_grad(smooth_max, argnums=(0, 1, 2))(a, b, dt(p))
            assert v.dtype == dt and all(x.dtype == dt for x in g)
            if scale == 0.0:
                # 0 at a = b = 0, with gradient 0 (the double where)
                assert float(v) == 0.0 and all(float(x) == 0.0 for x in g)
                continue
            # the p-norm's gradient depends only on the ratios:
            # d/da = (a/m)^(p-1) (base)^(1/p - 1), base = (a/m)^p + (b/m)^p
            m = max(ra, rb)
            base = (ra / m) ** p + (rb / m) ** p
            want = [(r / m) ** (p - 1) * base ** (1 / p - 1) for r in (ra, rb)]
            rtol = 1e-5 if not x64 else 1e-12  # float32: a few ulp of 6e-8
            np.testing.assert_allclose([float(g[0]), float(g[1])], want, rtol=rtol)
            np.testing.assert_allclose(float(v), scale * m * base ** (1 / p),
                                       rtol=rtol)
            assert np.isfinite(float(g[2]))


def _smooth_max_fixed_guard(a, b, p):
    """smooth_max as it was with the fixed 1e-30 guard (float64 reference)."""
    m = jnp.maximum(jnp.maximum(a, b), 1e-30)
    base = safe_pow(a / m, p) + safe_pow(b / m, p)
    pos = base > 0
    return jnp.where(pos, m * jnp.where(pos, base, 1.0) ** (1.0 / p), 0.0)


def test_smooth_max_float64_identical_to_fixed_guard():
    # the power-of-two rescaling is exact: values and gradients bit for bit (op by
    # op) for every input above the old guard, at p = 1, at the kink, at a = b = 0
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        grad_new = jax.value_and_grad(smooth_max, argnums=(0, 1, 2))
        grad_old = jax.value_and_grad(_smooth_max_fixed_guard, argnums=(0, 1, 2))
        for _ in range(30):
            s = 10.0 ** rng.uniform(-12, 12)
            a, b = s * rng.uniform(0, 2, 2) * (rng.uniform(size=2) > 0.15)
            b = a if rng.uniform() < 0.15 else b
            p = rng.choice([1.0, 2.0, 8.0, 64.0, rng.uniform(1, 100)])
            args = (jnp.float64(a), jnp.float64(b), jnp.float64(p))
            new, old = grad_new(*args), grad_old(*args)
            for x, y in zip(jax.tree.leaves(new), jax.tree.leaves(old), strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------- the other guards


@X64
def test_guards_take_their_value_from_the_dtype(x64):
    with jax.enable_x64(x64):
        dt = _dtype(x64)
        t = tiny_like(jnp.ones(3, dt))
        assert t.dtype == dt and tiny_like(2).dtype == dt  # integers: default float
        fi = np.finfo(dt)
        # its square is a normal number; log and 1 / t**2 are finite
        assert float(t) ** 2 >= fi.tiny * (1 - fi.eps)
        assert np.isfinite(np.log(t)) and np.isfinite(1 / np.square(t, dtype=dt))
        # x / clamp_tiny(y) at y = 0: finite value, gradient 0 (not 0 * inf = NaN)
        f = lambda x, y: x / clamp_tiny(y)  # noqa: E731
        v, g = jax.value_and_grad(f, argnums=(0, 1))(dt(1e3), dt(0.0))
        assert np.isfinite(v) and float(g[1]) == 0.0 and np.isfinite(g[0])
        # pow2_scale is an exact power of two bringing |x| into [0.5, 1)
        x = jnp.asarray([3e-20, 0.7, 5.0, 1e30, 0.0], dt)
        s = pow2_scale(x)
        np.testing.assert_array_equal(np.log2(np.asarray(s)),
                                      np.round(np.log2(np.asarray(s))))
        xs = np.asarray(x * s)
        assert np.all((xs[:-1] >= 0.5) & (xs[:-1] < 1.0)) and xs[-1] == 0.0


@X64
def test_soft_threshold_finite_at_zero(x64):
    # export rules compare quantities that can both be 0 (relative margin 0 / 0)
    with jax.enable_x64(x64):
        dt = _dtype(x64)
        for a, b in ((0.0, 0.0), (1e-20, 2e-20), (4800.0, 4800.0)):
            v, g = jax.value_and_grad(_soft_ge, argnums=(0, 1))(dt(a), dt(b), 0.05)
            assert np.isfinite(v) and all(np.isfinite(x) for x in g), (a, b)
        assert float(_soft_ge(dt(0.0), dt(0.0), 0.05)) == 0.5


# --------------------------------------------------------------- transforms, f32


def test_jit_and_vmap_agree_in_float32():
    with jax.enable_x64(False):
        params, cluster, w, plan = _readme_case()

        def total(chip):
            return jc.predict_step_time(params, cluster.replace(chip=chip), w,
                                        plan).total_s

        chip = cluster.chip
        chips = [chip.replace(hbm_bytes_per_s=chip.hbm_bytes_per_s * f,
                              scaleup_bytes_per_s=chip.scaleup_bytes_per_s * f)
                 for f in (0.5, 1.0, 2.0)]
        eager = float(total(chips[1]))
        jitted = jax.jit(total)
        loop = np.array([float(jitted(c)) for c in chips])
        batch = jax.tree.map(lambda *x: jnp.stack(x), *chips)
        vmapped = np.asarray(jax.jit(jax.vmap(total))(batch))
    assert vmapped.dtype == np.float32 and np.all(np.isfinite(loop))
    np.testing.assert_allclose(loop[1], eager, rtol=JIT_RTOL)
    np.testing.assert_allclose(vmapped, loop, rtol=JIT_RTOL)
    assert loop[0] > loop[1] > loop[2]  # more bandwidth: faster
