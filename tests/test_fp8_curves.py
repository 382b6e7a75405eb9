"""FP8 as a plan dimension of the chip-mix throughput curves: the plan carries its
precision (``fp8`` leaf, ``-fp8`` in its text), so every later evaluation of the plan
string (mixed clusters, experiment intervals) times it at the FP8 peak."""

import numpy as np
import pytest

from jaxcost.errors import ScenarioError
from jaxcost.model.hardware import ClusterSpec, Precision, load_chips
from jaxcost.model.params import default_params
from jaxcost.model.plan import Recompute, plan_from_str, plan_to_str
from jaxcost.model.step_time import predict_step_time
from jaxcost.model.workload import get_model
from jaxcost.policy.scenario import load_scenario
from jaxcost.search.curves import throughput_curves
from jaxcost.search.space import PlanSpace

_SMALL = PlanSpace(cp=(1,), zero_stages=(1,), recompute=(Recompute.NONE,), mbs=(1,),
                   pp=(1, 2), recompute_lite=(False,))


def test_curves_search_fp8_where_the_chip_has_it_and_the_plan_says_so():
    chips = load_chips()
    w = get_model("llama2-7b").replace(global_batch_seqs=32.0)
    params = default_params()
    types = [chips["H100-SXM"], chips["A100-SXM"]]
    counts = [np.asarray([16]), np.asarray([16])]
    both = _SMALL.replace(precisions=(Precision.BF16, Precision.FP8))
    bf16 = throughput_curves(params, w, types, counts, space=_SMALL)
    mixed = throughput_curves(params, w, types, counts, space=both)
    h100, a100 = mixed
    # the H100 (FP8 tensor cores) runs FP8 and is faster than its BF16-only curve;
    # the A100 (none) keeps BF16 and its curve is unchanged
    assert h100.precisions == ("fp8",)
    assert all("-fp8" in p for p in h100.plans)
    assert np.all(h100.tokens_per_s > 1.2 * bf16[0].tokens_per_s)
    assert a100.precisions == ("bf16",)
    assert not any("-fp8" in p for p in a100.plans)
    np.testing.assert_allclose(a100.tokens_per_s, bf16[1].tokens_per_s, rtol=1e-12)
    # the same plan count is searched (each plan once per precision)
    assert np.array_equal(h100.num_plans, bf16[0].num_plans)
    # the plan text round-trips and times at FP8 without a precision argument
    plan = plan_from_str(h100.plans[0])
    assert plan_to_str(plan) == h100.plans[0] and float(plan.fp8) == 1.0
    st = predict_step_time(params, ClusterSpec(chip=types[0], num_chips=16.0), w, plan)
    np.testing.assert_allclose(float(st.total_s), h100.step_s[0], rtol=1e-9)
    st_f = predict_step_time(params, ClusterSpec(chip=types[0], num_chips=16.0), w,
                             plan.replace(fp8=0.0), precision="fp8")
    np.testing.assert_allclose(float(st_f.total_s), h100.step_s[0], rtol=1e-9)
    assert float(st.mfu) <= 1.0


def test_scenario_precisions_option(tmp_path):
    base = (
        'regime = "2025-04"\n[model]\nname = "llama2-7b"\n[training]\ntokens = 1e12\n'
        '[chips]\ncandidates = ["H100-SXM"]\n[search]\n'
    )
    d = tmp_path
    ok = d / "ok.toml"
    ok.write_text(base + 'precisions = ["bf16", "fp8"]\n')
    space = load_scenario(ok).search.plan_space()
    assert space.precisions == (Precision.BF16, Precision.FP8)
    default = d / "default.toml"
    default.write_text(base)
    assert load_scenario(default).search.plan_space().precisions == (
        Precision.BF16,
    )
    for bad, msg in (('["int4"]', "int4"), ("[]", "non-empty"),
                     ('["fp8", "fp8"]', "twice")):
        f = d / "bad.toml"
        f.write_text(base + f"precisions = {bad}\n")
        with pytest.raises(ScenarioError, match=msg) as err:
            load_scenario(f)
        assert "search.precisions" in str(err.value)
        assert "\n" not in str(err.value)
