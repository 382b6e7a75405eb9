"""The blank- and partial-plan search of ``predict``, memory as a visible constraint,
and the memory model against published measurements (data/benchmarks/memory.csv)."""

import csv
import importlib.util
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jaxcost as jc
from jaxcost import calibrate
from jaxcost.errors import DataError
from jaxcost.model.hardware import load_chips
from jaxcost.model.params import default_params
from jaxcost.model.plan import Recompute
from jaxcost.search.space import PlanSpace

ROOT = Path(__file__).resolve().parent.parent


def _memory_check():
    spec = importlib.util.spec_from_file_location(
        "memory_check", ROOT / "tools" / "memory_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_row_plan_space_fixes_the_given_cells_only():
    s = calibrate.row_plan_space({"pp": "2", "dp": "4", "zero_fsdp": "ZeRO-1",
                                  "recompute": "selective"})
    assert (s.pp, s.dp, s.tp) == ((2,), (4,), None)
    assert s.zero_stages == (1,) and s.recompute == (Recompute.SELECTIVE,)
    assert s.mbs == PlanSpace().mbs and s.pp_balance == "auto"
    assert calibrate.searched_columns({"pp": "2", "dp": "4"}).startswith("tp,cp")
    with pytest.raises(DataError, match="whole number"):
        calibrate.row_plan_space({"tp": "2.5"})


def _runs(tmp_path, **plan):
    df = pd.read_csv(ROOT / "data" / "benchmarks" / "training_runs.csv")
    row = df[df.row_id == "E0359"].copy()  # BLOOM-variant 176B on 384 A100
    for c in calibrate.PLAN_COLUMNS:
        row[c] = plan.get(c)
    row["target"] = "step_time_s"
    return calibrate.runs_to_arrays(row, load_chips(), strict=True)


def test_partial_plan_is_honoured_and_blank_cells_searched(tmp_path):
    runs = _runs(tmp_path, pp=12, recompute="full")
    out, text, searched = calibrate.best_plans_for_missing(default_params(),
                                                           load_chips(), runs)
    assert "-pp12-" in text[0] and "-rfull" in text[0]
    assert "pp" not in searched[0].split(",") and "tp" in searched[0].split(",")
    assert float(np.asarray(out.plan.pp)[0]) == 12.0


def test_explicit_plan_that_does_not_fit_is_flagged(tmp_path):
    chips = load_chips()
    fits = _runs(tmp_path, tp=8, pp=12, dp=4, recompute="full", zero_fsdp="ZeRO-1")
    huge = _runs(tmp_path, tp=1, pp=1, dp=384, recompute="none")
    p = default_params()
    a = calibrate.predict_run_batch(p, chips, fits)
    b = calibrate.predict_run_batch(p, chips, huge)
    assert bool(a["pred_fits"][0]) and not bool(b["pred_fits"][0])
    # 176B parameters unsharded: weights + grads + Adam state alone exceed 2 TB
    assert (
        b["pred_mem_bytes_per_chip"][0] > 2e12 > 1e12 > a["pred_mem_bytes_per_chip"][0]
    )
    assert np.isfinite(b["pred_step_time_s"][0])  # timed, but flagged


def test_llama3_405b_production_plan_fits():
    # Llama 3 405B on 16,384 H100 (arXiv:2407.21783 Table 4 and Sec. 3.3.2): TP8 PP16
    # DP128, 8K sequences without activation checkpointing, interleaved schedule
    # (vpp 8, inferred), stages balanced around embedding and head, FSDP with
    # optimizer states and gradients sharded (ZeRO-2), TP with sequence parallelism.
    # The published run fits in 80 GB, so the model must say so (it predicted
    # 227 GB before sequence parallelism, the balanced stages and the m·v cap on
    # in-flight chunks were modelled). Also the 128K / CP16 row (P0004).
    df = pd.read_csv(ROOT / "tests" / "data" / "production_runs.csv")
    rows = df[df.row_id.isin(["P0003", "P0004"])].copy()
    chips = load_chips()
    runs = calibrate.runs_to_arrays(rows, chips, strict=True)
    assert np.asarray(runs.plan.vpp).tolist() == [8.0, 8.0]
    assert np.asarray(runs.plan.zero).tolist() == [2.0, 2.0]
    out = calibrate.predict_run_batch(default_params(), chips, runs)
    assert all(bool(f) for f in out["pred_fits"])
    # 7 or 8 layers x 16 sequences x ~31.75·s·h/t bytes + 6.4 GB of weights
    mem = np.asarray(out["pred_mem_bytes_per_chip"])
    assert np.all((mem > 60e9) & (mem < 0.95 * 80e9))


def test_memory_model_against_published_measurements():
    # data/benchmarks/memory.csv: 46 published peak-memory readings (torchtitan tables,
    # Megatron-LM CI golden values incl. 10 MoE runs, FlagPerf, Trainy). The dense
    # Megatron CI rows are exact peak allocated bytes: the model's accounting must hold
    # there (10 %). Over all rows the error is recorded as measured (median APE 24.4 %
    # and MAPE 33.8 % on 2026-12-05; 24.5 % and 32.9 % once GQA, gated MLPs,
    # dropout-free Llama-style layers, the m·v cap of interleaved schedules and the
    # working set of full recompute were counted; 24.3 % and 30.3 % over 46 rows once
    # MoE layers store k copies of each token's expert activations; 24.2 % and
    # 25.5 % over 52 rows once FP8 caches of linear inputs, the cheap-module recompute
    # and multi-latent attention's widths were counted: the model still leaves out
    # fp32 logits, allocator reserve, FP8 weight copies and framework buffers); the
    # bounds guard against regressions.
    mc = _memory_check()
    with open(ROOT / "data" / "benchmarks" / "memory.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 10
    errs, clean, moe = [], [], []
    for r in rows:
        _, pred = mc.predict(r, package_grads=False)
        e = pred / float(r["measured_bytes_per_chip"]) - 1.0
        errs.append(abs(e))
        if r["group"] == "megatron_ci_7b":
            clean.append(abs(e))
        if r["group"].startswith("megatron_") and (r.get("experts") or "1") != "1":
            moe.append(e)
    assert clean and max(clean) < 0.10
    # MoE (Megatron CI, Mixtral 8x7B release run): k expert copies per token counted;
    # the small CI models are still under-predicted (framework buffers), by < 40 %
    assert len(moe) >= 10 and max(abs(x) for x in moe) < 0.40
    assert statistics.median(moe) > -0.25
    assert statistics.median(errs) < 0.30
    assert statistics.fmean(errs) < 0.30
    # the Megatron CI pairs that isolate FP8 (M0047/M0048 and M0050/M0051: only
    # --fp8-format differs): each row within 10 %, and the predicted FP8/BF16 ratio of
    # the transient memory (peak - steady vs activations) within 5 % of the measured
    by_id = {r["row_id"]: r for r in rows}
    for bf16, fp8 in (("M0047", "M0048"), ("M0050", "M0051")):
        wb, pb, gb = mc.build(by_id[bf16], package_grads=False)
        wf, pf, gf = mc.build(by_id[fp8], package_grads=False)
        assert float(pf.fp8) == 1.0 and float(pb.fp8) == 0.0
        mem_b = jc.memory_bytes(wb, pb, grad_bytes_per_param=gb)
        mem_f = jc.memory_bytes(wf, pf, grad_bytes_per_param=gf)

        def transient(r):
            return float(r["measured_bytes_per_chip"]) - float(
                r["steady_allocated_bytes"])

        measured = transient(by_id[fp8]) / transient(by_id[bf16])
        predicted = float(mem_f.activations) / float(mem_b.activations)
        assert predicted < 1.0 and abs(predicted / measured - 1.0) < 0.05
        # the steady part grows by the cached FP8 weight copies (measured 0.684e9 B)
        grow = float(mem_f.weights - mem_b.weights)
        steady = float(by_id[fp8]["steady_allocated_bytes"]) - float(
            by_id[bf16]["steady_allocated_bytes"])
        assert 0.6 < grow / steady < 1.4
        for rid in (bf16, fp8):
            _, pred = mc.predict(by_id[rid], package_grads=False)
            assert abs(pred / float(by_id[rid]["measured_bytes_per_chip"]) - 1) < 0.10


def test_searched_tp_groups_do_not_straddle_a_node():
    # 24 chips on 8-chip NVLink nodes: tp = 3 or 6 would put one TP group across two
    # nodes; the search keeps tp in {1, 2, 4, 8} (node-aligned), and without a chip
    # (no node size) tp = 3 stays a valid divisor of 96 heads
    from jaxcost.model.workload import get_model
    from jaxcost.search.space import enumerate_plans

    w = get_model("llama2-7b").replace(global_batch_seqs=48.0)
    a100 = load_chips()["A100-SXM"]
    tps = set(np.asarray(enumerate_plans(w, 24, a100).tp).tolist())
    assert tps and tps <= {1.0, 2.0, 4.0, 8.0}
    g = get_model("gpt3-175b").replace(global_batch_seqs=48.0)  # 96 heads: 3 divides
    assert 3.0 in set(np.asarray(enumerate_plans(g, 24, None).tp).tolist())


def test_bloom_blank_plan_keeps_its_framework_recompute(tmp_path):
    # BLOOM-176B on 384 A100 (P0005, a 2022 Megatron-DeepSpeed run) with every plan
    # column blank: the framework default of its year (full recompute, sourced in
    # framework_defaults.csv) is filled and reported, so the blank-plan search keeps
    # it (1.46x the logged throughput when the row had no year and the search dropped
    # recompute; 1.14x with it: `python tools/production_check.py`, not run here)
    from jaxcost.io.runs import read_runs

    df = pd.read_csv(ROOT / "tests" / "data" / "production_runs.csv", dtype=str,
                     keep_default_na=False)
    row = df[df.row_id == "P0005"].copy()
    assert row["year"].tolist() == ["2022"]
    for c in calibrate.PLAN_COLUMNS:
        row[c] = ""
    row.to_csv(tmp_path / "bloom.csv", index=False)
    fills = read_runs(tmp_path / "bloom.csv").fills[0]
    assert any(f.startswith("recompute=full (framework default") for f in fills)
    row["year"] = ""
    row.to_csv(tmp_path / "bloom_no_year.csv", index=False)
    assert not any(f.startswith("recompute=")
                   for f in read_runs(tmp_path / "bloom_no_year.csv").fills[0])


@pytest.mark.parametrize("q", ["1.5", "0", "nan"])
def test_plan_quantile_flag_is_checked_before_any_search(tmp_path, q):
    # `jaxcost predict --plan-quantile Q` ranks a blank-plan search by the Q quantile
    # of the ensemble (best_plan's robust ranking); a Q outside (0, 1) stops with one
    # line, exit 2 and no file
    from jaxcost.cli.app import main

    out = tmp_path / "pred.csv"
    rc = main(["predict", str(ROOT / "tests" / "data" / "production_runs.csv"),
               "--out", str(out), "--plan-quantile", q])
    assert rc == 2 and not out.exists()


def test_production_check_ratio_uses_the_rows_own_measure():
    # tools/production_check.py: predicted over published throughput, from tokens/s
    # where the row has it, else from the step time, else from MFU
    tool = importlib.util.spec_from_file_location(
        "production_check", ROOT / "tools" / "production_check.py")
    mod = importlib.util.module_from_spec(tool)
    tool.loader.exec_module(mod)
    pred = dict(pred_tokens_per_s_per_chip=120.0, pred_step_time_s=10.0, pred_mfu=0.5)
    assert mod.ratio(pd.Series(dict(pred, tokens_per_s_per_chip=100.0))) == (
        pytest.approx(1.2), "tok/s")
    assert mod.ratio(pd.Series(dict(pred, tokens_per_s_per_chip=float("nan"),
                                    step_time_s=12.0))) == (pytest.approx(1.2), "step")
    assert mod.ratio(pd.Series(dict(pred, tokens_per_s_per_chip=float("nan"),
                                    step_time_s=float("nan"), mfu=0.4))) == (
        pytest.approx(1.25), "mfu")
