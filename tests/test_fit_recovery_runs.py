"""Recovery of the training-run parameters (overlaps, fixed costs) by the joint fit.

Synthetic training runs are generated with ``predict_step_time`` under known parameters
(kernel and collective rows pin the roofline and link parameters, as in the real fit);
the fit must recover the parameters that only the runs identify.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import synthetic_batches

from jaxcost import calibrate as F
from jaxcost.calibrate import RunBatch
from jaxcost.model.hardware import ClusterSpec, load_chips
from jaxcost.model.params import default_params, physical
from jaxcost.model.plan import ParallelPlan, Recompute, stack_plans
from jaxcost.model.step_time import predict_step_time
from jaxcost.model.workload import load_models, stack_models

CHIPS = load_chips()
KEY = "A100-SXM"
#: Run-identified parameters moved away from their priors (raw-space offsets).
MOVES = {"tp_overlap_frac": 1.5, "dp_overlap_frac": -0.8, "overhead_frac": 1.0,
         "pp_overlap_frac": 0.7}


def _truth():
    p = default_params()
    g = p.global_raw.replace(**{k: getattr(p.global_raw, k) + v
                                for k, v in MOVES.items()})
    return p.replace(global_raw=g)


def _plans():
    # tp, pp, dp, mbs, recompute on 64 chips: TP-heavy, DP-heavy and pipelined plans
    return [(8, 1, 8, 1, Recompute.SELECTIVE), (4, 2, 8, 2, Recompute.NONE),
            (2, 4, 8, 1, Recompute.FULL), (1, 1, 64, 1, Recompute.FULL),
            (8, 8, 1, 1, Recompute.SELECTIVE), (2, 1, 32, 2, Recompute.SELECTIVE),
            (8, 2, 4, 1, Recompute.NONE), (1, 4, 16, 1, Recompute.FULL)]


def _runs(truth):
    models = load_models()
    ws, ps, ts = [], [], []
    for name in ("korthikanti-22b", "llama2-13b"):
        w = models[name].replace(global_batch_seqs=256.0)
        for tp, pp, dp, mbs, rec in _plans():
            plan = ParallelPlan.create(dp=dp, tp=tp, pp=pp, mbs=mbs, recompute=rec)
            st = predict_step_time(truth, ClusterSpec(chip=CHIPS[KEY], num_chips=64.0),
                                   w, plan)
            ws.append(w.replace(name="batch"))
            ps.append(plan)
            ts.append(float(st.total_s))
    n = len(ts)
    return RunBatch(
        row_ids=tuple(f"R{i}" for i in range(n)), chip_keys=(KEY,) * n,
        groups=tuple(f"r{i % 4}" for i in range(n)), precision=("bf16",) * n,
        workload=stack_models(ws), plan=stack_plans(ps),
        num_chips=jnp.full(n, 64.0), target_value=jnp.asarray(ts),
        target_kind=jnp.zeros(n, dtype=jnp.int32), weight=jnp.ones(n),
        plan_missing=jnp.zeros(n, dtype=bool), peak_flop_per_s=jnp.full(n, jnp.nan),
        scaleout_bytes_per_s=jnp.full(n, jnp.nan), excluded=())


@pytest.fixture(scope="module")
def run_fit():
    truth = _truth()
    # kernel + collective rows, A100 and H100
    kern, coll = synthetic_batches(truth, CHIPS, ("A100-SXM", "H100-SXM"))
    fd = F.build_fit_data(CHIPS, runs=_runs(truth), kernels=kern, collectives=coll)
    opts = F.FitOptions(prior_weight=1e-8, adam_steps=300, lbfgs_steps=300, chunk=600)
    return truth, fd, F.fit_params(fd, options=opts)


def test_runs_recover_overlaps_and_overhead(run_fit):
    truth, fd, res = run_fit
    assert res.loss < 1e-5
    got, want = physical(res.params, CHIPS[KEY]), physical(truth, CHIPS[KEY])
    for name in MOVES:
        np.testing.assert_allclose(float(getattr(got, name)),
                                   float(getattr(want, name)), rtol=2e-2, err_msg=name)
    # and the step times themselves
    np.testing.assert_allclose(np.expm1(np.abs(res.step_log_residuals)), 0.0, atol=1e-3)
