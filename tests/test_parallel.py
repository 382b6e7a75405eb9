"""Tests of jaxcost.parallel: plan records, checks, enumeration, text round-trip."""

import itertools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcost.errors import PlanError
from jaxcost.model.hardware import get_chip
from jaxcost.model.parallel import check_plan, num_microbatches
from jaxcost.model.plan import (
    ParallelPlan,
    Recompute,
    num_chips,
    plan_at,
    plan_from_str,
    plan_to_str,
    stack_plans,
)
from jaxcost.model.workload import TransformerConfig, load_models, memory_bytes
from jaxcost.search.space import PlanSpace, enumerate_plans

MODELS = load_models()


@pytest.fixture(scope="module")
def a100():
    return get_chip("A100-SXM")


def test_create_and_counts():
    p = ParallelPlan.create(dp=8, tp=4, pp=2, cp=2, mbs=2, zero=1,
                            recompute=Recompute.SELECTIVE)
    assert float(num_chips(p)) == 128
    w = MODELS["gpt3-175b"]
    assert float(num_microbatches(w, p)) == 1536 / 16
    assert all(isinstance(x, float) for x in jax.tree.leaves(p))


@pytest.mark.parametrize("kw,match", [
    (dict(tp=0), "tp=0 must be an integer >= 1"),
    (dict(dp=2.5), "dp=2.5 must be an integer"),
    (dict(zero=4), "zero=4 must be 0, 1, 2 or 3"),
    (dict(recompute="some"), "recompute='some' is not one of"),
])
def test_create_errors(kw, match):
    with pytest.raises(PlanError, match=match):
        ParallelPlan.create(**kw)


@pytest.mark.parametrize("plan_kw,chips,match", [
    (dict(tp=3), 3, "tp=3 does not divide num_heads=32"),
    (dict(tp=8, dp=2), 8, r"dp·tp·pp·cp = 2·8·1·1 = 16 != num_chips=8"),
    (dict(pp=3), 3, "pp=3 does not divide num_layers=32"),
    (dict(pp=2, vpp=3), 2, r"vpp=3 does not divide layers per stage num_layers/pp=16"),
    (dict(vpp=2), 1, "vpp=2 > 1 needs pp > 1"),
    (dict(cp=3), 3, "cp=3 does not divide seq_len=4096"),
    (dict(dp=1, ep=2), 1, "ep=2 does not divide num_experts=1"),
    (dict(dp=3), 3, "dp·mbs=3 does not divide global_batch_seqs=1024"),
    (dict(dp=2, pp=4, vpp=2, mbs=512), 8,
     "vpp=2 > 1 needs num_microbatches=1 divisible by pp=4"),
])
def test_check_plan_messages(plan_kw, chips, match):
    w = MODELS["llama2-7b"]
    with pytest.raises(PlanError, match=match):
        check_plan(w, ParallelPlan.create(**plan_kw), chips)


def test_check_plan_kv_heads_and_memory(a100):
    w = MODELS["llama2-70b"]  # 64 heads, 8 KV heads
    check_plan(w, ParallelPlan.create(tp=16, dp=2), 32)  # KV heads replicated: valid
    with pytest.raises(PlanError, match="tp=16 exceeds max_tp=8"):
        check_plan(w, ParallelPlan.create(tp=16, dp=2), 32, max_tp=8)
    with pytest.raises(PlanError, match=r"memory .* GiB per chip exceeds 0.95 × hbm"):
        check_plan(w, ParallelPlan.create(dp=8), 8, a100)
    check_plan(w, ParallelPlan.create(tp=8, pp=4, dp=4, zero=1,
                                      recompute=Recompute.SELECTIVE), 128, a100)
    moe = MODELS["mixtral-8x7b"]
    with pytest.raises(PlanError, match=r"ep=8 does not divide dp·cp=4"):
        check_plan(moe, ParallelPlan.create(dp=4, tp=2, ep=8), 8)


