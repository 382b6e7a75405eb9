"""``predict_run_batch``: one compiled program for the point estimate, the ensemble,
memory and MFU, checked against op-by-op evaluation (rows are arguments of the
program, not constants that XLA folds)."""

import io

import jax
import numpy as np
import pandas as pd

from jaxcost import calibrate
from jaxcost.calibrate.residuals import pack_params, run_step_times
from jaxcost.calibrate.rows import build_fit_data, x64
from jaxcost.model.hardware import load_chips
from jaxcost.model.params import default_params
from jaxcost.model.workload import memory_bytes

RUNS = """\
row_id,model,layers,hidden,heads,seq_len,vocab,gbs_seqs,n_chips,chip_key,tp,pp,dp
r1,m,24,2048,16,2048,50304,64,8,A100-SXM,1,1,8
r2,m,24,2048,16,2048,50304,64,8,A100-SXM,2,2,2
r3,m,32,4096,32,4096,50304,128,32,H100-SXM,4,2,4
r4,m,30,4096,32,4096,131072,192,96,H100-SXM,2,1,48
r5,m,48,7168,56,4096,131072,192,384,H100-SXM,8,1,48
"""


def _runs(chips):
    df = pd.read_csv(io.StringIO(RUNS))
    df["target"] = "step_time_s"
    df["step_time_s"] = 1.0
    return calibrate.runs_to_arrays(df, chips, strict=True)


def test_predict_equals_op_by_op_evaluation_with_and_without_ensemble():
    chips = load_chips()
    runs = _runs(chips)
    params = default_params()
    # two ensemble members: the point estimate and a copy shifted by 0.1 in raw space
    ens = jax.tree.map(lambda x: np.stack([np.asarray(x), np.asarray(x) + 0.1]), params)
    alone = calibrate.predict_run_batch(params, chips, runs)
    with_ens = calibrate.predict_run_batch(params, chips, runs, ensemble=ens)
    with x64():
        fd = build_fit_data(chips, runs=runs)
        # eager: each operation is dispatched on its own with the rows as arguments,
        # so nothing is fused or folded across the model (it has no inner jit; only
        # jnp's own small helpers such as where are compiled as a unit). disable_jit
        # gave the same step times to the last bit, at twice the CPU time.
        st = run_step_times(pack_params(params, fd), fd)
        mem = jax.vmap(lambda w, p: memory_bytes(w, p).total)(
            fd.runs.workload, fd.runs.plan)
    t = np.asarray(st.total_s)
    # same operations, so agreement to rounding (XLA may fuse differently: 1e-12)
    np.testing.assert_allclose(alone["pred_step_time_s"], t, rtol=1e-12)
    np.testing.assert_allclose(with_ens["pred_step_time_s"], t, rtol=1e-12)
    np.testing.assert_allclose(alone["pred_mem_bytes_per_chip"], np.asarray(mem),
                               rtol=1e-12)
    # no ensemble and no residual pool: the interval is the point
    np.testing.assert_allclose(alone["pred_step_time_s_lo"], t, rtol=1e-12)
    np.testing.assert_allclose(alone["pred_step_time_s_hi"], t, rtol=1e-12)
    # the ensemble's interval spans its two members (the 5 and 95 % quantiles)
    assert np.all(with_ens["pred_step_time_s_lo"] < with_ens["pred_step_time_s_hi"])
