"""Tests of step_time: properties over enumerated plans, transforms, gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxcost.model.hardware import ClusterSpec, load_chips
from jaxcost.model.params import default_params
from jaxcost.model.plan import ParallelPlan, Recompute, plan_at
from jaxcost.model.step_time import predict_step_time
from jaxcost.model.workload import load_models
from jaxcost.search.space import PlanSpace, enumerate_plans

N_PLANS = 48
_SCALED = ("peak_flop_per_s_bf16", "hbm_bytes_per_s", "scaleup_bytes_per_s",
           "scaleout_bytes_per_s")


@functools.cache
def _case(kind: str):
    """(chip, model, 48 enumerated valid plans) of the 22B GPT on 32 A100, dense or as
    an 8-expert top-2 MoE variant (same static fields: one compilation for both); every
    other plan uses the unfused attention kernel, so both kernels meet the
    properties."""
    chip = load_chips()["A100-SXM"]
    w = load_models()["korthikanti-22b"].replace(global_batch_seqs=64.0)
    if kind == "moe":
        w = w.replace(num_experts=8.0, top_k=2.0, num_dense_layers=0.0)
    plans = enumerate_plans(
        w, 32, chip, PlanSpace.create(mbs=(1, 2), vpp=(1, 2), cp=(1, 2))
    )
    idx = np.linspace(0, plans.dp.shape[0] - 1, N_PLANS).astype(int)
    plans = jax.tree.map(lambda x: jnp.asarray(x[idx]), plans)
    plans = plans.replace(flash_attn=jnp.asarray(np.arange(N_PLANS) % 2, dtype=float))
    return chip, w, plans


CASES = ["dense", "moe"]


@functools.cache
def _batched():
    params = default_params()

    @jax.jit
    def run(chip_, w, plans_):
        hw = ClusterSpec(chip=chip_, num_chips=32.0)
        return jax.vmap(lambda p: predict_step_time(params, hw, w, p))(plans_)

    return run


def _scaled(chip, factors):
    return chip.replace(**{k: getattr(chip, k) * f for k, f in zip(_SCALED, factors,
                                                                   strict=True)})


@pytest.mark.parametrize("case", CASES)
def test_enumerated_plans_finite_mfu_le_one_dp1_no_dp_comm(case):
    chip, w, plans = _case(case)
    out = _batched()(chip, w, plans)
    if case == "moe":
        assert np.any(np.asarray(plans.ep) > 1) and np.any(out.ep_comm_s > 0)
    for leaf in jax.tree.leaves(out):
        assert np.all(np.isfinite(leaf))
    assert np.all(out.total_s > 0)
    assert np.all(out.mfu <= 1.0) and np.all(out.mfu > 0)
    assert np.all(out.hfu >= out.mfu * (1 - 1e-12))
    dp1 = np.asarray(plans.dp) == 1
    assert np.all(np.asarray(out.dp_comm_s)[dp1] == 0.0)
    assert np.all(np.asarray(out.dp_comm_s)[~dp1] > 0.0)
    pp1 = np.asarray(plans.pp) == 1
    assert np.all(np.asarray(out.bubble_s)[pp1] == 0.0)
    flash = np.asarray(plans.flash_attn) > 0.5  # enumerated (with flash) plans fit
    assert np.all(np.asarray(out.fits_in_hbm)[flash] > 0.5)
    # parts add up to the total (the ideal-time floor is not binding here)
    parts = (out.compute_s + out.tp_comm_s + out.cp_comm_s + out.ep_comm_s
             + out.pp_comm_s + out.dp_comm_s + out.bubble_s + out.optimizer_s
             + out.overhead_s)
    np.testing.assert_allclose(parts, out.total_s, rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_unfused_attention_never_faster(case):
    # the same plans with a flash-style kernel: no score traffic, causal blocks skipped
    chip, w, plans = _case(case)
    run = _batched()
    flash = run(chip, w, plans.replace(flash_attn=jnp.ones(N_PLANS))).total_s
    unfused = run(chip, w, plans.replace(flash_attn=jnp.zeros(N_PLANS))).total_s
    assert np.all(unfused > flash)


@settings(max_examples=6, deadline=None)
@given(case=st.sampled_from(CASES),
       factors=st.lists(st.floats(1.0, 4.0), min_size=4, max_size=4),
       which=st.integers(0, 3))
def test_more_flops_or_bandwidth_never_slower(case, factors, which):
    chip, w, plans = _case(case)
    run = _batched()
    base = run(chip, w, plans).total_s
    one = [1.0] * 4
    one[which] = factors[which]
    assert np.all(run(_scaled(chip, one), w, plans).total_s <= base * (1 + 1e-12))
    assert np.all(run(_scaled(chip, factors), w, plans).total_s <= base * (1 + 1e-12))


def test_jit_equals_eager_and_vmap_equals_loop():
    chip, w, plans = _case("dense")
    params = default_params()
    hw = ClusterSpec(chip=chip, num_chips=32.0)
    batched = _batched()(chip, w, plans)
    single = jax.jit(lambda p: predict_step_time(params, hw, w, p))
    for i in (0, N_PLANS // 2, N_PLANS - 1):
        got = single(plan_at(plans, i))
        np.testing.assert_allclose(got.total_s, batched.total_s[i], rtol=1e-12)
    eager = predict_step_time(params, hw, w, plan_at(plans, 3))
    np.testing.assert_allclose(eager.total_s, batched.total_s[3], rtol=1e-12)
    np.testing.assert_allclose(eager.mfu, batched.mfu[3], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("plan_kw", [
    dict(dp=2, tp=4, pp=4, vpp=2, mbs=1, zero=3, recompute=Recompute.SELECTIVE),
])
def test_grads_wrt_params_and_chip_leaves(plan_kw):
    chip = load_chips()["A100-SXM"]
    w = load_models()["korthikanti-22b"].replace(global_batch_seqs=64.0)
    plan = ParallelPlan.create(**plan_kw)
    params = default_params()

    @jax.jit
    def f(raw, log_scale):
        c = chip.replace(**{k: getattr(chip, k) * jnp.exp(log_scale[i])
                            for i, k in enumerate(_SCALED)})
        hw = ClusterSpec(chip=c, num_chips=32.0)
        return jnp.log(predict_step_time(params.replace(global_raw=raw), hw, w,
                                         plan).total_s)

    args = (params.global_raw, jnp.zeros(4))
    check_grads(f, args, order=1, modes=["rev"], atol=1e-4, rtol=1e-4)
    # differentiated in both arguments, as check_grads did: jax reuses its compiled
    # forward and backward programs (argnums=1 alone would compile two more)
    g = jax.grad(f, argnums=(0, 1))(*args)[1]
    assert np.all(np.asarray(g) <= 0)  # more FLOP/s or bandwidth: not slower


@pytest.mark.slow
def test_hetero_faster_group_helps_in_both_modes():
    a100 = load_chips()["A100-SXM"]
    # a faster chip with the same static fields (one compilation per mode)
    fast = _scaled(a100, (3.0, 2.0, 1.0, 1.0))
    w = load_models()["korthikanti-22b"].replace(global_batch_seqs=64.0)
    params = default_params()
    plan = ParallelPlan.create(dp=2, tp=8, pp=2)
    for mode in ("pipeline", "data"):
        f = jax.jit(lambda c1, c2, mode=mode: predict_step_time(
            params, (ClusterSpec(chip=c1, num_chips=32.0),
                     ClusterSpec(chip=c2, num_chips=32.0)), w, (plan, plan), mode=mode))
        slow = f(a100, a100)
        mixed = f(a100, fast)
        assert np.isfinite(mixed.total_s) and mixed.total_s < slow.total_s
        assert 0 < mixed.mfu <= 1.0
        if mode == "pipeline":
            # two equal groups of 2 stages = one pipeline of 4 stages; only the smooth
            # group maximum and the head placement differ
            homo = jax.jit(lambda: predict_step_time(
                params, ClusterSpec(chip=a100, num_chips=64.0), w,
                ParallelPlan.create(dp=2, tp=8, pp=4)))()
            np.testing.assert_allclose(slow.total_s, homo.total_s, rtol=0.05)


def _one(params, chip, w, plan, n):
    return predict_step_time(
        params, ClusterSpec(chip=chip, num_chips=float(n)), w, plan
    )


@pytest.mark.parametrize("leaf, part, plain, overlapped, degrees", [
    ("tp_overlap", "tp_comm_s", "tp_overlap_frac", "tp_pipelined_overlap_frac",
     {"dp": 1, "tp": 8}),
    ("dp_overlap", "dp_comm_s", "dp_overlap_frac", "dp_bucketed_overlap_frac",
     {"dp": 8, "tp": 1}),
])
def test_overlap_leaf_uses_its_own_fraction(leaf, part, plain, overlapped, degrees):
    # tp_overlap (TP collectives pipelined with the GEMMs) and dp_overlap (gradient
    # reduction bucketed into the backward pass) each swap the axis' overlap fraction
    chip = load_chips()["A100-SXM"]
    w = load_models()["korthikanti-22b"].replace(global_batch_seqs=8.0)
    p = default_params()
    g = p.global_raw
    plan = ParallelPlan.create(mbs=1, **degrees)
    on = plan.replace(**{leaf: 1.0})
    base = _one(p, chip, w, plan, 8)
    piped = _one(p, chip, w, on, 8)
    from jaxcost.model.params import physical
    pp = physical(p, chip)
    np.testing.assert_allclose(float(getattr(piped, part)) / float(getattr(base, part)),
                               float((1 - getattr(pp, overlapped))
                                     / (1 - getattr(pp, plain))), rtol=1e-9)
    assert float(getattr(piped, part)) < float(getattr(base, part))  # priors' order
    # with equal fractions the flag changes nothing
    same = p.replace(global_raw=g.replace(**{overlapped: getattr(g, plain)}))
    np.testing.assert_allclose(float(_one(same, chip, w, on, 8).total_s),
                               float(_one(same, chip, w, plan, 8).total_s), rtol=1e-12)


def test_zero3_gathers_weights_for_every_microbatch():
    # ZeRO-3 holds only weight shards: doubling the micro-batches per step doubles its
    # data-parallel traffic, while ZeRO-1 reduces the accumulated gradient once a step
    chip = load_chips()["A100-SXM"]
    w = load_models()["korthikanti-22b"].replace(global_batch_seqs=16.0)
    p = default_params()
    for zero, ratio in ((3, 2.0), (1, 1.0)):
        plan = ParallelPlan.create(dp=8, mbs=1, zero=zero)
        one = _one(p, chip, w, plan, 8)
        two = _one(p, chip, w.replace(global_batch_seqs=32.0), plan, 8)
        np.testing.assert_allclose(float(two.dp_comm_s) / float(one.dp_comm_s), ratio,
                                   rtol=1e-9)


def test_moe_layer_overhead_charges_moe_layers_only():
    chip = load_chips()["A100-SXM"]
    dense = load_models()["korthikanti-22b"].replace(global_batch_seqs=8.0)
    moe = dense.replace(num_experts=8.0, top_k=2.0, num_dense_layers=0.0)
    p = default_params()
    g = p.global_raw
    more = p.replace(global_raw=g.replace(moe_layer_overhead_s=g.moe_layer_overhead_s
                                          + 2.0))
    plan = ParallelPlan.create(dp=8, ep=8, mbs=1)
    d0, d1 = (_one(q, chip, dense, plan.replace(ep=1.0), 8) for q in (p, more))
    assert float(d1.compute_s) == float(d0.compute_s)
    m0, m1 = (_one(q, chip, moe, plan, 8) for q in (p, more))
    # no recompute: charged once forward, once backward, per layer and micro-batch
    from jaxcost.model.params import physical
    delta = float(physical(more, chip).moe_layer_overhead_s
                  - physical(p, chip).moe_layer_overhead_s)
    m = 8.0 / (8 * 1)  # micro-batches per step
    np.testing.assert_allclose(float(m1.compute_s - m0.compute_s),
                               m * float(moe.num_layers) * 2 * delta, rtol=1e-9)


def test_balanced_pipeline_head_term_closed_form():
    # Qwen3-235B-like: a wide vocabulary makes the LM head cost more than a layer
    from jaxcost.model.roofline import smooth_max
    from jaxcost.model.step_time import _BALANCE_SHARPNESS
    chip = load_chips()["H100-SXM"]
    w = load_models()["korthikanti-22b"].replace(num_layers=96.0, vocab_size=151936.0,
                                                 global_batch_seqs=64.0)
    p = default_params()
    for pp_deg in (1, 2, 4, 16):
        plan = ParallelPlan.create(dp=16 // pp_deg, tp=4, pp=pp_deg)
        uni = _one(p, chip, w, plan, 64)
        bal = _one(p, chip, w, plan.replace(pp_balance=1.0), 64)
        if pp_deg <= 2:  # nothing can move with one or two stages
            np.testing.assert_allclose(float(bal.total_s), float(uni.total_s),
                                       rtol=1e-12)
            continue
        m = 64 / (16 // pp_deg)
        lps = 96 / pp_deg
        # per micro-batch: exposed comm of a layer, compute of the last stage
        per_layer = float(uni.tp_comm_s + uni.ep_comm_s + uni.cp_comm_s) / (m * lps)
        t_head_plus = float(uni.compute_s) / m  # lps * t_layer + t_head
        t_head = _head(p, chip, w, plan)
        head_bal = float(bal.compute_s) / m
        # the balanced head share: (2/p - 1) x + max(x, t_head), x = t_layer + exposed
        t_layer = (t_head_plus - t_head) / lps
        xx = t_layer + per_layer
        want = (lps * t_layer + (2.0 / pp_deg - 1.0) * xx
                + float(smooth_max(xx, t_head, _BALANCE_SHARPNESS)))
        np.testing.assert_allclose(head_bal, want, rtol=1e-9)
        # the head outweighs a layer here, so balancing takes time off the step
        assert t_head > xx
        assert float(bal.total_s) < float(uni.total_s)


def _head(params, chip, w, plan):
    from jaxcost.model.params import physical
    from jaxcost.model.step_time import _parts
    return float(_parts(physical(params, chip), chip, w, plan, "bf16").t_head)
