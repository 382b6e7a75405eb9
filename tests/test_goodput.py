"""Tests of jaxcost.model.goodput (failures, checkpoints and restarts -> goodput)."""

import csv
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_tree_allclose
from jax.test_util import check_grads

from jaxcost.errors import DataError
from jaxcost.model.goodput import (
    GoodputParams,
    goodput_frac,
    goodput_frac_range,
    goodput_variants,
    load_goodput_params,
    optimal_checkpoint_interval_s,
    time_to_train_with_goodput_s,
)

GOODPUT_CSV = Path(__file__).resolve().parents[1] / "data" / "goodput.csv"
# Property tests evaluate whole grids at once through one compiled function (the
# functions broadcast elementwise); eager == jit is checked separately below.
_goodput = jax.jit(goodput_frac)
COLUMNS = ["name", "value", "unit", "source", "source_locator", "kind", "notes"]


def _params(rate, restart, write, dtype=jnp.float64):
    return GoodputParams(
        failure_rate_per_chip_s=jnp.asarray(rate, dtype=dtype),
        restart_s=jnp.asarray(restart, dtype=dtype),
        checkpoint_write_s=jnp.asarray(write, dtype=dtype),
    )


def _csv_rows():
    with open(GOODPUT_CSV, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _csv_value(name):
    (row,) = [r for r in _csv_rows() if r["name"] == name]
    return float(row["value"])


def _variants():
    fields = ("failure_rate_per_chip_s", "restart_s", "checkpoint_write_s")
    return sorted({r["name"].split("__", 1)[1] for r in _csv_rows()
                   if "__" in r["name"] and r["name"].split("__", 1)[0] in fields})


# ------------------------------------------------------------------ golden case


def test_golden_case_by_hand():
    # lambda = 1e-8 /chip/s, N = 1000 -> Lambda = 1e-5 /s, M = 1e5 s.
    # delta = 5 s -> tau = sqrt(2 * 5 * 1e5) = 1000 s exactly.  R = 1000 s.
    # Daly: goodput = e^{-Lambda R} Lambda tau / (e^{Lambda (tau + delta)} - 1)
    #              = e^{-0.01} * 0.01 / (e^{0.01005} - 1) = 0.98018225517...
    params = _params(1e-8, 1000.0, 5.0)
    tau = optimal_checkpoint_interval_s(params, 1000)
    np.testing.assert_allclose(tau, 1000.0, rtol=1e-12)  # closed form in x64
    by_hand = math.exp(-0.01) * 0.01 / math.expm1(0.01005)
    g = goodput_frac(params, 1000)
    np.testing.assert_allclose(g, by_hand, rtol=1e-12)
    np.testing.assert_allclose(g, 0.98018225517, rtol=1e-10)  # the value above
    # First-order waste sqrt(2 delta / M) + R / M = 0.01 + 0.01; the neglected
    # second-order terms are O(0.02^2) = 4e-4.
    np.testing.assert_allclose(1.0 - g, 0.02, atol=4e-4)
    t = time_to_train_with_goodput_s(86400.0, params, 1000)
    np.testing.assert_allclose(t, 86400.0 / by_hand, rtol=1e-12)


@pytest.mark.parametrize("num_chips", [1, 8, 1024, 16384, 100_000])
@pytest.mark.parametrize("rate", [1e-9, 5.5e-9, 2e-8])
@pytest.mark.parametrize("restart, write", [(600.0, 5.0), (60.0, 300.0), (0.0, 40.0)])
def test_closed_form_equals_daly_expression(num_chips, rate, restart, write):
    params = _params(rate, restart, write)
    lam = num_chips * rate
    tau = math.sqrt(2.0 * write / lam)
    daly = lam * tau * math.exp(-lam * restart) / math.expm1(lam * (tau + write))
    np.testing.assert_allclose(optimal_checkpoint_interval_s(params, num_chips), tau,
                               rtol=1e-12)  # closed form in x64
    np.testing.assert_allclose(goodput_frac(params, num_chips), daly, rtol=1e-12)


# ------------------------------------------------------------------ properties


@pytest.mark.parametrize("rate", [0.0, 1e-12, 5.5e-9, 2e-8, 1e-7])
@pytest.mark.parametrize("restart, write", [(600.0, 5.0), (7200.0, 300.0), (0.0, 0.0)])
def test_goodput_in_unit_interval(rate, restart, write):
    num_chips = jnp.array([1.0, 2.0, 64.0, 1024.0, 16384.0, 131072.0])
    g = _goodput(_params(rate, restart, write), num_chips)
    assert np.all(g > 0.0) and np.all(g <= 1.0)


def test_decreasing_in_num_chips():
    params = load_goodput_params()
    num_chips = jnp.array([1.0, 2.0, 8.0, 64.0, 1024.0, 2048.0, 16384.0, 1e5, 1e6])
    g = _goodput(params, num_chips)
    assert np.all(np.diff(np.asarray(g)) < 0.0)
    # Smooth in N: the derivative is negative everywhere, including N = 1.
    dg = jax.jit(jax.vmap(jax.grad(goodput_frac, argnums=1), in_axes=(None, 0)))(
        params, num_chips)
    assert np.all(np.asarray(dg) < 0.0)


def test_decreasing_in_failure_rate_restart_and_write():
    grid = jnp.array([0.0, 1e-10, 1e-9, 5e-9, 1e-8, 1e-7])
    for params in (_params(grid, 600.0, 5.0),
                   _params(5e-9, grid * 3.6e10, 5.0),  # restart 0 .. 3600 s
                   _params(5e-9, 600.0, grid * 1e9)):  # write 0 .. 100 s
        g = _goodput(params, 4096.0)
        assert np.all(np.diff(np.asarray(g)) < 0.0)


def test_tends_to_one_as_failure_rate_tends_to_zero():
    params = load_goodput_params()
    np.testing.assert_allclose(goodput_frac(params.replace(
        failure_rate_per_chip_s=jnp.asarray(0.0)), 16384), 1.0, rtol=1e-15)
    rates = np.array([1e-12, 1e-15, 1e-18, 1e-21])
    waste = 1.0 - np.asarray(_goodput(params.replace(
        failure_rate_per_chip_s=jnp.asarray(rates)), 16384.0))
    # First order: sqrt(2 delta Lambda) + Lambda R; the next terms are smaller.
    lam = 16384 * rates
    bound = np.sqrt(2.0 * float(params.checkpoint_write_s) * lam) + lam * float(
        params.restart_s)
    assert np.all(waste >= 0.0) and np.all(waste <= 1.01 * bound + 1e-15)
    assert np.all(np.diff(waste) < 0.0)


def test_zero_costs_give_goodput_one():
    np.testing.assert_allclose(goodput_frac(_params(1e-8, 0.0, 0.0), 16384), 1.0,
                               rtol=1e-15)


# ------------------------------------------------------------------ published


def test_reproduces_llama3_effective_training_time():
    # Llama 3 (arXiv:2407.21783, Sec. 3.3.4): "higher than 90% effective training
    # time" on 16K H100 with the default (Llama 3) failure rate. The published number
    # is a floor, so the model must not fall below it (no tolerance below: the
    # failure rate itself comes from the same run). Above it we allow the style
    # guide's smallest tolerance for published measurements, 5 % of 0.90: the
    # paper's >90 % also contains the 47 planned interruptions and other losses
    # this model leaves out, so the model may sit a little above 0.90, but a value
    # beyond 0.945 would mean the 419 failures cost almost nothing.
    floor = _csv_value("effective_training_time_frac__llama3")
    num_chips = _csv_value("num_chips__llama3")
    g = float(goodput_frac(load_goodput_params(), num_chips))
    assert floor <= g <= floor * 1.05, g


def test_consistent_with_megascale_effective_training_time():
    # MegaScale (arXiv:2402.15627, Sec. 6.3): "over 90% effective training time
    # rate" on more than 10,000 GPUs. One-sided floor, checked with MegaScale's own
    # failure rate and the default (MegaScale-sourced) restart and write times.
    floor = _csv_value("effective_training_time_frac__megascale")
    num_chips = _csv_value("num_chips__megascale")
    g = float(goodput_frac(load_goodput_params(variant="megascale"), num_chips))
    assert floor <= g <= 1.0, g


def test_time_to_train_grows_with_failures():
    params = load_goodput_params()
    compute_s = 1e6
    t = time_to_train_with_goodput_s(compute_s, params, 16384)
    assert t > compute_s
    np.testing.assert_allclose(t * goodput_frac(params, 16384), compute_s,
                               rtol=1e-12)  # closed form in x64


# ------------------------------------------------------------------ transforms


def test_jit_equals_eager():
    params = load_goodput_params()
    for f in (goodput_frac, optimal_checkpoint_interval_s):
        np.testing.assert_allclose(jax.jit(f)(params, 2048), f(params, 2048),
                                   rtol=1e-12)  # same float64 ops
    np.testing.assert_allclose(
        jax.jit(time_to_train_with_goodput_s)(1e6, params, 2048),
        time_to_train_with_goodput_s(1e6, params, 2048), rtol=1e-12)


def test_vmap_equals_loop():
    rates = [1e-9, 5e-9, 2e-8, 0.0]
    restarts = [600.0, 7200.0, 60.0, 600.0]
    writes = [5.0, 40.0, 300.0, 5.0]
    chips = [1.0, 1024.0, 16384.0, 2048.0]
    batch = _params(rates, restarts, writes)
    n = jnp.asarray(chips)
    for f in (goodput_frac, optimal_checkpoint_interval_s):
        got = jax.vmap(f)(batch, n)
        want = [f(_params(r, s, w), c)
                for r, s, w, c in zip(rates, restarts, writes, chips, strict=True)]
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12)


