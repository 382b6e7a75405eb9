"""Numerical safety: no NaN/inf for valid inputs; fits fail loudly and reproducibly.

* Every plan ``parallel.enumerate_plans`` returns, for models x chips x chip counts
  including extreme-but-valid ones (1 chip, 16,384 chips, 128k-token sequences with
  context parallelism, MoE with expert parallelism, chips with blank optional specs
  such as an unknown scale-up bandwidth), gets a finite, positive step time and
  finite throughput / MFU; also for random (finite) raw parameter values.
* A fit whose loss or gradient turns non-finite stops with ``NumericalError``.
* A fit with the same data and seed gives bit-identical parameters.

The step-time evaluation is one jitted, vmapped function; chips are given neutral
static labels (the default parameters have no per-chip offsets, so the labels do not
change the result) so that every case shares one compilation per model layout.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcost.errors import NumericalError
from jaxcost.hardware import ClusterSpec, load_chips
from jaxcost.params import default_params
from jaxcost.parallel import enumerate_plans
from jaxcost.step_time import predict_step_time
from jaxcost.workload import load_models

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
    "moe_ep_deepseek": ("deepseek-v3", {"global_batch_seqs": 1024.0}, "H800-SXM", 1024,
                        {"ep": None, "mbs": (1,), "vpp": (1,), "cp": (1,)}),
    "no_scaleup_bw": ("llama2-7b", {"global_batch_seqs": 256.0}, "Z100", 32, {}),
    "pcie_domain1": ("llama2-13b", {"global_batch_seqs": 128.0}, "L40S", 64, {}),
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
    plans = enumerate_plans(w, n, chip, **opts)
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


# ------------------------------------------------------------------------------ fit
@functools.cache
def _tiny_fit_data():
    from jaxcost import data, fit

    df = data.load_benchmarks("collectives")
    df = df[df["chip_key"].notna()].head(20)
    return fit.build_fit_data(load_chips(), collectives=data.collectives_to_arrays(df))


@pytest.mark.slow
def test_fit_bit_identical_and_non_finite_start_raises():
    """Same data and options: bit-identical parameters; a NaN start: NumericalError."""
    from jaxcost import fit

    fd = _tiny_fit_data()
    opts = fit.FitOptions(adam_steps=10, lbfgs_steps=5, chunk=10)
    r1 = fit.fit(fd, options=opts)
    r2 = fit.fit(fd, options=opts)
    a, b = jax.tree.leaves(r1.params), jax.tree.leaves(r2.params)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
    assert math.isfinite(r1.loss) and r1.loss == r2.loss
    w1 = fit.bootstrap_weights(fd, 5, seed=3)
    w2 = fit.bootstrap_weights(fd, 5, seed=3)
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)

    start = fit.initial_params(fd)
    leaves, tree = jax.tree.flatten(start.global_raw)
    leaves[0] = jnp.asarray(math.nan)
    bad = start.replace(global_raw=jax.tree.unflatten(tree, leaves))
    with pytest.raises(NumericalError, match="non-finite") as info:
        fit.fit(fd, options=opts, params0=bad)
    assert "\n" not in str(info.value)