def test_enumerate_gpt3_1024_a100(a100):
    w = MODELS["gpt3-175b"]
    plans = enumerate_plans(w, 1024, a100)
    n = plans.dp.shape[0]
    assert n > 100
    np.testing.assert_array_equal(np.asarray(num_chips(plans)), 1024.0)
    assert np.all(np.asarray(plans.tp) <= 8)
    mem = np.asarray(memory_bytes(w, plans).total)
    assert np.all(mem <= 0.95 * float(a100.hbm_capacity_bytes))
    # unique plans
    assert len({plan_to_str(plan_at(plans, i)) for i in range(n)}) == n
    rng = np.random.default_rng(0)
    for i in rng.choice(n, size=10, replace=False):
        check_plan(w, plan_at(plans, int(i)), 1024, a100)
    # without a chip there is no memory check, so more plans
    assert enumerate_plans(w, 1024, None, PlanSpace.create(max_tp=8)).dp.shape[0] > n


def test_enumerate_matches_bruteforce(a100):
    # Exhaustive check on a small space: enumeration == filter(check_plan, product)
    # (structural conditions; the memory condition is checked on the result).
    w = TransformerConfig.create(name="tiny-moe", num_layers=8, d_model=4096,
                                 num_heads=32, num_kv_heads=8, seq_len=4096,
                                 global_batch_seqs=64, vocab_size=32000,
                                 num_experts=8, top_k=2, mlp="swiglu")
    opts = dict(zero_stages=(0, 3), recompute=(Recompute.NONE, Recompute.FULL),
                mbs=(1, 4), vpp=(1, 2), cp=(1, 2), sp=(True, False))
    plans = enumerate_plans(w, 16, None, PlanSpace.create(max_tp=8, **opts))
    got = {plan_to_str(plan_at(plans, i)) for i in range(plans.dp.shape[0])}
    want = set()
    divs = [1, 2, 4, 8, 16]
    for tp, pp, cp, ep, vpp, mbs, z, r, sp, lite in itertools.product(
            divs, divs, (1, 2), (1, 2, 4, 8), (1, 2), (1, 4), (0, 3),
            (Recompute.NONE, Recompute.FULL), (True, False), (False, True)):
        if 16 % (tp * pp * cp) or (lite and r is Recompute.FULL):
            continue
        plan = ParallelPlan.create(dp=16 // (tp * pp * cp), tp=tp, pp=pp, cp=cp,
                                   ep=ep, vpp=vpp, mbs=mbs, zero=z, recompute=r, sp=sp,
                                   recompute_lite=lite)
        try:
            check_plan(w, plan, 16, max_tp=8)
        except PlanError:
            continue
        want.add(plan_to_str(plan))
    assert got == want
    assert len(got) > 0
    fit = enumerate_plans(w, 16, a100, PlanSpace.create(**opts))
    mem = np.asarray(memory_bytes(w, plans).total)
    assert fit.dp.shape[0] == np.sum(mem <= 0.95 * float(a100.hbm_capacity_bytes))
    assert 0 < fit.dp.shape[0] < len(got)


def test_enumerate_allow_tp_beyond_scaleup(a100):
    w = MODELS["llama2-70b"]
    kw = dict(zero_stages=(1,), recompute=(Recompute.SELECTIVE,), mbs=(1,), vpp=(1,),
              cp=(1,))
    small = enumerate_plans(w, 64, a100, PlanSpace.create(**kw))
    big = enumerate_plans(
        w, 64, a100, PlanSpace.create(allow_tp_beyond_scaleup=True, **kw)
    )
    assert np.asarray(small.tp).max() <= 8 < np.asarray(big.tp).max()


@settings(max_examples=30, deadline=None)
@given(dp=st.integers(1, 64), tp=st.integers(1, 16), pp=st.integers(1, 16),
       cp=st.integers(1, 8), ep=st.integers(1, 8), vpp=st.integers(1, 4),
       mbs=st.integers(1, 16), z=st.integers(0, 3), r=st.sampled_from(list(Recompute)),
       sp=st.booleans(), fa=st.booleans(), fused=st.booleans(), tpo=st.booleans(),
       bal=st.booleans(), dpo=st.booleans())
