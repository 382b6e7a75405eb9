"""Tests of jaxcost.fit and of the fit / predict subcommands."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import synthetic_batches

from jaxcost import calibrate as F
from jaxcost.cli import main
from jaxcost.errors import NumericalError
from jaxcost.model.hardware import load_chips
from jaxcost.model.params import (
    default_params,
    log_prior,
    physical,
    save_params,
    with_offsets,
)

CHIPS = load_chips()
KEYS = ("A100-SXM", "H100-SXM")


def _truth():
    """Known parameters: the priors moved in the fitted directions."""
    p = default_params()
    g = p.global_raw.replace(
        mm_eff_max=p.global_raw.mm_eff_max + 0.4,
        mm_half_flop=p.global_raw.mm_half_flop - 0.5,
        hbm_eff_max=p.global_raw.hbm_eff_max - 0.3,
        scaleup_bw_eff=p.global_raw.scaleup_bw_eff + 0.3,
        scaleup_latency_s=p.global_raw.scaleup_latency_s + 0.5,
    )
    return p.replace(global_raw=g)


def _synthetic(truth):
    """GEMM, HBM-stream and all-reduce rows generated with roofline / collectives."""
    kern, coll = synthetic_batches(truth, CHIPS, KEYS)
    return F.build_fit_data(CHIPS, kernels=kern, collectives=coll)


OPTS = F.FitOptions(prior_weight=1e-8, adam_steps=150, lbfgs_steps=100, chunk=250)


@pytest.fixture(scope="module")
def synthetic_fit():
    truth = _truth()
    data = _synthetic(truth)
    return truth, data, F.fit_params(data, options=OPTS)


def test_recovery_of_known_parameters(synthetic_fit):
    truth, data, res = synthetic_fit
    # generated without noise: the residuals vanish at the optimum
    assert res.loss < 1e-6
    for key in KEYS:
        got, want = physical(res.params, CHIPS[key]), physical(truth, CHIPS[key])
        for name in ("mm_eff_max", "hbm_eff_max", "scaleup_bw_eff"):
            # identified by large ops: recovered to 1 % (tolerance of the fit, not of
            # the model, which is exact here)
            np.testing.assert_allclose(float(getattr(got, name)),
                                       float(getattr(want, name)), rtol=1e-2)
        np.testing.assert_allclose(float(got.mm_half_flop), float(want.mm_half_flop),
                                   rtol=5e-2)


def test_same_data_same_seed_bit_identical(synthetic_fit):
    _, data, res = synthetic_fit
    again = F.fit_params(data, options=OPTS)
    a = np.asarray(F.pack_params(res.params, data))
    b = np.asarray(F.pack_params(again.params, data))
    assert np.array_equal(a, b)
    assert np.array_equal(res.loss_history, again.loss_history)


def test_packed_prior_equals_log_prior(synthetic_fit):
    _, data, res = synthetic_fit
    with jax.enable_x64(True):
        m = F.pack_params(res.params, data)
        mu, sig = F.prior_tables(data)
        got = float(F.log_prior_packed(m, data, (jnp.asarray(mu), jnp.asarray(sig))))
    np.testing.assert_allclose(got, float(log_prior(res.params)), rtol=1e-12)


def test_unpack_roundtrip(synthetic_fit):
    _, data, _ = synthetic_fit
    with jax.enable_x64(True):
        p = with_offsets(default_params(), families=data.family_keys,
                         chips=data.chip_keys)
        m = F.pack_params(p, data)
        back = F.pack_params(F.unpack_params(m, data), data)
    np.testing.assert_array_equal(np.asarray(m), np.asarray(back))


def test_non_finite_loss_raises(synthetic_fit):
    _, data, _ = synthetic_fit
    bad = data.replace(kernels=data.kernels.replace(
        obs=data.kernels.obs.at[0].set(jnp.nan)))
    with pytest.raises(NumericalError, match="non-finite"):
        F.fit_params(bad, options=F.FitOptions(adam_steps=2, lbfgs_steps=0, chunk=2))


def test_bootstrap_weights_grouped():
    data = _synthetic(_truth())
    w = F.bootstrap_weights(data, 7, seed=3)
    g = np.asarray(data.label("kernels", "group"))
    for row in w["kernels"]:
        for grp in set(g):  # every row of a group carries the same multiplicity
            assert len(set(row[g == grp])) == 1
        assert row.sum() == len(g)  # as many draws as groups, groups of equal size
    again = F.bootstrap_weights(data, 7, seed=3)
    assert all(np.array_equal(w[d], again[d]) for d in w)


# ------------------------------------------------------------------ command line

RUN_HEADER = ("row_id,model,layers,hidden,heads,seq_len,vocab,gbs_seqs,n_chips,"
              "chip_key,tp,pp,dp\n")
GOOD_ROW = "r1,m,24,2048,16,2048,50304,64,8,A100-SXM,1,1,8\n"


@pytest.fixture()
def params_json(tmp_path):
    path = tmp_path / "p.json"
    save_params(path, default_params(), {"test": True})
    return path


@pytest.mark.parametrize("body,needle", [
    ("row_id,model,layers,hidden,heads,seq_len,vocab,gbs_seqs,chip_key\n"
     "r1,m,24,2048,16,2048,50304,64,A100-SXM\n", "n_chips"),
    (RUN_HEADER + "r1,m,24,2048,16,2048,50304,64,eight,A100-SXM,1,1,8\n", "n_chips"),
    (RUN_HEADER + "r1,m,24,2048,16,2048,50304,64,-8,A100-SXM,1,1,8\n", "n_chips"),
    (RUN_HEADER + "r1,m,24,2048,16,2048,50304,64,8,NoSuchChip,1,1,8\n", "NoSuchChip"),
    (RUN_HEADER + "r1,m,24,2048,16,2048,50304,64,8,A100-SXM,2,1,8\n", "dp"),
    (RUN_HEADER.replace("\n", ",scaleout_bytes_per_s\n")
     + GOOD_ROW.replace("\n", ",-1\n"), "scaleout_bytes_per_s"),
])
def test_predict_bad_input(tmp_path, capsys, params_json, body, needle):
    runs = tmp_path / "runs.csv"
    runs.write_text(body)
    out = tmp_path / "pred.csv"
    code = main(["predict", str(runs), "--out", str(out), "--params", str(params_json)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err
    assert not out.exists()


def test_predict_and_fit_bad_input_exit_2(tmp_path, capsys, params_json):
    # in process (the exit status of the real `python -m jaxcost` is tested by the
    # subprocess cases of test_cli_errors.py, fit and predict among them)
    runs = tmp_path / "runs.csv"
    runs.write_text(RUN_HEADER + "r1,m,24,2048,16,2048,50304,64,8,A100-SXM,2,1,8\n")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(runs), "--out", str(out), "--params",
                 str(params_json)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("row_id,group,target\nx,y,step_time_s\n")
    pj = tmp_path / "fit.json"
    assert main(["fit", str(bad), "--out", str(pj)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not pj.exists()


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """One ``jaxcost predict`` call for the three tests below (each reads its rows):
    f1 the pure data-parallel plan of 8 A100, f2 a blank plan of 8 A100; r0-r4 the
    pure data-parallel plan of 32 A100 on the chip's network (blank) and on 25, 12.5,
    6.25 and 1 GB/s per chip; b0, b1 a blank plan of 32 A100 on the chip's network
    and on 0.1 GB/s."""
    tmp = tmp_path_factory.mktemp("predict")
    pj = tmp / "p.json"
    save_params(pj, default_params(), {"test": True})
    header = RUN_HEADER.replace("\n", ",scaleout_bytes_per_s\n")
    given = "r{i},m,24,2048,16,2048,50304,64,32,A100-SXM,1,1,32,{nic}\n"
    blank = "b{i},m,24,2048,16,2048,50304,64,32,A100-SXM,,,,{nic}\n"
    nics = ["", "2.5e10", "1.25e10", "6.25e9", "1e9"]
    runs = tmp / "runs.csv"
    runs.write_text(header
                    + GOOD_ROW.replace("r1,", "f1,").replace("\n", ",\n")
                    + "f2,m,24,2048,16,2048,50304,64,8,A100-SXM,,,,\n"
                    + "".join(given.format(i=i, nic=v) for i, v in enumerate(nics))
                    + blank.format(i=0, nic="") + blank.format(i=1, nic="1e8"))
    out = tmp / "pred.csv"
    assert main(["predict", str(runs), "--out", str(out), "--params", str(pj)]) == 0
    import pandas as pd
    return pd.read_csv(out).set_index("row_id")


def test_predict_fills_blank_plan(predictions):
    df = predictions.loc[["f1", "f2"]]
    for col in ("pred_step_time_s", "pred_tokens_per_s_per_chip", "pred_mfu",
                "pred_step_time_s_lo", "pred_step_time_s_hi", "pred_plan"):
        assert col in df.columns
    assert df["pred_plan"].iloc[0].startswith("dp8-tp1-pp1")
    t, lo, hi = (predictions[c] for c in ("pred_step_time_s", "pred_step_time_s_lo",
                                          "pred_step_time_s_hi"))
    assert (lo <= t).all() and (t <= hi).all()
    # the searched plan is at least as fast as the given pure data-parallel one
    t = df["pred_step_time_s"].to_numpy()
    assert t[1] <= t[0] * (1 + 1e-12)


def test_predict_uses_the_row_network(predictions):
    """A row's own scale-out bandwidth replaces the chip's: a data-parallel run across
    four nodes is slower on 4 x 100 Gb/s per node than on the chip's 8 x 200 Gb/s, and
    never faster on a slower network (more bandwidth is never slower)."""
    t = predictions.loc[[f"r{i}" for i in range(5)], "pred_step_time_s"].to_numpy()
    assert t[0] == pytest.approx(t[1], rel=1e-12)  # blank = the chip's 25 GB/s
    assert np.all(np.diff(t[1:]) > 0)  # each slower network costs time


def test_plan_search_of_a_blank_plan_sees_the_row_network(predictions):
    """A blank plan is searched on the row's own network: on a 0.1 GB/s network the
    best plan of 32 A100 is not the pure data-parallel one chosen on the chip's own."""
    df = predictions.loc[["b0", "b1"]]
    assert df["pred_plan"].iloc[0].startswith("dp32-")
    assert df["pred_plan"].iloc[1] != df["pred_plan"].iloc[0]
    assert df["pred_step_time_s"].iloc[1] > df["pred_step_time_s"].iloc[0]


