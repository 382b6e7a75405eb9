"""Tests of params: priors from data, hierarchy, prior, save/load."""

import csv
import json
import math

import jax
import numpy as np
import pytest
from helpers import assert_tree_allclose, make_chip

from jaxcost.errors import ParamsError
from jaxcost.model.params import (
    PARAM_NAMES,
    default_params,
    load_params,
    log_prior,
    physical,
    priors_path,
    save_params,
    with_offsets,
)


def test_priors_csv_rows_have_sources_and_defaults_match():
    with open(priors_path(), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["name"] for r in rows) == sorted(PARAM_NAMES)
    pp = physical(default_params(), make_chip())
    for r in rows:
        assert r["source"].strip() and r["source_locator"].strip()
        np.testing.assert_allclose(getattr(pp, r["name"]), float(r["value"]), rtol=1e-9)


def test_hierarchy_missing_keys_borrow_and_offsets_add():
    p = default_params()
    a = make_chip(key="A", family="fam")
    b = make_chip(key="B", family="fam")
    c = make_chip(key="C", family="other")
    p2 = with_offsets(p, families=("fam",), chips=("A",))
    fam = p2.family["fam"].replace(mm_eff_max=0.5)
    chp = p2.chip["A"].replace(mm_eff_max=0.25)
    p2 = p2.replace(family={"fam": fam}, chip={"A": chp})
    base = default_params().global_raw.mm_eff_max
    pa, pb, pc = (physical(p2, x) for x in (a, b, c))
    np.testing.assert_allclose(pa.mm_eff_max, jax.nn.sigmoid(base + 0.75), rtol=1e-12)
    np.testing.assert_allclose(pb.mm_eff_max, jax.nn.sigmoid(base + 0.5), rtol=1e-12)
    np.testing.assert_allclose(pc.mm_eff_max, jax.nn.sigmoid(base), rtol=1e-12)
    # registering again keeps existing offsets
    assert with_offsets(p2, chips=("A",)).chip["A"].mm_eff_max == 0.25
    # constrained ranges
    for name in PARAM_NAMES:
        assert np.isfinite(getattr(pa, name)) and getattr(pa, name) > 0


def test_log_prior_max_at_defaults_and_chip_tighter_than_family():
    p = with_offsets(default_params(), families=("fam",), chips=("A",))
    lp0 = log_prior(p)
    np.testing.assert_allclose(lp0, 0.0, atol=1e-12)
    bump_f = p.replace(family={"fam": p.family["fam"].replace(mm_eff_max=0.3)})
    bump_c = p.replace(chip={"A": p.chip["A"].replace(mm_eff_max=0.3)})
    assert log_prior(bump_c) < log_prior(bump_f) < lp0
    g = jax.grad(log_prior)(bump_c)
    assert g.chip["A"].mm_eff_max < 0


def test_save_load_roundtrip(tmp_path):
    p = with_offsets(default_params(), families=("hopper",), chips=("H100-SXM",))
    p = p.replace(chip={"H100-SXM": p.chip["H100-SXM"].replace(hbm_eff_max=0.1)})
    path = tmp_path / "params.json"
    save_params(path, p, {"fit": "test", "rows": 3})
    q, prov = load_params(path)
    assert prov == {"fit": "test", "rows": 3}
    # json writes floats with repr (round-trip exact); rtol=1e-15 allows one ulp
    assert_tree_allclose(q, p, rtol=1e-15, atol=0)
    assert set(q.chip) == {"H100-SXM"} and set(q.family) == {"hopper"}


def test_load_errors_name_file_and_key(tmp_path):
    path = tmp_path / "p.json"
    save_params(path, default_params(), {})
    doc = json.loads(path.read_text())
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(ParamsError, match=r"p\.json.*key 'version'"):
        load_params(path)
    doc["version"] = 1
    doc["global"]["mm_eff_max"] = math.nan
    path.write_text(json.dumps(doc))
    with pytest.raises(ParamsError, match=r"global\.mm_eff_max"):
        load_params(path)
    doc["global"]["mm_eff_max"] = 1.0
    doc["global"]["bogus"] = 1.0
    path.write_text(json.dumps(doc))
    with pytest.raises(ParamsError, match="bogus"):
        load_params(path)


def test_save_refuses_non_finite_and_writes_nothing(tmp_path):
    p = default_params()
    bad = p.replace(global_raw=p.global_raw.replace(mm_eff_max=np.inf))
    path = tmp_path / "bad.json"
    with pytest.raises(ParamsError, match="mm_eff_max"):
        save_params(path, bad, {})
    assert not path.exists()
