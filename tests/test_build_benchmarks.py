"""tools/build_benchmarks.py: the cell fills and software rules, and reproducibility."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "benchmarks"


def _build_module():
    spec = importlib.util.spec_from_file_location(
        "build_benchmarks", REPO / "tools" / "build_benchmarks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


B = _build_module()


def _frame():
    return pd.DataFrame({
        "row_id": ["E1", "E2", "E3"], "group": ["g", "g", "h"],
        "framework": ["fw A", "fw B", "fw A"],
        "precision": ["(not stated)", "bf16", ""], "vpp": [np.nan, 2.0, np.nan],
        "sp": [np.nan, "no", np.nan], "recompute": ["none", "full", "none"],
        "layers": [94.0, 96.0, np.nan], "pp": [8.0, 8.0, np.nan],
        "derivation": ["", "x", ""]})


def test_row_fills_fill_blank_or_unstated_and_keep_the_original(tmp_path):
    df = _frame()
    f = tmp_path / "fills.csv"
    f.write_text('row_id,column,value,reason\nE1,precision,FP8,"footnote"\n'
                 'E3,vpp,12,"default"\n')
    B.apply_row_fills(df, f)
    assert df.at[0, "precision"] == "FP8" and df.at[2, "vpp"] == 12.0
    assert (
        "'(not stated)'" in df.at[0, "derivation"]
        and "footnote" in df.at[0, "derivation"]
    )


def test_row_fills_refuse_to_overwrite_a_printed_value(tmp_path):
    f = tmp_path / "fills.csv"
    f.write_text('row_id,column,value,reason\nE2,precision,FP8,"no"\n')
    with pytest.raises(SystemExit, match="may not overwrite"):
        B.apply_row_fills(_frame(), f)
    f.write_text('row_id,column,value,reason\nE9,precision,FP8,"no"\n')
    with pytest.raises(SystemExit, match="no row 'E9'"):
        B.apply_row_fills(_frame(), f)


def test_software_rules_match_group_framework_rows_and_fill_only_blanks(tmp_path):
    df = _frame()
    f = tmp_path / "rules.csv"
    f.write_text("group,framework,row_ids,column,value,reason\n"
                 "g,fw A,,attention,unfused,old\n"
                 "g,,,sp,yes,overlap\n"
                 "h,,E3,ep_dispatcher,fused,deepep\n")
    B.apply_software_rules(df, f)
    assert list(df["attention"]) == ["unfused", "flash", "flash"]
    assert df.at[0, "sp"] == "yes" and df.at[1, "sp"] == "no"  # printed "no" kept
    assert pd.isna(df.at[2, "sp"])  # group h has no sp rule
    assert list(df["ep_dispatcher"]) == ["nccl", "nccl", "fused"]
    assert list(df["tp_comm_overlap"]) == ["no", "no", "no"]
    assert "old" in df.at[0, "derivation"] and "overlap" in df.at[0, "derivation"]
    # 94 layers cannot split evenly over 8 stages: balanced, with the reason; 96 over
    # 8 x 2 can (uniform, the default); no layer count: the default
    assert list(df["pp_layout"]) == ["balanced", "uniform", "uniform"]
    assert "94 layers do not divide into pp x vpp = 8" in df.at[0, "derivation"]


def test_fabrics_set_the_cluster_network_of_matching_rows_only(tmp_path):
    df = pd.DataFrame({"row_id": ["E1", "E2", "E3"],
                       "inter_node_fabric": ["4 x 100Gb RoCE per node", np.nan,
                                             "4 x 100Gb RoCE per node"],
                       "chips_per_node": [8.0, 8.0, 4.0], "derivation": ["", "", ""]})
    table = tmp_path / "fabrics.csv"
    table.write_text("inter_node_fabric,chips_per_node,scaleout_bytes_per_s,source\n"
                     "4 x 100Gb RoCE per node,8,6.25e9,the doc\n")
    B.apply_fabrics(df, table)
    assert list(df.columns).index("scaleout_bytes_per_s") == 2  # after the fabric
    got = df["scaleout_bytes_per_s"].to_numpy()
    assert got[0] == 6.25e9 and np.isnan(got[1]) and np.isnan(got[2])  # 4 per node: no
    assert "the doc" in df.at[0, "derivation"] and df.at[1, "derivation"] == ""
    table.write_text("inter_node_fabric,chips_per_node,scaleout_bytes_per_s,source\n"
                     "Slingshot,4,2.5e10,unused\n")
    with pytest.raises(SystemExit, match="no training run has inter_node_fabric"):
        B.apply_fabrics(df.drop(columns="scaleout_bytes_per_s"), table)
    table.write_text("inter_node_fabric,chips_per_node,scaleout_bytes_per_s,source\n"
                     "4 x 100Gb RoCE per node,8,fast,bad\n")
    with pytest.raises(SystemExit, match="scaleout_bytes_per_s"):
        B.apply_fabrics(df.drop(columns="scaleout_bytes_per_s"), table)


@pytest.mark.skipif(not (REFERENCE / "e2e_training.csv").is_file(),
                    reason="reference tables not available")
def test_shipped_benchmarks_are_what_the_build_makes():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "build_benchmarks.py"),
                          "--reference", str(REFERENCE), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