def test_load_fit_files_kinds_hashes_and_errors(tmp_path):
    import hashlib

    from jaxcost.calibrate import benchmark_kind, load_fit_files
    from jaxcost.errors import JaxcostError
    from jaxcost.model.hardware import load_chips

    root = Path(__file__).resolve().parent.parent / "data" / "benchmarks"
    coll = root / "collectives.csv"
    assert benchmark_kind(str(coll)) == "collectives"
    assert benchmark_kind(str(root / "kernels.csv")) == "kernels"
    assert benchmark_kind(str(root / "training_runs.csv")) == "training_runs"
    fd, hashes = load_fit_files([str(coll)], load_chips())
    assert fd.num_rows("collectives") > 0 and fd.num_rows("runs") == 0
    assert hashes == {"collectives.csv": hashlib.sha256(coll.read_bytes()).hexdigest()}
    with pytest.raises(JaxcostError, match="given twice"):
        load_fit_files([str(coll), str(coll)], load_chips())
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(JaxcostError, match=r"odd\.csv, column 'target'"):
        load_fit_files([str(odd)], load_chips())


def test_interval_coverage_is_held_out_by_group():
    # 20 sources of 50 rows with the same residual scatter: a 90 % interval built from
    # the other sources covers about 90 % of each; one source far off is never covered
    rng = np.random.default_rng(0)
    groups = np.repeat([f"g{i}" for i in range(20)], 50)
    r = rng.normal(0.0, 0.1, groups.size)
    chip = np.where(groups == "g0", "X", "Y")
    labels = (("runs", (("row_id", tuple(map(str, range(groups.size)))),
                        ("group", tuple(groups)), ("chip", tuple(chip)),
                        ("family", tuple(chip)))),)
    data = SimpleNamespace(labels=labels)
    rows = {(c.level, c.key): c for c in F.interval_coverage(r, data)}
    assert abs(rows[("overall", "all")].coverage - 0.9) < 0.03
    r_off = np.where(groups == "g0", r + 1.0, r)
    rows = {(c.level, c.key): c for c in F.interval_coverage(r_off, data)}
    assert rows[("chip", "X")].coverage == 0.0 and rows[("chip", "X")].n == 50
    # ... and the far source in the others' pool widens their intervals
    assert 0.9 < rows[("chip", "Y")].coverage < 1.0
    assert "covered%" in F.format_coverage_table(tuple(rows.values()), "t")


def test_shipped_calibration_coverage_matches_its_residuals():
    # `jaxcost fit --cv` stores the coverage table next to the out-of-fold residuals;
    # recomputing it from those residuals and the shipped benchmark files agrees
    import json

    root = Path(__file__).resolve().parent.parent
    prov = json.loads((root / "data" / "calibration" / "default.json").read_text())[
        "provenance"]
    b = root / "data" / "benchmarks"
    fd, _ = F.load_fit_files(
        [str(b / f"{k}.csv") for k in ("training_runs", "collectives", "kernels")],
        load_chips(),
    )
    rows = F.interval_coverage(np.asarray(prov["step_log_residuals"]), fd)
    stored = {(r["level"], r["key"]): r for r in prov["cv_interval_coverage"]}
    assert len(stored) == len(rows)
    for r in rows:
        s = stored[(r.level, r.key)]
        assert s["n"] == r.n and s["coverage"] == pytest.approx(r.coverage, abs=1e-12)
