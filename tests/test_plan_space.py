"""The plan space as practiced: FP8 as a plan dimension scored at the FP8 peak,
interleave depths up to L/pp, and the robust (ensemble-quantile) ranking of
``best_plan``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ClusterSpec, Precision, load_chips
from jaxcost.model.params import default_params, physical
from jaxcost.model.plan import Recompute, stack_plans
from jaxcost.model.step_time import predict_step_time_physical
from jaxcost.model.workload import get_model
from jaxcost.search.plans import best_plan
from jaxcost.search.space import PlanSpace, enumerate_plans, space_precisions

# a small space keeps each search to a few hundred plans (fast on 2 cores)
_SMALL = PlanSpace(
    cp=(1,),
    zero_stages=(1,),
    recompute=(Recompute.NONE,),
    recompute_lite=(False,),
    mbs=(1,),
    pp=(1, 2, 4),
)


def _llama7b(batch: float = 64.0):
    return get_model("llama2-7b").replace(global_batch_seqs=batch)


@jax.jit
def _step_times(phys, cluster, w, plans, flags):
    """Step times of ``plans`` ((P,) leaves) at the GEMM precision flags ``flags``
    (1 = FP8), s: one compiled program for the checks of this module, which pass
    chips with neutral static labels (:func:`_neutral`)."""
    def one(p, x):
        return predict_step_time_physical(phys, cluster, w, p, precision=x).total_s

    return jax.vmap(one)(plans, flags)


def _neutral(cluster):
    """The cluster with neutral static chip labels, so that every chip shares one
    compilation of :func:`_step_times` (the physical parameters are resolved with the
    real chip; the default parameters have no per-chip offsets anyway)."""
    return cluster.replace(chip=cluster.chip.replace(
        name="chip", key="chip", vendor="v", family="f", memory_type="m"))


def test_space_precisions_offers_fp8_only_where_the_chip_has_it():
    chips = load_chips()
    both = PlanSpace.create(precisions=["bf16", "fp8"])
    assert both.precisions == (Precision.BF16, Precision.FP8)
    assert float(chips["H100-SXM"].peak_flop_per_s_fp8) > 0
    assert space_precisions(both, chips["H100-SXM"]) == both.precisions
    assert float(chips["A100-SXM"].peak_flop_per_s_fp8) == 0  # no FP8 tensor cores
    assert space_precisions(both, chips["A100-SXM"]) == (Precision.BF16,)
    assert space_precisions(PlanSpace(), chips["H100-SXM"]) == (Precision.BF16,)
    with pytest.raises(PlanError, match="precision"):
        PlanSpace.create(precisions=["int4"])


def test_fp8_plans_are_scored_at_the_fp8_peak():
    chip = load_chips()["H100-SXM"]
    cl = ClusterSpec(chip=chip, num_chips=16.0)
    w = _llama7b()
    params = default_params()
    space = _SMALL.replace(precisions=(Precision.BF16, Precision.FP8))
    found = best_plan(params, cl, w, k=400, space=space)
    precs = np.asarray([r.precision == "fp8" for r in found])
    # every plan is tried in both formats (FP8 caches the linear inputs in 1 byte but
    # keeps FP8 weight copies: here, with memory to spare, every BF16 plan that fits
    # has an FP8 twin that fits), and FP8 GEMMs at twice the BF16 peak put the FP8
    # plans first
    assert found[0].precision == "fp8" and precs.sum() >= (~precs).sum()
    if len(found) < 400:
        fp8_twins = {r.plan_str.replace("-fp8", "") for r in found
                     if r.precision == "fp8"}
        assert {r.plan_str for r in found if r.precision != "fp8"} <= fp8_twins
    phys = physical(params, chip)
    top = stack_plans([r.plan for r in found[:4]])
    flag = np.asarray([1.0 if r.precision == "fp8" else 0.0 for r in found[:4]])

    def times(plans, f):
        return _step_times(phys, _neutral(cl), w, plans, f)

    # the reported step time is the scorer's at the plan's own precision (same
    # program, x64; rtol 1e-9 for summation order), and the other format is slower
    # for an FP8 plan (faster for a BF16 one)
    # the plan carries its precision (fp8 leaf, "-fp8" in its text): the other format
    # is the plan with that leaf flipped
    assert np.asarray(top.fp8).tolist() == flag.tolist()
    assert all(("-fp8" in r.plan_str) == (r.precision == "fp8") for r in found)
    own = np.asarray(times(top, flag))
    other = np.asarray(times(top.replace(fp8=1.0 - flag), 1.0 - flag))
    got = np.asarray([float(r.step_time.total_s) for r in found[:4]])
    np.testing.assert_allclose(got, own, rtol=1e-9)
    assert np.all(np.where(flag > 0.5, own < other, own > other))
    # MFU is counted against the FP8 peak of an FP8 plan (<= 1 by construction)
    assert 0 < float(found[0].step_time.mfu) <= 1.0
    # the best BF16 plan is slower than the best FP8 plan
    best_bf16 = next(r for r in found if r.precision == "bf16")
    assert best_bf16.step_time.total_s > found[0].step_time.total_s


def test_interleave_depth_reaches_layers_per_stage():
    # 32 layers on 16 chips: pp = 2 gives L/pp = 16, so vpp in {1, 2, 4, 8, 16};
    # pp = 1 only vpp = 1; an explicit vpp list is kept as given
    w = _llama7b()
    plans = enumerate_plans(w, 16, None, _SMALL)
    pp = np.asarray(plans.pp)
    vpp = np.asarray(plans.vpp)
    for p in (1.0, 2.0, 4.0):
        got = set(vpp[pp == p].tolist())
        want = {float(v) for v in range(1, 33) if (32 // int(p)) % v == 0}
        if p == 1.0:
            want = {1.0}
        assert got == want, (p, got)
    assert vpp[pp == 2.0].max() == 16.0  # one layer per virtual stage
    fixed = enumerate_plans(w, 16, None, _SMALL.replace(vpp=(1, 2)))
    assert set(np.asarray(fixed.vpp).tolist()) == {1.0, 2.0}


def _ensemble(*members):
    return jax.tree.map(lambda *x: jnp.stack(x), *members)


def test_robust_ranking_uses_the_ensemble_quantile():
    # two members: the point estimate, and one whose scale-out network reaches only a
    # small fraction of its bandwidth. Ranked by the 1.0-quantile (the worst member),
    # plans that keep their traffic inside the NVLink node win; every plan of this
    # small space is returned (k = pool = all), so the point ranking is read off the
    # same results.
    chip = load_chips()["A100-SXM"]
    cl = ClusterSpec(chip=chip, num_chips=32.0)
    w = _llama7b(batch=256.0)
    p0 = default_params()
    slow_net = p0.replace(
        global_raw=p0.global_raw.replace(
            scaleout_bw_eff=p0.global_raw.scaleout_bw_eff - 6.0
        )
    )
    ens = _ensemble(p0, slow_net)
    space = _SMALL.replace(zero_stages=(1, 3), pp=(1, 2, 4, 8), tp=(1, 2, 4, 8))
    res = best_plan(
        p0, cl, w, k=5000, space=space, ensemble=ens, quantile=1.0, robust_pool=5000
    )
    assert len(res) > 10
    q = np.asarray([r.quantile_step_time_s for r in res])
    point = np.asarray([float(r.step_time.total_s) for r in res])
    assert np.all(np.diff(q) >= 0)  # ranked by the quantile
    assert np.all(q >= point * (1 - 1e-12))  # the worst member is never faster
    # the ranking changed because of the quantile: the point optimum is not the
    # robust one, and is worse in the worst case; the robust choice gave up some
    # point-estimate speed for it
    i_point = int(np.argmin(point))
    assert i_point != 0
    assert q[0] < q[i_point] and point[0] > point[i_point]
    # the quantile is the worst member's step time (checked for the first plans, all
    # BF16: flag 0)
    top = stack_plans([r.plan for r in res[:4]])
    members = (physical(p0, chip), physical(slow_net, chip))
    worst = np.max([np.asarray(_step_times(ph, _neutral(cl), w, top, np.zeros(4)))
                    for ph in members], axis=0)
    np.testing.assert_allclose(q[:4], worst, rtol=1e-9)
    with pytest.raises(PlanError, match="ensemble"):
        best_plan(p0, cl, w, space=space, quantile=0.9)
    with pytest.raises(PlanError, match="quantile"):
        best_plan(p0, cl, w, space=space, ensemble=ens, quantile=1.5)


def test_context_parallelism_needs_fused_attention():
    # no CP implementation splits an unfused attention (the T×T scores in HBM): a
    # run of an unfused-attention framework is searched with cp = 1 only
    w = _llama7b()
    space = _SMALL.replace(cp=(1, 2, 4))
    fused = enumerate_plans(w, 16, None, space)
    unfused = enumerate_plans(w, 16, None, space.replace(flash_attn=False))
    assert {1.0, 2.0, 4.0} <= set(np.asarray(fused.cp).tolist())
    assert set(np.asarray(unfused.cp).tolist()) == {1.0}
    assert np.all(np.asarray(unfused.flash_attn) == 0.0)


def test_interleaved_uneven_split_where_embedding_and_head_even_it_out():
    # 94 layers on pp = 8: 96 slots with the embedding and the head, so vpp 6 (two
    # slots per virtual stage, Pangu Ultra's layout) is searched under "auto"; vpp 12
    # would leave the embedding's virtual stage without a layer (pp·vpp > L)
    w = _llama7b().replace(num_layers=94.0)
    space = _SMALL.replace(pp=(8,), pp_balance="auto")
    plans = enumerate_plans(w, 16, None, space)
    v = set(np.asarray(plans.vpp).tolist())
    assert v == {1.0, 2.0, 3.0, 4.0, 6.0}
    assert np.all(np.asarray(plans.pp_balance) == 1.0)


def test_published_mfu_and_best_of_each_chip_class():
    # rows quoting MFU at the chip's own peak give it back exactly (x64, rtol 1e-12);
    # step-time rows give model FLOP / (step · chips · peak); the best of each
    # (family, precision) class is the largest of its rows
    from pathlib import Path

    import pandas as pd

    from jaxcost import calibrate
    from jaxcost.model.workload import model_flop_per_token

    chips = load_chips()
    df = pd.read_csv(Path(__file__).parent / "data" / "production_runs.csv")
    runs = calibrate.runs_to_arrays(df, chips)
    mfu = calibrate.published_mfu(chips, runs)
    ids = list(runs.row_ids)
    src = df.set_index("row_id")
    checked = 0
    for i, rid in enumerate(ids):
        r = src.loc[rid]
        if r["target"] == "mfu" and pd.isna(r.get("mfu_peak_flop_per_s")):
            np.testing.assert_allclose(mfu[i], float(r["mfu"]), rtol=1e-12)
            checked += 1
        if r["target"] == "step_time_s" and runs.precision[i] != "fp8":
            w = jax.tree.map(lambda x, i=i: np.asarray(x)[i], runs.workload)
            tokens = float(r["gbs_seqs"]) * float(r["seq_len"])
            want = (
                float(model_flop_per_token(w))
                * tokens
                / (float(r["step_time_s"]) * float(r["n_chips"]))
                / float(chips[r["chip_key"]].peak_flop_per_s_bf16)
            )
            np.testing.assert_allclose(mfu[i], want, rtol=1e-9)
            checked += 1
    assert checked >= 8
    best = calibrate.best_published_mfu(chips, runs)
    for (fam, prec), (val, rid) in best.items():
        members = [
            mfu[i]
            for i, k in enumerate(runs.chip_keys)
            if chips[k].family == fam and runs.precision[i] == prec
        ]
        assert val == max(members) and rid in ids
    assert ("ampere", "fp16_bf16") in best


def test_blank_plan_search_keeps_the_row_software():
    # BLOOM-176B (unfused attention, Megatron-DeepSpeed): with pp and dp given and tp,
    # cp blank, the search keeps the row's attention kernel, so cp stays 1 (no CP for
    # an unfused attention) and tp takes the remaining factor 4
    from pathlib import Path

    import pandas as pd

    from jaxcost import calibrate

    df = pd.read_csv(Path(__file__).parent / "data" / "production_runs.csv")
    row = df[df.row_id == "P0005"].copy()
    for c in calibrate.PLAN_COLUMNS:
        row[c] = None
    row["pp"], row["dp"], row["recompute"] = 12, 8, "full"
    chips = load_chips()
    runs = calibrate.runs_to_arrays(row, chips, strict=True)
    assert float(np.asarray(runs.plan.flash_attn)[0]) == 0.0
    _, text, _ = calibrate.best_plans_for_missing(default_params(), chips, runs)
    assert "-tp4-pp12-cp1-" in text[0] and text[0].endswith("-unfused-ppb")