def test_plan_str_roundtrip(dp, tp, pp, cp, ep, vpp, mbs, z, r, sp, fa, fused, tpo, bal,
                            dpo):
    p = ParallelPlan.create(dp=dp, tp=tp, pp=pp, cp=cp, ep=ep, vpp=vpp, mbs=mbs,
                            zero=z, recompute=r, sp=sp, flash_attn=fa, fused_a2a=fused,
                            tp_overlap=tpo, pp_balance=bal, dp_overlap=dpo)
    assert plan_from_str(plan_to_str(p)) == p


def test_plan_str_format_and_errors():
    p = ParallelPlan.create(dp=8, tp=4, pp=2, zero=1, recompute=Recompute.SELECTIVE)
    assert plan_to_str(p) == "dp8-tp4-pp2-cp1-ep1-vpp1-mbs1-z1-rsel"
    with pytest.raises(PlanError, match="is not a plan string"):
        plan_from_str("dp8-tp4")


def test_stack_and_index():
    ps = [ParallelPlan.create(dp=d, tp=t) for d, t in [(1, 8), (2, 4), (8, 1)]]
    s = stack_plans(ps)
    assert s.dp.shape == (3,)
    for i, p in enumerate(ps):
        assert plan_to_str(plan_at(s, i)) == plan_to_str(p)
    with pytest.raises(PlanError):
        stack_plans([])


def test_balanced_pipeline_admits_uneven_layer_splits():
    # 94 layers (Qwen3-235B-like) divide by no pp > 2 that divides 64 chips; a balanced
    # split needs only one layer per virtual stage
    w = load_models()["korthikanti-22b"].replace(
        num_layers=94.0, global_batch_seqs=64.0
    )
    kw = dict(zero_stages=(1,), recompute=(Recompute.FULL,), mbs=(1,), vpp=(1, 4),
              cp=(1,))
    uni = enumerate_plans(w, 64, None, PlanSpace.create(**kw))  # the default: uniform
    bal = enumerate_plans(w, 64, None, PlanSpace.create(pp_balance=True, **kw))
    auto = enumerate_plans(
        w, 64, None, PlanSpace.create(pp_balance="auto", **kw)
    )  # where uneven
    even = np.mod(94.0, np.asarray(auto.pp) * np.asarray(auto.vpp)) == 0
    np.testing.assert_array_equal(np.asarray(auto.pp_balance) == 1.0,
                                  ~even & (np.asarray(auto.pp) > 1))
    # "auto" interleaves an uneven split only where the embedding and head slots make
    # it even: pp·vpp divides L + 2 = 96 (pp 8 with vpp 4), else vpp 1
    ub = np.asarray(auto.pp_balance) == 1.0
    v_ub, p_ub = np.asarray(auto.vpp)[ub], np.asarray(auto.pp)[ub]
    assert np.all((v_ub == 1.0) | (np.mod(96.0, p_ub * v_ub) == 0))
    assert np.any((v_ub == 4.0) & (p_ub == 8.0))
    assert np.any(np.asarray(bal.vpp) == 4.0)
    assert {8.0, 16.0} <= set(np.unique(auto.pp))
    assert set(np.unique(uni.pp)) <= {1.0, 2.0}
    assert {8.0, 16.0} <= set(np.unique(bal.pp))
    assert np.all(np.asarray(bal.pp_balance) == 1.0)
    assert np.all(np.asarray(bal.pp) * np.asarray(bal.vpp) <= 94)
    with pytest.raises(PlanError, match="does not divide num_layers"):
        check_plan(w, ParallelPlan.create(dp=8, pp=8), 64)
    check_plan(w, ParallelPlan.create(dp=8, pp=8, pp_balance=True), 64)