@pytest.mark.parametrize("rate, restart, write, num_chips", [
    (5e-9, 600.0, 5.0, 1.0),
    (5e-9, 600.0, 5.0, 16384.0),
    (2e-8, 7200.0, 40.0, 1024.0),
])
def test_check_grads(rate, restart, write, num_chips):
    # check_grads perturbs every input by the same absolute step, so each input is
    # passed as an O(1) multiplier of its typical scale (rates are ~1e-9 /s).
    scale = jnp.array([rate, restart, write, num_chips])

    def unpack(x):
        y = x * scale
        return _params(y[0], y[1], y[2]), y[3]

    x0 = jnp.ones(4)
    check_grads(lambda x: goodput_frac(*unpack(x)), (x0,), order=1,
                modes=("fwd", "rev"))
    check_grads(lambda x: optimal_checkpoint_interval_s(*unpack(x)), (x0,), order=1,
                modes=("fwd", "rev"))
    check_grads(lambda x, c: time_to_train_with_goodput_s(c * 86400.0, *unpack(x)),
                (x0, 1.0), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("rate, restart, write, num_chips", [
    (5e-9, 600.0, 5.0, 16384.0),
    (0.0, 600.0, 5.0, 1.0),        # no failures: sqrt and h(s) at 0
    (5e-9, 0.0, 0.0, 1.0),     # free checkpoints and restarts
    (1e-12, 600.0, 5.0, 1.0),      # tiny Lambda delta, series branch of h
    (1e-5, 7200.0, 300.0, 1e6),    # Lambda = 10 /s: goodput underflows to ~0
])
def test_gradients_finite(dtype, rate, restart, write, num_chips):
    params = _params(rate, restart, write, dtype=dtype)
    n = jnp.asarray(num_chips, dtype=dtype)
    for f in (goodput_frac, optimal_checkpoint_interval_s,
              lambda p, k: time_to_train_with_goodput_s(jnp.asarray(1e6, dtype), p,
                                                        k)):
        value = f(params, n)
        grads = jax.grad(f, argnums=(0, 1))(params, n)
        assert value.dtype == dtype
        leaves = jax.tree.leaves(grads)
        assert all(leaf.dtype == dtype for leaf in leaves)
        if f is not goodput_frac:
            continue  # time_to_train is inf where goodput underflows (last case)
        assert np.isfinite(np.asarray(value))
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_gradients_finite_time_and_interval(dtype):
    params = _params(5e-9, 600.0, 5.0, dtype=dtype)
    for n in (1.0, 1024.0, 16384.0):
        k = jnp.asarray(n, dtype=dtype)
        for f in (optimal_checkpoint_interval_s,
                  lambda p, m: time_to_train_with_goodput_s(jnp.asarray(1e6, dtype),
                                                            p, m)):
            grads = jax.grad(f, argnums=(0, 1))(params, k)
            assert all(np.all(np.isfinite(np.asarray(leaf)))
                       for leaf in jax.tree.leaves(grads))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_interval_at_zero_failure_rate_finite(dtype):
    """A zero failure rate is clamped to the dtype's guard (``numerics.tiny_like``),
    not a fixed 1e-30 (whose inverse square overflows float32): the interval is huge
    but finite, and its gradients are finite, in float32 and float64."""
    params = _params(0.0, 600.0, 5.0, dtype=dtype)
    n = jnp.asarray(1024.0, dtype=dtype)
    tau = optimal_checkpoint_interval_s(params, n)
    assert tau.dtype == dtype
    assert np.isfinite(np.asarray(tau)) and float(tau) > 1e9  # > 30 years
    grads = jax.grad(optimal_checkpoint_interval_s, argnums=(0, 1))(params, n)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))


