"""Hybrid sharding (ZeRO/FSDP shard groups, ``ParallelPlan.zero_group``): one group of
all data-parallel ranks by default; a smaller group g holds g-th shards, gathers and
reduce-scatters inside the group and all-reduces the shards across the n/g replicas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ClusterSpec, load_chips
from jaxcost.model.parallel import check_plan
from jaxcost.model.params import default_params
from jaxcost.model.plan import plan_from_str, plan_to_str, stack_plans
from jaxcost.model.step_time import predict_step_time
from jaxcost.model.workload import get_model, memory_bytes
from jaxcost.search.space import PlanSpace, enumerate_plans

W = get_model("llama2-7b").replace(global_batch_seqs=64.0)
H100 = load_chips()["H100-SXM"]
CL = ClusterSpec(chip=H100, num_chips=32.0)


def _plan(s):
    return plan_from_str(s)


def test_group_of_all_ranks_is_the_default_and_invalid_groups_are_refused():
    full = _plan("dp32-tp1-pp1-cp1-ep1-vpp1-mbs1-z3-rnone")
    assert float(full.zero_group) == 0.0
    check_plan(W, _plan("dp32-tp1-pp1-cp1-ep1-vpp1-mbs1-z3-rnone-zg8"), 32)
    for bad in ("zg32", "zg5"):  # not smaller than dp·cp / not a divisor
        with pytest.raises(PlanError, match="zero_group"):
            check_plan(W, _plan(f"dp32-tp1-pp1-cp1-ep1-vpp1-mbs1-z3-rnone-{bad}"), 32)
    s = "dp32-tp1-pp1-cp1-ep1-vpp1-mbs2-z2-rsel-zg8-nosp-fp8"
    assert plan_to_str(_plan(s)) == s


@pytest.mark.parametrize("zero", [1, 2, 3])
def test_smaller_groups_hold_more_memory(zero):
    base = f"dp32-tp1-pp1-cp1-ep1-vpp1-mbs1-z{zero}-rnone"
    mems = [
        float(memory_bytes(W, _plan(base + zg)).total)
        for zg in ("", "-zg16", "-zg8", "-zg2")
    ]
    assert all(a < b for a, b in zip(mems, mems[1:], strict=False))


def test_node_sized_groups_keep_zero3_traffic_on_the_scale_up_link():
    # 32 H100 in 8-chip nodes, tp 1: full ZeRO-3 gathers over 32 ranks across nodes
    # every micro-batch; groups of 8 gather inside the node and all-reduce the 1/8
    # shards across nodes once per step
    plans = stack_plans([_plan("dp32-tp1-pp1-cp1-ep1-vpp1-mbs1-z3-rnone"),
                         _plan("dp32-tp1-pp1-cp1-ep1-vpp1-mbs1-z3-rnone-zg8")])

    def total(q):
        st = jax.vmap(lambda pl: predict_step_time(q, CL, W, pl))(plans)
        return jnp.sum(st.total_s), st.dp_comm_s

    (_, dp_comm), g = jax.jit(jax.value_and_grad(total, has_aux=True))(
        default_params())
    assert float(dp_comm[1]) < float(dp_comm[0])
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(g))


def test_the_search_tries_shard_groups_only_where_listed_and_with_zero():
    base = PlanSpace(cp=(1,), pp=(1,), tp=(1,), mbs=(1,))
    plain = enumerate_plans(W, 32, H100, base)
    hybrid = enumerate_plans(W, 32, H100, base.replace(zero_groups=(0, 8)))
    assert set(np.asarray(plain.zero_group).tolist()) == {0.0}
    zg = np.asarray(hybrid.zero_group)
    z = np.asarray(hybrid.zero)
    assert set(zg.tolist()) == {0.0, 8.0}
    assert np.all(z[zg > 0] >= 1)  # no shard group without ZeRO
    assert zg.size == plain.zero.size + np.sum(np.asarray(plain.zero) >= 1)
