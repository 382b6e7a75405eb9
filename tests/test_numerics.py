"""Numerical safety: no NaN or inf from the cost model for any valid input.

* Every plan ``parallel.enumerate_plans`` returns, for models x chips x chip counts
  including extreme-but-valid ones (1 chip, 16,384 chips, 128k-token sequences with
  context parallelism, MoE with expert parallelism, chips with blank optional specs
  such as an unknown scale-up bandwidth), gets a finite, positive step time and
  finite throughput / MFU; also for random (finite) raw parameter values.

(That a fit stops with ``NumericalError`` on a non-finite loss or gradient, and that
the same data and seed give bit-identical parameters, is tested in ``test_fit.py``.)

The step-time evaluation is one jitted, vmapped function; chips are given neutral
static labels (the default parameters have no per-chip offsets, so the labels do not
change the result) so that every case shares one compilation per model layout.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcost.model.hardware import ClusterSpec, load_chips
from jaxcost.model.params import default_params
from jaxcost.model.step_time import predict_step_time
from jaxcost.model.workload import load_models
from jaxcost.search.space import PlanSpace, enumerate_plans

#: plans evaluated per case (a deterministic spread over the enumerated ones)
MAX_PLANS = 256

#: name -> (model, overrides, chip, chip count, enumerate_plans options)
CASES = {
    "one_chip": ("llama2-7b", {"num_layers": 4.0, "global_batch_seqs": 8.0},
                 "H100-SXM", 1, {}),
    "16k_chips": ("llama3-405b", {"global_batch_seqs": 2048.0}, "H100-SXM", 16384,
                  {"mbs": (1, 2), "vpp": (1, 2), "cp": (1, 2)}),
    "seq128k_cp": ("llama3-8b", {"seq_len": 131072.0, "global_batch_seqs": 32.0},
                   "H200", 64, {"cp": (1, 2, 4, 8, 16, 32), "mbs": (1,)}),
    "moe_ep": ("mixtral-8x7b", {"global_batch_seqs": 256.0}, "MI300X", 64,
               {"ep": None, "mbs": (1, 2)}),
    "no_scaleup_bw": ("llama2-7b", {"global_batch_seqs": 256.0}, "Z100", 32, {}),
    "huge_domain": ("llama2-70b", {"global_batch_seqs": 512.0}, "TPUv5p", 512,
                    {"mbs": (1,), "cp": (1, 2)}),
}


def _neutral(chip):
    """The chip with neutral static labels (one compilation for every chip)."""
    return chip.replace(key="chip", name="chip", vendor="v", family="f",
                        memory_type="m")


@functools.cache
def _case(name: str):
    model, overrides, chip_key, n, opts = CASES[name]
    chip = load_chips()[chip_key]
    w = load_models()[model].replace(**overrides)
    plans = enumerate_plans(w, n, chip, PlanSpace.create(**opts))
    total = int(plans.dp.shape[0])
    assert total > 0, f"{name}: no valid plan"
    idx = np.unique(np.linspace(0, total - 1, min(total, MAX_PLANS)).astype(int))
    idx = np.resize(idx, MAX_PLANS)  # fixed batch size: no recompilation
    plans = jax.tree.map(lambda x: jnp.asarray(x[idx]), plans)
    return _neutral(chip), w.replace(name="w"), float(n), plans, total


@jax.jit
def _evaluate(params, chip, n, w, plans):
    hw = ClusterSpec(chip=chip, num_chips=n)
    st_ = jax.vmap(lambda p: predict_step_time(params, hw, w, p))(plans)
    return st_.total_s, st_.tokens_per_s_per_chip, st_.mfu, st_.memory_bytes, st_


def _assert_finite(name, total, tps, mfu, full):
    for field in ("compute_s", "tp_comm_s", "cp_comm_s", "ep_comm_s", "pp_comm_s",
                  "dp_comm_s", "bubble_s", "optimizer_s", "total_s"):
        v = np.asarray(getattr(full, field))
        assert np.all(np.isfinite(v)), f"{name}: non-finite {field}"
        assert np.all(v >= 0), f"{name}: negative {field}"
    assert np.all(np.asarray(total) > 0), name
    assert np.all(np.isfinite(np.asarray(tps))) and np.all(np.asarray(tps) > 0), name
    assert np.all(np.isfinite(np.asarray(mfu))), name


@pytest.mark.parametrize("name", list(CASES))
def test_enumerated_plans_finite(name):
    chip, w, n, plans, total = _case(name)
    t, tps, mfu, mem, full = _evaluate(default_params(), chip, n, w, plans)
    _assert_finite(name, t, tps, mfu, full)
    assert np.all(np.isfinite(np.asarray(mem))), name


_raw = st.floats(-8.0, 8.0, allow_nan=False)


@settings(max_examples=12, derandomize=True, deadline=None, database=None)
@given(st.sampled_from(list(CASES)), st.lists(_raw, min_size=1, max_size=1),
       st.integers(0, 10**6))
def test_finite_for_random_raw_params(name, shift, which):
    """Any finite raw parameter values (sigmoid / softplus constrained) stay finite."""
    params = default_params()
    leaves, tree = jax.tree.flatten(params.global_raw)
    i = which % len(leaves)
    leaves = [jnp.asarray(shift[0]) if j == i else x for j, x in enumerate(leaves)]
    params = params.replace(global_raw=jax.tree.unflatten(tree, leaves))
    chip, w, n, plans, _ = _case(name)
    t, tps, mfu, _, full = _evaluate(params, chip, n, w, plans)
    _assert_finite(f"{name} raw[{i}]={shift[0]}", t, tps, mfu, full)

