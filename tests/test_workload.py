"""Tests of jaxcost.workload: closed forms, published counts (read from data/),
properties, and JAX transforms."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_tree_allclose
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from jaxcost.errors import DataError, PlanError
from jaxcost.model.plan import ParallelPlan, Recompute
from jaxcost.model.workload import (
    HEAD_OP_NAMES,
    KIND_ATTENTION,
    KIND_MATMUL,
    KIND_MEMORY,
    LAYER_OP_NAMES,
    UNFUSED_SCORE_BYTES_PER_ELEM,
    Mlp,
    TransformerConfig,
    activation_bytes_per_layer,
    active_param_count,
    comm_volumes,
    get_model,
    head_ops,
    in_flight_microbatches,
    layer_ops,
    load_models,
    memory_bytes,
    model_flop_per_token,
    models_csv_path,
    narayanan_flop_per_step,
    param_count,
    recompute_flop_frac,
    stack_models,
    stage_layers,
)

MODELS = load_models()


def _plan(**kw):
    return ParallelPlan.create(**kw)


# ------------------------------------------------------------------ closed forms

def test_narayanan_eq3_by_hand():
    w = MODELS["narayanan-gpt3-175b"]
    B, s, L, h, V = 1536.0, 2048.0, 96.0, 12288.0, 51200.0  # Megatron's l is L here
    expected = 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h))
    np.testing.assert_allclose(narayanan_flop_per_step(w), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["narayanan-gpt3-175b", "korthikanti-22b",
                                  "korthikanti-530b", "korthikanti-1t"])
def test_model_flop_vs_narayanan(name):
    # For a GPT model (F = 4h, N·H = h, dense), 4/3·(MFU FLOP) differs from eq. 3
    # only in the LM head: eq. 3 does not recompute it (6·B·s·V·h, not 8·B·s·V·h).
    # So the difference is exactly 2·B·s·V·h, a fraction V/(48·l·h) of the total:
    # < 1% for these models, where the embedding is small against l·h.
    w = MODELS[name]
    tokens = w.global_batch_seqs * w.seq_len
    ours = model_flop_per_token(w) * tokens * 4.0 / 3.0
    eq3 = narayanan_flop_per_step(w)
    np.testing.assert_allclose(ours - eq3, 2 * tokens * w.vocab_size * w.d_model,
                               rtol=1e-9)
    np.testing.assert_allclose(ours, eq3, rtol=1e-2)


def test_gpt_param_count_megatron_formula():
    # Megatron: P = 12·l·h²·(1 + 13/(12h)) + (V + s)·h for a tied GPT model, plus the
    # final LayerNorm (2h) that the formula omits.
    w = MODELS["narayanan-gpt3-175b"]
    L, h, V, s = 96.0, 12288.0, 51200.0, 2048.0  # Megatron's l is L here
    expected = 12 * L * h * h * (1 + 13 / (12 * h)) + (V + s) * h + 2 * h
    np.testing.assert_allclose(param_count(w), expected, rtol=1e-12)


def _reported_rows():
    with open(models_csv_path(), newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["reported_params"].strip()]


@pytest.mark.parametrize("row", _reported_rows(), ids=lambda r: r["name"])
def test_param_counts_match_reported(row):
    # Reported sizes are from each row's source; reported_params_rtol covers the
    # rounding of nominal sizes ("70B" for 68.98e9) and, for DeepSeek-V3, the MLA ->
    # GQA approximation (see the row's notes).
    w = MODELS[row["name"]]
    rtol = float(row["reported_params_rtol"])
    np.testing.assert_allclose(param_count(w), float(row["reported_params"]), rtol=rtol)
    if row["reported_active_params"].strip():
        np.testing.assert_allclose(active_param_count(w),
                                   float(row["reported_active_params"]), rtol=2 * rtol)


def test_dense_active_equals_total():
    for w in MODELS.values():
        if float(w.num_experts) == 1:
            np.testing.assert_allclose(active_param_count(w), param_count(w), rtol=0)
        else:
            assert float(active_param_count(w)) < float(param_count(w))


@pytest.mark.parametrize("sp", [True, False])
@pytest.mark.parametrize("rec", list(Recompute))
def test_korthikanti_activation_formulas(sp, rec):
    # the paper's formulas are for its (unfused) attention, which stores the scores
    w = MODELS["korthikanti-175b"]
    s, b, h, a, t = 2048.0, 2.0, 12288.0, 96.0, 8.0
    plan = _plan(tp=8, mbs=2, sp=sp, recompute=rec, flash_attn=False)
    sbh = s * b * h
    expected = {
        (True, Recompute.NONE): sbh / t * (34 + 5 * a * s / h),
        (False, Recompute.NONE): sbh * (10 + 24 / t + 5 * a * s / (h * t)),
        (True, Recompute.SELECTIVE): 34 * sbh / t,
        (False, Recompute.SELECTIVE): sbh * (10 + 24 / t),
        (True, Recompute.FULL): 2 * sbh / t,
        (False, Recompute.FULL): 2 * sbh,
    }[(sp, rec)]
    np.testing.assert_allclose(activation_bytes_per_layer(w, plan), expected,
                               rtol=1e-12)
    # a flash-style kernel stores no score matrix: the 5as/h terms vanish, and
    # without recompute it stores what selective recompute stores
    flash = activation_bytes_per_layer(w, plan.replace(flash_attn=1.0))
    sel = activation_bytes_per_layer(
        w, plan.replace(recompute=float(Recompute.SELECTIVE.value), flash_attn=1.0))
    if rec == Recompute.NONE:
        np.testing.assert_allclose(flash, sel, rtol=1e-12)
    else:
        np.testing.assert_allclose(flash, expected, rtol=1e-12)


def test_unfused_attention_ops():
    """Unfused attention: the score passes carry UNFUSED_SCORE_BYTES_PER_ELEM/3 bytes
    per score element forward, the core becomes batched GEMMs; flash has neither."""
    w = MODELS["korthikanti-175b"]
    flash = layer_ops(w, _plan(tp=8, mbs=2))
    unf = layer_ops(w, _plan(tp=8, mbs=2, flash_attn=False))
    i_core = LAYER_OP_NAMES.index("attn_core")
    i_sc = LAYER_OP_NAMES.index("attn_scores")
    n_scores = 2 * (96 / 8) * 2048.0 ** 2
    np.testing.assert_allclose(unf.bytes[i_sc], UNFUSED_SCORE_BYTES_PER_ELEM / 3
                               * n_scores, rtol=1e-12)
    assert float(flash.bytes[i_sc]) == 0.0 and float(flash.flop[i_sc]) == 0.0
    assert int(flash.kind[i_core]) == KIND_ATTENTION
    assert int(unf.kind[i_core]) == KIND_MATMUL
    np.testing.assert_allclose(unf.flop[i_core], flash.flop[i_core], rtol=0)


def test_moe_permutation_bytes():
    """Token permutation: (3k + 1)·D BF16 elements per token the chip dispatches (its
    T_c/t under sequence parallelism), weighted by the MoE share of layers; none for a
    dense model."""
    w = MODELS["deepseek-v3"]
    i = LAYER_OP_NAMES.index("moe_permute")
    ops = layer_ops(w, _plan(tp=4, ep=8, dp=8, mbs=2))
    k, d = float(w.top_k), float(w.d_model)
    f_moe = (float(w.num_layers) - float(w.num_dense_layers)) / float(w.num_layers)
    tok = 2 * float(w.seq_len) / 4  # mbs 2, sequence parallel over tp 4
    np.testing.assert_allclose(ops.bytes[i], f_moe * 2 * (3 * k + 1) * tok * d,
                               rtol=1e-12)
    assert float(ops.flop[i]) == 0.0 and int(ops.kind[i]) == KIND_MEMORY
    assert float(layer_ops(MODELS["llama2-7b"], _plan()).bytes[i]) == 0.0


def test_korthikanti_no_parallelism_and_cp():
    w = MODELS["korthikanti-22b"]
    s, b, h, a = 2048.0, 1.0, 6144.0, 64.0
    np.testing.assert_allclose(activation_bytes_per_layer(w, _plan(flash_attn=False)),
                               s * b * h * (34 + 5 * a * s / h), rtol=1e-12)
    # context parallelism divides the sequence each chip holds
    s2 = s / 4
    np.testing.assert_allclose(activation_bytes_per_layer(w, _plan(cp=4,
                                                                    flash_attn=False)),
                               s2 * b * h * (34 + 5 * a * s2 / h), rtol=1e-12)


def test_first_stage_holds_pp_microbatches():
    # 1F1B: the first stage holds p micro-batches of L/p layers -> L·A in total,
    # independent of p (as long as m >= p).
    w = MODELS["korthikanti-530b"]
    a1 = memory_bytes(w, _plan(tp=8, pp=5, recompute=Recompute.SELECTIVE)).activations
    a2 = memory_bytes(w, _plan(tp=8, pp=35, recompute=Recompute.SELECTIVE)).activations
    per_layer = activation_bytes_per_layer(
        w, _plan(tp=8, recompute=Recompute.SELECTIVE)
    )
    np.testing.assert_allclose(a1, 105 * per_layer, rtol=1e-12)
    np.testing.assert_allclose(a2, 105 * per_layer, rtol=1e-12)


def test_activation_count_gqa_gated_no_dropout_by_hand():
    # Llama 3 405B, TP8 + SP, flash attention, no recompute, per s·b·h/t bytes:
    # norms 4 + attention input 2 + MLP input 2 (no dropout masks: Llama-style)
    # + Q 2·(128·128/16384) + K,V 4·(8·128/16384) + core output 2 + MLP 6·3.25 = 31.75
    w = MODELS["llama3-405b"]
    plan = _plan(tp=8, sp=True)
    sbh = 8192.0 * 1.0 * 16384.0
    np.testing.assert_allclose(activation_bytes_per_layer(w, plan),
                               31.75 * sbh / 8, rtol=1e-12)
    # without SP the norm and block inputs are replicated: 8 + 23.75/t
    np.testing.assert_allclose(activation_bytes_per_layer(w, plan.replace(sp=0.0)),
                               sbh * (8.0 + 23.75 / 8), rtol=1e-12)


def test_interleaved_in_flight_capped_at_all_microbatches():
    w = MODELS["llama3-405b"]  # B = 2048 sequences
    # m = 2048 / (8·1) = 256 >> p: Korthikanti's p·(1 + (p − 1)/(p·v)) on stage 0
    big = _plan(dp=8, tp=8, pp=16, vpp=4)
    np.testing.assert_allclose(in_flight_microbatches(w, big),
                               16 * (1 + 15 / (16 * 4)), rtol=1e-12)
    np.testing.assert_allclose(in_flight_microbatches(w, big.replace(vpp=1.0)), 16,
                               rtol=1e-12)
    np.testing.assert_allclose(in_flight_microbatches(w, big, stage=1),
                               (2 * 14 + 3 * 16 + 1) / 4, rtol=1e-12)
    # m = 2048 / (128·1) = 16 = p: the schedule runs every forward first; a stage
    # never holds more than the m micro-batches of the step
    small = _plan(dp=128, tp=8, pp=16, vpp=8)
    np.testing.assert_allclose(in_flight_microbatches(w, small), 16, rtol=1e-12)
    np.testing.assert_allclose(in_flight_microbatches(w, small, stage=1), 16,
                               rtol=1e-12)


def test_balanced_stages_and_peak_stage():
    # 126 layers + embedding + head on 16 stages: 7 layers on the first, 8 on the
    # second; the second stage (8 layers x 16 in flight) is the peak
    w = MODELS["llama3-405b"]
    plan = _plan(dp=128, tp=8, pp=16, vpp=8, zero=2, pp_balance=True)
    n0, n1 = stage_layers(w, plan)
    assert (float(n0), float(n1)) == (7.0, 8.0)
    assert tuple(map(float, stage_layers(w, plan.replace(pp_balance=0.0)))) == (
        126 / 16, 126 / 16)
    m = memory_bytes(w, plan)
    np.testing.assert_allclose(m.activations,
                               8 * 16 * activation_bytes_per_layer(w, plan),
                               rtol=1e-12)


def test_full_recompute_holds_one_layer_working_set():
    # full recompute: L/p layer inputs per micro-batch in flight, plus the whole
    # activation set of the one layer being recomputed (Chen et al. 2016)
    w = MODELS["llama2-70b"]
    plan = _plan(dp=8, tp=8, pp=1, recompute=Recompute.FULL)
    m = memory_bytes(w, plan)
    full = activation_bytes_per_layer(w, plan)
    none = activation_bytes_per_layer(w, plan.replace(recompute=0.0))
    head = memory_bytes(w, plan.replace(recompute=0.0)).activations - 80 * none
    np.testing.assert_allclose(m.activations, 80 * full + (none - full) + head,
                               rtol=1e-12)


def test_layer_flop_sum_matches_model_flop():
    # Forward matmul + attention FLOP of all layers and the LM head of one sequence
    # equal one third of the MFU FLOP (forward = 1/3 of forward + backward).
    for name in ("llama2-70b", "deepseek-v3", "mixtral-8x7b", "gpt3-175b"):
        w = MODELS[name]
        ops = layer_ops(w, _plan())
        kind = np.asarray(ops.kind)
        compute = float(jnp.sum(jnp.where(kind < 2, ops.flop, 0.0)))
        lm = float(head_ops(w, _plan()).flop[HEAD_OP_NAMES.index("lm_head")])
        np.testing.assert_allclose(float(w.num_layers) * compute + lm,
                                   model_flop_per_token(w) * w.seq_len / 3, rtol=1e-12)


@pytest.mark.parametrize("name", ["llama2-70b", "deepseek-v3"])
def test_sharding_conserves_flop(name):
    # Per-chip FLOP times the chips that share one micro-batch (tp·cp) is the total
    # (tp divides the KV heads here, so nothing is replicated).
    w = MODELS[name]
    one = layer_ops(w, _plan())
    sharded = layer_ops(w, _plan(tp=8, cp=2, ep=4, dp=4, mbs=1))
    kind = np.asarray(one.kind)
    for k in range(len(LAYER_OP_NAMES)):
        if kind[k] < 2:
            np.testing.assert_allclose(sharded.flop[k] * 16, one.flop[k], rtol=1e-12)
    np.testing.assert_allclose(sharded.flop[2],
                               4 * w.seq_len**2 * w.num_heads * w.head_dim / 16,
                               rtol=1e-12)


def test_tp_comm_volumes_megatron():
    w = MODELS["korthikanti-175b"]
    X = 2 * 2048 * 12288 * 2.0
    for sp in (True, False):
        v = comm_volumes(w, _plan(tp=8, pp=8, mbs=2, sp=sp))
        np.testing.assert_allclose(v.tp_bytes_per_layer, 4 * X, rtol=1e-12)
        np.testing.assert_allclose(v.pp_bytes_per_microbatch, X / 8 if sp else X,
                                   rtol=1e-12)
    v = comm_volumes(w, _plan(dp=1))  # dp = 1: the volume is still defined
    np.testing.assert_allclose(v.dp_grad_bytes, 2 * param_count(w), rtol=1e-12)
    assert float(v.ep_bytes_per_layer) == 0.0
    assert float(v.zero3_param_bytes) == 0.0
    v3 = comm_volumes(w, _plan(dp=8, zero=3))
    np.testing.assert_allclose(v3.zero3_param_bytes, 4 * param_count(w), rtol=1e-12)


def test_moe_comm_and_memory():
    w = MODELS["deepseek-v3"]
    v = comm_volumes(w, _plan(dp=64, ep=64, tp=1, mbs=1))
    X = 4096 * 7168 * 2.0
    np.testing.assert_allclose(v.ep_bytes_per_layer, 58 / 61 * 2 * 8 * X, rtol=1e-12)
    assert 0 < float(v.dp_expert_grad_bytes) < float(v.dp_grad_bytes)
    m8 = memory_bytes(w, _plan(dp=64, ep=8)).weights
    m64 = memory_bytes(w, _plan(dp=64, ep=64)).weights
    assert float(m64) < float(m8)


def test_recompute_frac():
    w = MODELS["llama3-70b"]
    ops = layer_ops(w, _plan(tp=8))
    np.testing.assert_allclose(recompute_flop_frac(w, _plan(tp=8)), 0.0, atol=0)
    np.testing.assert_allclose(
        recompute_flop_frac(w, _plan(tp=8, recompute=Recompute.SELECTIVE)),
        ops.flop[LAYER_OP_NAMES.index("attn_core")] / jnp.sum(ops.flop), rtol=1e-12)
    np.testing.assert_allclose(
        recompute_flop_frac(w, _plan(tp=8, recompute=Recompute.FULL)), 1.0, rtol=0)


def test_memory_bytes_zero_stages_by_hand():
    w = MODELS["llama2-7b"]
    P = float(param_count(w))
    m0 = memory_bytes(w, _plan(dp=8))
    np.testing.assert_allclose(m0.weights, 2 * P, rtol=1e-12)
    np.testing.assert_allclose(m0.grads, 2 * P, rtol=1e-12)
    np.testing.assert_allclose(m0.optimizer, 12 * P, rtol=1e-12)
    m3 = memory_bytes(w, _plan(dp=8, zero=3))
    np.testing.assert_allclose(m3.weights + m3.grads + m3.optimizer, 16 * P / 8,
                               rtol=1e-12)
    m = memory_bytes(w, _plan(dp=8), grad_bytes_per_param=4.0)
    np.testing.assert_allclose(m.grads, 4 * P, rtol=1e-12)


# ----------------------------------------------------------------- properties

@settings(max_examples=25, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 4, 8]),
       z=st.integers(0, 2), rec=st.sampled_from(list(Recompute)),
       mbs=st.sampled_from([1, 2, 4]))
def test_memory_monotone(tp, pp, z, rec, mbs):
    w = MODELS["llama2-70b"]
    base = dict(dp=4, tp=tp, pp=pp, zero=z, recompute=rec, mbs=mbs)
    m = float(memory_bytes(w, _plan(**base)).total)
    assert m > 0
    assert float(memory_bytes(w, _plan(**{**base, "tp": 2 * tp})).total) < m
    assert float(memory_bytes(w, _plan(**{**base, "pp": 2 * pp})).total) < m
    assert float(memory_bytes(w, _plan(**{**base, "zero": z + 1})).total) < m


def test_layer_ops_shapes_and_kinds():
    w = MODELS["mixtral-8x7b"]
    ops = layer_ops(w, _plan(tp=2))
    assert ops.flop.shape == ops.bytes.shape == ops.kind.shape == (len(LAYER_OP_NAMES),)
    assert np.all(np.asarray(ops.flop) >= 0) and np.all(np.asarray(ops.bytes) >= 0)
    dense = layer_ops(MODELS["llama2-7b"], _plan())
    moe_idx = [i for i, n in enumerate(LAYER_OP_NAMES) if n.startswith("moe_")]
    assert np.all(np.asarray(dense.flop)[moe_idx] == 0)
    # matmul intensity of a projection is about the token count for small batches
    h = head_ops(w, _plan())
    assert h.flop.shape == (len(HEAD_OP_NAMES),)


# ------------------------------------------------------------------ transforms

def test_jit_equals_eager():
    w = MODELS["deepseek-v3"]
    plan = _plan(dp=16, tp=4, ep=8, mbs=2, zero=1, recompute=Recompute.SELECTIVE)

    def f(w, plan):
        return (param_count(w), model_flop_per_token(w), layer_ops(w, plan).flop,
                memory_bytes(w, plan).total, comm_volumes(w, plan).ep_bytes_per_layer,
                recompute_flop_frac(w, plan))

    assert_tree_allclose(jax.jit(f)(w, plan), f(w, plan), rtol=1e-12, atol=0)


def test_vmap_equals_loop_models_and_plans():
    names = ["korthikanti-22b", "korthikanti-175b", "korthikanti-530b",
             "korthikanti-1t"]
    ws = stack_models([MODELS[n] for n in names])
    plan = _plan(tp=8, mbs=1, recompute=Recompute.SELECTIVE)
    got = jax.vmap(lambda w: memory_bytes(w, plan).total)(ws)
    want = [memory_bytes(MODELS[n], plan).total for n in names]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    plans = [_plan(tp=t, pp=p, zero=z) for t, p, z in [(1, 1, 0), (2, 4, 1), (8, 2, 3)]]
    stacked = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *plans)
    w = MODELS["llama2-13b"]
    got = jax.vmap(lambda p: layer_ops(w, p).bytes)(stacked)
    want = np.stack([layer_ops(w, p).bytes for p in plans])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_grads_finite_and_correct():
    w = MODELS["mixtral-8x7b"]
    plan = _plan(dp=8, tp=2, pp=2, ep=2, mbs=2, zero=1, recompute=Recompute.SELECTIVE)
    check_grads(lambda w: param_count(w) / 1e9, (w,), order=1, modes=("rev",))
    check_grads(lambda w: model_flop_per_token(w) / 1e9, (w,), order=1, modes=("rev",))
    check_grads(lambda w, p: memory_bytes(w, p).total / 1e9, (w, plan), order=1,
                modes=("rev",))
    check_grads(lambda w, p: jnp.sum(layer_ops(w, p).flop) / 1e12, (w, plan), order=1,
                modes=("rev",))
    g = jax.grad(lambda p: memory_bytes(w, p).total)(plan)
    assert all(np.isfinite(x) for x in jax.tree.leaves(g))


# ----------------------------------------------------------------- validation

def test_create_defaults_and_errors():
    w = TransformerConfig.create(name="x", num_layers=2, d_model=512, num_heads=8,
                                 seq_len=128, global_batch_seqs=4, vocab_size=1000,
                                 mlp=Mlp.SWIGLU)
    assert float(w.d_ff) == 1536 and float(w.head_dim) == 64
    assert float(w.num_kv_heads) == 8
    with pytest.raises(PlanError, match="num_kv_heads=3 does not divide num_heads=8"):
        TransformerConfig.create(name="x", num_layers=2, d_model=512, num_heads=8,
                                 num_kv_heads=3, seq_len=128, global_batch_seqs=4,
                                 vocab_size=1000)
    with pytest.raises(PlanError, match="top_k=3 exceeds num_experts=2"):
        TransformerConfig.create(name="x", num_layers=2, d_model=512, num_heads=8,
                                 seq_len=128, global_batch_seqs=4, vocab_size=1000,
                                 num_experts=2, top_k=3)
    with pytest.raises(PlanError, match="num_layers"):
        TransformerConfig.create(name="x", num_layers=2.5, d_model=512, num_heads=8,
                                 seq_len=128, global_batch_seqs=4, vocab_size=1000)


def test_models_csv_rows_have_sources():
    with open(models_csv_path(), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(MODELS) >= 15
    for r in rows:
        assert r["source"].startswith("http") and r["source_locator"].strip()
        assert r["kind"] in ("vendor_spec", "measured", "estimated")


def test_load_models_errors(tmp_path):
    good = models_csv_path().read_text().splitlines()
    bad = tmp_path / "models.csv"
    header = good[0].split(",")
    row = next(csv.reader([good[3]]))
    row[header.index("d_model")] = "abc"
    import io
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, row])
    bad.write_text(buf.getvalue())
    with pytest.raises(DataError, match=r"models.csv row 1 \(line 2\), column 'd_mod"):
        load_models(bad)
    bad.write_text(",".join(h for h in header if h != "source") + "\n")
    with pytest.raises(DataError, match="column 'source'"):
        load_models(bad)
    with pytest.raises(DataError, match="unknown model 'gpt-9'"):
        get_model("gpt-9", MODELS)
    assert get_model("Llama2-70B", MODELS) is MODELS["llama2-70b"]


def test_stack_models_mixes_architectures_exactly():
    # SwiGLU (3 MLP matrices, untied, no biases) and GELU (2 matrices, biases) models
    # stacked together are each counted as on their own: the gated_mlp / tied_frac
    # leaves drive the formulas, not the first model's static label.
    names = ["llama2-7b", "gpt3-175b"]
    ws = stack_models([MODELS[n] for n in names])
    counts = jax.vmap(param_count)(ws)
    for i, n in enumerate(names):
        np.testing.assert_allclose(counts[i], param_count(MODELS[n]), rtol=1e-12)
    with pytest.raises(PlanError, match="at least one"):
        stack_models([])
