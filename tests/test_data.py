"""Tests of jaxcost.data: shipped benchmark CSVs, SI conversion, validation errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jaxcost import calibrate
from jaxcost.errors import DataError, UnknownChipError
from jaxcost.io import benchmarks as jd

REFERENCE = "/work/shared/reference/benchmarks"


@pytest.fixture(scope="module")
def chips():
    return jd.load_chips_frame()


@pytest.fixture(scope="module")
def frames(chips):
    return {k: jd.load_benchmarks(k, chips=chips) for k in jd.BENCHMARK_KINDS}


# ------------------------------------------------------------------ shipped files


@pytest.mark.parametrize("kind", jd.BENCHMARK_KINDS)
def test_shipped_csv_passes_loader_and_every_row_has_a_source(frames, kind):
    df = frames[kind]
    assert len(df) > 100
    for col in ("source_title", "source_locator", "source_url", "provenance", "group"):
        assert df[col].map(lambda x: isinstance(x, str) and x.strip() != "").all(), col
    assert df["row_id"].is_unique


def test_chip_aliases_cover_every_label(frames):
    aliases = jd.load_csv("data/benchmarks/chip_aliases.csv", jd.CHIP_ALIASES_SCHEMA,
                          chips=None)
    labels = set(aliases["chip_label"])
    for df in frames.values():
        assert set(df["chip"]) <= labels


def test_unmapped_chip_rows_are_kept_with_a_note(frames):
    df = frames["kernels"]
    blank = df[df["chip_key"].isna()]
    assert len(blank) > 0
    assert blank["notes"].str.contains("[build]", regex=False).all()


def test_a100_40gb_mapped_by_label(frames):
    df = frames["collectives"]
    row = df[df["row_id"] == "C0132"].iloc[0]
    assert row["chip_key"] == "A100-SXM-40GB"


# ------------------------------------------------------------- SI conversions


def _ref(name):
    return pd.read_csv(f"{REFERENCE}/{name}.csv").set_index("row_id")


@pytest.mark.parametrize("row_id", ["C0021", "C0045", "C0100"])
def test_busbw_si_matches_reference(frames, row_id):
    ref = _ref("collectives").loc[row_id]
    row = frames["collectives"].set_index("row_id").loc[row_id]
    # GB/s is decimal: x 1e9, exact up to float rounding.
    np.testing.assert_allclose(
        row["busbw_bytes_per_s"], ref["busbw_GBps"] * 1e9, rtol=1e-12
    )
    if not math.isnan(ref["time_us"]):
        np.testing.assert_allclose(row["time_s"], ref["time_us"] * 1e-6, rtol=1e-12)


@pytest.mark.parametrize("row_id,unit_factor,col", [
    ("K0004", 1e12, "flop_per_s"),    # 253.7 TFLOPS
    ("K0009", 1e12, "bytes_per_s"),   # 1.61 TB/s
    ("K0105", 1e9, "bytes_per_s"),    # 1329.57 GB/s
    ("K0387", 1e-3, "time_s"),        # 7.7 ms
])
def test_kernel_si_matches_reference(frames, row_id, unit_factor, col):
    ref = _ref("kernels").loc[row_id]
    row = frames["kernels"].set_index("row_id").loc[row_id]
    np.testing.assert_allclose(row[col], ref["value"] * unit_factor, rtol=1e-12)


def test_training_run_si_and_derived_step_time(frames):
    df = frames["training_runs"].set_index("row_id")
    ref = _ref("e2e_training")
    np.testing.assert_allclose(df.loc["E0001", "flop_per_s_per_chip"],
                               ref.loc["E0001", "tflops_per_chip"] * 1e12, rtol=1e-12)
    np.testing.assert_allclose(
        df.loc["E0001", "mfu_peak_flop_per_s"], 989e12, rtol=1e-12
    )
    # E0240: step time derived from tokens/s and the global batch (tokens).
    r = ref.loc["E0240"]
    expected = r["gbs_tokens"] / (r["tokens_per_s_per_chip"] * r["n_chips"])
    np.testing.assert_allclose(df.loc["E0240", "step_time_s"], expected, rtol=1e-9)
    assert df.loc["E0240", "provenance"].startswith("derived")
    assert "step_time_s = gbs_tokens" in df.loc["E0240", "derivation"]
    # printed step times are kept as printed
    assert df.loc["E0033", "step_time_s"] == ref.loc["E0033", "step_time_s"]


def test_targets_and_weights(frames):
    df = frames["training_runs"]
    ascend = df[df["chip_key"] == "Ascend910B"]
    assert len(ascend) > 0
    assert (ascend["target"] == "tokens_per_s_per_chip").all()
    camp = df[df["group"] == "llama1_gpuhours"]
    assert (camp["weight"] == 0.3).all()
    assert (df.loc[df["group"] == "bloom_prequel", "weight"] == 1.0).all()
    for _, r in df[df["target"].notna()].iterrows():
        assert not pd.isna(r[r["target"]])


def test_kernel_flop_conventions():
    g = {"kernel_kind": "gemm", "m": 4096, "n": 4096, "k": 4096}
    assert jd.kernel_flop(g) == 2 * 4096**3
    a = {"kernel_kind": "attention", "batch": 2, "seq_len": 1024, "heads": 16,
         "head_dim": 64, "causal": True, "pass": "fwd+bwd"}
    assert jd.kernel_flop(a) == pytest.approx(4 * 2 * 1024**2 * 16 * 64 * 0.5 * 3.5,
                                              rel=1e-12)
    assert math.isnan(jd.kernel_flop({"kernel_kind": "mla"}))


def test_collectives_and_kernels_to_arrays(frames):
    cb = calibrate.collectives_to_arrays(frames["collectives"])
    assert cb.kind.shape == cb.time_s.shape == (len(cb.row_ids),)
    i = cb.row_ids.index("C0021")  # Azure A100, 1 GiB all-reduce, busbw only
    n = 8.0
    alg = 228.10e9 * n / (2 * (n - 1))
    np.testing.assert_allclose(float(cb.time_s[i]), 2**30 / alg, rtol=1e-12)
    kb = calibrate.kernels_to_arrays(frames["kernels"])
    j = kb.row_ids.index("K0004")
    np.testing.assert_allclose(float(kb.time_s[j]), 2 * 8192**3 / 253.7e12, rtol=1e-12)


def test_runs_to_arrays(frames, chips):
    from jaxcost.model.hardware import load_chips

    rb = calibrate.runs_to_arrays(frames["training_runs"], load_chips())
    n = len(rb.row_ids)
    assert n > 50
    assert rb.workload.num_layers.shape == (n,)
    assert rb.plan.dp.shape == (n,)
    assert n + len(rb.excluded) == len(frames["training_runs"])
    assert bool(np.all(np.asarray(rb.target_value) > 0))
    # a plan given in full: tp*pp*dp*cp equals the chip count
    full = ~np.asarray(rb.plan_missing)
    prod = np.asarray(rb.plan.tp * rb.plan.pp * rb.plan.dp * rb.plan.cp)
    np.testing.assert_array_equal(prod[full], np.asarray(rb.num_chips)[full])
    assert "E0070" in dict(rb.excluded)  # TPU v3: not in the chip database


# ------------------------------------------------ architectures from data/models.csv

#: Usable training rows per chip key reached when the architectures were filled from
#: data/models.csv; the shipped data must not fall below these floors.
_USABLE_FLOOR = {"A100-SXM": 128, "H100-SXM": 47, "B200": 12, "Ascend910B": 11,
                 "A800-SXM": 6, "H800-SXM": 2}
_ARCH = {"layers": "num_layers", "hidden": "d_model", "heads": "num_heads",
         "kv_heads": "num_kv_heads", "vocab": "vocab_size"}


@pytest.fixture(scope="module")
def run_batch(frames):
    from jaxcost.model.hardware import load_chips

    return calibrate.runs_to_arrays(frames["training_runs"], load_chips())


def test_usable_rows_per_chip_do_not_regress(run_batch):
    keys, counts = np.unique(np.array(run_batch.chip_keys), return_counts=True)
    usable = dict(zip(keys.tolist(), counts.tolist(), strict=True))
    short = {
        k: (usable.get(k, 0), n)
        for k, n in _USABLE_FLOOR.items()
        if usable.get(k, 0) < n
    }
    assert not short, f"usable rows (now, floor) fell for {short}"
    assert not [e for e in run_batch.excluded if e[1].startswith("rejected")]


def test_model_aliases_name_models_csv_rows():
    from jaxcost.model.workload import load_models

    models = load_models()
    al = pd.read_csv(
        "data/benchmarks/model_aliases.csv", dtype=str, keep_default_na=False
    )
    assert list(al.columns) == ["model_label", "model_name", "notes"]
    assert al["model_label"].is_unique
    assert set(al["model_name"]) <= set(models)


def test_architecture_filled_from_models_csv_never_overwrites(frames):
    from jaxcost.model.workload import load_models

    models = load_models()
    df = frames["training_runs"].set_index("row_id")
    ref = pd.read_csv(f"{REFERENCE}/e2e_training.csv").set_index("row_id")
    mapped = df[df["arch_model"].notna()]
    assert len(mapped) > 50
    for rid, r in mapped.iterrows():
        w = models[r["arch_model"]]
        for col, field in _ARCH.items():
            printed = ref.at[rid, col] if rid in ref.index else math.nan
            if not pd.isna(printed):  # the row's own value is kept
                assert r[col] == printed, (rid, col)
            else:  # filled from the model table
                assert r[col] == float(getattr(w, field)), (rid, col)
                assert col in r["derivation"], (rid, col)
                assert f"data/models.csv ({r['arch_model']})" in r["derivation"], rid
                assert "architecture from data/models.csv" in r["provenance"], rid


def test_head_dim_reaches_the_workload(run_batch):
    # Qwen3 MoE: head_dim 128 while hidden/heads = 64; the batch must carry 128.
    ids = list(run_batch.row_ids)
    i = ids.index("E0264")
    assert float(run_batch.workload.head_dim[i]) == 128.0
    assert float(run_batch.workload.num_experts[i]) == 128.0


# ------------------------------------------------------------- bad input cases


_GOOD = {
    "row_id": ["A1", "A2"], "group": ["g", "g"], "source_title": ["t", "t"],
    "source_locator": ["l", "l"], "source_url": ["u", "u"],
    "provenance": ["read", "read"], "chip": ["H100", "H100"],
    "chip_key": ["H100-SXM", "H100-SXM"], "notes": ["", ""], "derivation": ["", ""],
    "model": ["m", "m"], "layers": ["32", "32"], "hidden": ["4096", "4096"],
    "heads": ["32", "32"], "seq_len": ["4096", "4096"], "vocab": ["32000", "32000"],
    "gbs_seqs": ["128", "128"], "n_chips": ["8", "16"], "tp": ["2", "2"],
    "pp": ["1", "2"], "dp": ["4", "4"], "step_time_s": ["1.5", "2.0"],
    "weight": ["1", "1"], "target": ["step_time_s", "step_time_s"],
}


def _write(tmp_path, **changes):
    cols = dict(_GOOD)
    for k, v in changes.items():
        if v is None:
            cols.pop(k)
        else:
            cols[k] = v
    p = tmp_path / "runs.csv"
    pd.DataFrame(cols).to_csv(p, index=False)
    return p


def test_good_file_loads(tmp_path, chips):
    df = jd.load_benchmarks("training_runs", _write(tmp_path), chips=chips)
    assert list(df["n_chips"]) == [8.0, 16.0]


@pytest.mark.parametrize("changes,column,row,fragment", [
    ({"source_url": None}, "source_url", None, "missing required column"),
    ({"layers": ["32", "abc"]}, "layers", 3, "'abc' is not a number"),
    ({"tp": ["-2", "2"]}, "tp", 2, "must be > 0"),
    ({"heads": ["32", "2.5"]}, "heads", 3, "not a whole number"),
    ({"chip_key": ["H100-SXM", "H999"]}, "chip_key", 3, "unknown chip key 'H999'"),
    ({"dp": ["4", "8"]}, "n_chips", 3, "tp*pp*dp*cp = 32 but n_chips = 16"),
    ({"weight": ["1", "nan"]}, "weight", 3, "not finite"),
    ({"weight": ["1", ""]}, "weight", 3, "blank cell"),
    ({"row_id": ["A1", "A1"]}, "row_id", 3, "duplicated row_id 'A1'"),
    ({"source_url": ["u", ""]}, "source_url", 3, "blank cell"),
    ({"target": ["step_time_s", "mfu"]}, "mfu", 3, "names a blank column"),
    ({"target": ["step_time_s", "speed"]}, "target", 3, "'speed' is not allowed"),
])
def test_bad_input_one_line_error(tmp_path, chips, changes, column, row, fragment):
    p = _write(tmp_path, **changes)
    with pytest.raises(DataError) as info:
        jd.load_benchmarks("training_runs", p, chips=chips)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(p) in msg
    assert f"column '{column}'" in msg
    assert fragment in msg
    if row is not None:
        assert f"row {row - 1} (line {row})" in msg
    if column == "chip_key":
        assert isinstance(info.value, UnknownChipError)


def test_si_disagreement_is_rejected(tmp_path, chips):
    p = _write(tmp_path, tflops_per_chip=["400", "400"],
               flop_per_s_per_chip=["4e14", "5e14"])
    with pytest.raises(DataError, match=r"row 2 \(line 3\).*flop_per_s_per_chip.*dis"):
        jd.load_benchmarks("training_runs", p, chips=chips)


def test_unknown_kind_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown benchmark kind"):
        jd.load_benchmarks("nope")
    with pytest.raises(DataError, match="file not found"):
        jd.load_csv(tmp_path / "absent.csv", jd.RUNS_SCHEMA)


def test_write_csv_atomic_roundtrip(tmp_path, frames):
    p = tmp_path / "out" / "k.csv"
    jd.write_csv_atomic(frames["kernels"], p)
    back = jd.load_benchmarks("kernels", p)
    assert len(back) == len(frames["kernels"])
    assert not list(p.parent.glob(".*.tmp"))


@pytest.mark.parametrize("text, code, lite", [
    ("", 0, False), ("none", 0, False), ("full", 2, False), ("selective", 1, False),
    ("selective (saves expensive activations)", 1, False),
    # fine-grained module recompute: norms / activation functions are the plan's
    # recompute_lite; the whole MoE block repeats most of a layer
    ("norm, act", 0, True),
    ("selective (moe_act, layernorm: --recompute-modules moe_act layernorm)", 0, True),
    ("--recompute-modules core_attn moe_act layernorm", 1, True),
    ("modules", 0, True), ("selective+modules", 1, True),
    ("selective (whole MoE block and layernorm: --recompute-modules moe layernorm)",
     2, False),
])
def test_recompute_text_to_mode(text, code, lite):
    from jaxcost.io.benchmarks import recompute_setting
    got_code, got_lite = recompute_setting(text)
    assert got_code == code and got_lite is lite


def test_recompute_text_unknown_is_a_data_error():
    from jaxcost.io.benchmarks import recompute_setting
    with pytest.raises(DataError, match="not a recompute mode"):
        recompute_setting("sometimes")


def test_software_columns_become_plan_leaves(run_batch, frames):
    # each software column maps to its plan leaf, with the documented default
    df = frames["training_runs"].set_index("row_id")
    for rid, leaf, col, on in (("E0033", "flash_attn", "attention", "flash"),
                               ("E0284", "fused_a2a", "ep_dispatcher", "fused"),
                               ("E0296", "tp_overlap", "tp_comm_overlap", "yes"),
                               ("E0259", "tp_overlap", "tp_comm_overlap", "yes"),
                               ("E0283", "pp_balance", "pp_layout", "balanced"),
                               ("E0322", "pp_balance", "pp_layout", "balanced"),
                               ("E0259", "dp_overlap", "dp_comm_overlap", "yes"),
                               ("E0043", "dp_overlap", "dp_comm_overlap", "yes")):
        i = run_batch.row_ids.index(rid)
        want = 1.0 if df.at[rid, col] == on else 0.0
        assert float(getattr(run_batch.plan, leaf)[i]) == want, (rid, leaf)
    # the shipped rows use both values of every leaf
    for leaf in ("flash_attn", "fused_a2a", "tp_overlap", "pp_balance", "dp_overlap"):
        assert set(np.unique(np.asarray(getattr(run_batch.plan, leaf)))) == {0.0, 1.0}
    assert set(jd.SOFTWARE_DEFAULTS) <= set(df.columns)


def test_software_columns_may_be_absent(frames):
    # a user's CSV in the reference schema has none of the software columns: every
    # plan then takes the documented defaults
    from jaxcost.model.hardware import load_chips

    df = frames["training_runs"].head(40).drop(columns=list(jd.SOFTWARE_DEFAULTS))
    batch = calibrate.runs_to_arrays(df, load_chips())
    for leaf, want in (("flash_attn", 1.0), ("fused_a2a", 0.0), ("tp_overlap", 0.0),
                       ("pp_balance", 0.0), ("dp_overlap", 0.0)):
        assert set(np.unique(np.asarray(getattr(batch.plan, leaf)))) == {want}, leaf