def test_float32_matches_float64():
    p64 = load_goodput_params()
    p32 = jax.tree.map(lambda x: x.astype(jnp.float32), p64)
    for n in (1024, 2048, 16384):
        np.testing.assert_allclose(goodput_frac(p32, jnp.float32(n)),
                                   goodput_frac(p64, n), rtol=1e-5)  # float32 eps


# ------------------------------------------------------------------ data


def test_every_row_has_a_source():
    rows = _csv_rows()
    assert rows
    with open(GOODPUT_CSV, newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == COLUMNS
    for row in rows:
        assert row["source"].startswith("https://"), row["name"]
        assert row["source_locator"].strip(), row["name"]
        assert row["kind"] in ("measured", "estimated"), row["name"]
        assert row["notes"].strip(), row["name"]
        assert math.isfinite(float(row["value"])) and float(row["value"]) >= 0.0


def test_loader_default_and_variants():
    params = load_goodput_params()
    np.testing.assert_allclose(params.failure_rate_per_chip_s,
                               _csv_value("failure_rate_per_chip_s"), rtol=0)
    np.testing.assert_allclose(params.restart_s, _csv_value("restart_s"), rtol=0)
    np.testing.assert_allclose(params.checkpoint_write_s,
                               _csv_value("checkpoint_write_s"), rtol=0)
    # the same file read twice: identical records
    assert_tree_allclose(load_goodput_params(GOODPUT_CSV), params, rtol=0, atol=0)
    variants = _variants()
    assert {"opt175b", "bloom", "megascale"} <= set(variants)
    for variant in variants:
        p = load_goodput_params(variant=variant)
        assert 0.0 < float(goodput_frac(p, 1024)) <= 1.0
    opt = load_goodput_params(variant="opt175b")
    np.testing.assert_allclose(opt.failure_rate_per_chip_s,
                               _csv_value("failure_rate_per_chip_s__opt175b"), rtol=0)
    # A field without a variant row falls back to the default row.
    np.testing.assert_allclose(opt.checkpoint_write_s,
                               _csv_value("checkpoint_write_s"), rtol=0)


def _write_bad(tmp_path, edit):
    rows = [dict(r) for r in _csv_rows()]
    columns = list(COLUMNS)
    rows, columns = edit(rows, columns)
    path = tmp_path / "goodput.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _set(index, column, value):
    def edit(rows, columns):
        rows[index][column] = value
        return rows, columns
    return edit


def _drop_column(column):
    def edit(rows, columns):
        return rows, [c for c in columns if c != column]
    return edit


@pytest.mark.parametrize("edit, row, column", [
    (_set(1, "source", ""), 2, "source"),
    (_set(0, "source_locator", " "), 1, "source_locator"),
    (_set(2, "value", "abc"), 3, "value"),
    (_set(0, "value", "-1e-9"), 1, "value"),
    (_set(0, "value", "inf"), 1, "value"),
    (_set(0, "unit", "per_chip_h"), 1, "unit"),
    (_set(3, "kind", "guess"), 4, "kind"),
    (_set(4, "name", "failure_rate_per_chip_s"), 5, "name"),
    (_drop_column("source"), None, "source"),
])
def test_bad_csv_raises_data_error(tmp_path, edit, row, column):
    path = _write_bad(tmp_path, edit)
    with pytest.raises(DataError) as info:
        load_goodput_params(path)
    err = info.value
    assert err.row == row and err.column == column
    assert str(path) in str(err)
    assert row is None or f"row {row} (line {row + 1})" in str(err)
    assert f"column '{column}'" in str(err)


def test_unknown_variant_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown variant 'nope'.*opt175b"):
        load_goodput_params(variant="nope")
    with pytest.raises(DataError, match="cannot read"):
        load_goodput_params(tmp_path / "absent.csv")
    path = _write_bad(tmp_path, lambda rows, cols: (
        [r for r in rows if r["name"] != "restart_s"], cols))
    with pytest.raises(DataError, match="missing default row 'restart_s'"):
        load_goodput_params(path)


# ------------------------------------------------------------------ ranges


def test_variants_listed_default_first():
    v = goodput_variants()
    assert v[0] == "default" and list(v[1:]) == _variants()
    for name in v:
        load_goodput_params(variant=name)  # every listed set loads


@pytest.mark.parametrize("num_chips", [384, 2048, 16384])
def test_range_brackets_default_and_equals_extremes(num_chips):
    lo, mid, hi = goodput_frac_range(num_chips)
    values = [float(goodput_frac(load_goodput_params(variant=v), num_chips))
              for v in goodput_variants()]
    assert 0.0 < lo <= mid <= hi <= 1.0
    np.testing.assert_allclose((lo, hi), (min(values), max(values)), rtol=1e-12)
    np.testing.assert_allclose(
        mid, float(goodput_frac(load_goodput_params(), num_chips)), rtol=1e-12)
    # time to train = compute / goodput: the interval is compute/hi .. compute/lo
    t = float(time_to_train_with_goodput_s(86400.0, load_goodput_params(), num_chips))
    assert 86400.0 / hi <= t * (1 + 1e-12) and t <= 86400.0 / lo * (1 + 1e-12)


def test_range_widens_with_num_chips():
    lo_small, _, _ = goodput_frac_range(1024)
    lo_big, _, _ = goodput_frac_range(16384)
    assert lo_big < lo_small
