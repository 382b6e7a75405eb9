"""Smoke test of the experiment helpers: one tiny piece of an experiment, not the
scripts (those take minutes; run them with ``python experiments/NN_*.py``)."""

import operator
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import _common as C  # noqa: E402

import jaxcost as jc  # noqa: E402


def test_claims_have_sources():
    rows = C.claims()
    assert rows, "experiments/claims.csv is empty"
    for key, r in rows.items():
        assert r["source"].strip(), f"claims.csv: {key} has no source"
        assert np.isfinite(float(r["value"]))


def test_interval_ignores_non_finite():
    med, lo, hi = C.interval([1.0, 2.0, 3.0, np.inf, np.nan])
    assert (med, lo) == (2.0, 1.1) and abs(hi - 2.9) < 1e-12
    assert all(np.isnan(C.interval([np.inf])))


def test_ensemble_brackets_a_tiny_configuration(tmp_path, monkeypatch):
    """Experiment 06 in miniature: a small model on one node, best plan, ensemble
    interval of its step time, report files written."""
    cal = C.load_calibration(num_prior_draws=8)
    assert cal.size >= 2
    w = jc.get_model("llama2-7b").replace(global_batch_seqs=np.float64(16))
    chip = jc.get_chip("A100-SXM")
    n = C.nearest_valid_count(w, chip, 8)
    assert n == 8
    cluster = jc.ClusterSpec(chip=chip, num_chips=float(n))
    plan = jc.ParallelPlan.create(dp=8, zero=1, recompute=jc.Recompute.SELECTIVE)
    st = C.ensemble_step_times(cal.ensemble, cluster, w, plan)
    t = np.asarray(st.total_s)
    assert t.shape == (cal.size,) and np.all(np.isfinite(t)) and np.all(t > 0)
    med, lo, hi = C.interval(t)
    # members differ (an ensemble, not copies)
    assert hi > lo
    # the calibrated point prediction lies inside the bootstrap ensemble's 5-95 %
    # interval (the members are refits around it; outside means a broken ensemble)
    point = float(jc.predict_step_time(cal.params, cluster, w, plan).total_s)
    assert lo <= point <= hi, (lo, point, hi)
    # the extreme members, recomputed one at a time by the library (eager, no vmap:
    # no second compilation), give the same step times: same float64 operations, so
    # rtol=1e-12
    for i in (int(np.argmin(t)), int(np.argmax(t))):
        member = jax.tree.map(operator.itemgetter(i), cal.ensemble)
        one = jc.predict_step_time(member, cluster, w, plan).total_s
        np.testing.assert_allclose(float(one), t[i], rtol=1e-12)
    # tokens/s per chip is physical
    tok = C.tokens_per_step(w) / t / n
    assert np.all(tok < float(chip.peak_flop_per_s_bf16)
                  / float(jc.model_flop_per_token(w)))
    monkeypatch.setattr(C, "OUT_ROOT", tmp_path)
    out = C.write_report("smoke", "smoke", "body", [{"a": 1.0, "b": "x,y"}, {"c": 2}],
                         None, seconds=0.0, calibration=cal)
    assert (out / "report.md").read_text().startswith("# smoke")
    assert (out / "table.csv").read_text().splitlines() == ["a,b,c", '1,"x,y",', ',,2']
