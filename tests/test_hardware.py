"""Chip database: loading, validation, lookup, unit conversions at the CSV boundary."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcost.errors import DataError, UnknownChipError
from jaxcost.io.paths import data_dir
from jaxcost.model.hardware import (
    CHIP_REQUIRED_COLUMNS,
    ChipSpec,
    get_chip,
    load_chips,
    stack_chips,
)

REPO = Path(__file__).resolve().parent.parent
CHIPS_CSV = data_dir() / "chips.csv"
REFERENCE = REPO.parent / "shared" / "reference"


def _rows():
    with open(CHIPS_CSV, newline="") as f:
        return list(csv.DictReader(f))


def test_every_chip_loads_with_a_source():
    chips = load_chips()
    assert len(chips) == 30
    for row in _rows():
        assert row["source"].strip(), row["key"]
        assert row["kind"] in ("vendor_spec", "estimated"), row["key"]
        assert row["key"] in chips


def test_keys_match_benchmark_chip_keys():
    # chip_key values used by the published benchmark files (data/benchmarks)
    used = ["A100-SXM", "H100-SXM", "A800-SXM", "H800-SXM", "B200", "V100", "TPUv4",
            "Ascend910B", "Ascend910A", "H20", "L20", "L40S", "H100-PCIe", "H200",
            "Gaudi2", "Gaudi3", "MI300X"]
    chips = load_chips()
    for key in used:
        assert key in chips, key
    assert chips["A100-SXM"].hbm_capacity_bytes == 80e9
    assert chips["A100-SXM-40GB"].hbm_capacity_bytes == 40e9


def test_si_conversions_h100():
    h100 = get_chip("H100-SXM")
    # exact decimal conversions: rtol 1e-12
    np.testing.assert_allclose(h100.peak_flop_per_s_bf16, 989.4e12, rtol=1e-12)
    np.testing.assert_allclose(h100.hbm_capacity_bytes, 80e9, rtol=1e-12)
    np.testing.assert_allclose(h100.hbm_bytes_per_s, 3.35e12, rtol=1e-12)
    # NVLink4 900 GB/s bidirectional -> 450 GB/s per direction
    np.testing.assert_allclose(h100.scaleup_bytes_per_s, 450e9, rtol=1e-12)
    # 400 Gbit/s NIC -> 50 GB/s
    np.testing.assert_allclose(h100.scaleout_bytes_per_s, 50e9, rtol=1e-12)
    # the 2022 rule's I/O stays bidirectional
    np.testing.assert_allclose(h100.io_bidir_bytes_per_s, 1028e9, rtol=1e-12)
    np.testing.assert_allclose(h100.die_area_m2, 814e-6, rtol=1e-12)
    assert h100.family == "hopper" and h100.datacenter and h100.memory_type == "HBM3"


def test_unknown_is_nan_and_absent_is_zero():
    chips = load_chips()
    assert math.isnan(chips["Gaudi3"].die_area_m2)  # undisclosed
    assert math.isnan(chips["MI308X"].price_usd)
    assert chips["H100-SXM"].peak_flop_per_s_fp4 == 0.0  # no FP4 before Blackwell
    assert chips["A100-SXM"].peak_flop_per_s_fp8 == 0.0  # no FP8 on Ampere
    assert chips["L40S"].scaleup_bytes_per_s == 0.0  # PCIe only
    assert chips["B200"].peak_flop_per_s_fp4 > 0


@pytest.mark.parametrize("query,key", [
    ("H100-SXM", "H100-SXM"), ("h100-sxm", "H100-SXM"),
    ("NVIDIA H100 SXM5", "H100-SXM"),
    ("nvidia h20", "H20"), ("h100 sxm", "H100-SXM"), ("ascend 910b", "Ascend910B"),
])
def test_get_chip_by_key_or_name(query, key):
    assert get_chip(query).key == key


def test_get_chip_unknown_lists_close_matches():
    with pytest.raises(UnknownChipError) as info:
        get_chip("H10")
    msg = str(info.value)
    assert "unknown chip 'H10'" in msg and "close matches" in msg and "H100" in msg
    assert "\n" not in msg


def _good_row():
    return {r["key"]: r for r in _rows()}["H100-SXM"]


@pytest.mark.parametrize("column,value,expect", [
    ("hbm_bytes_per_s", "fast", "expected a number"),
    ("hbm_bytes_per_s", "", "blank cell"),
    ("peak_flop_per_s_bf16", "-1", "expected a positive number"),
    ("tdp_w", "-5", "non-negative"),
    ("die_area_m2", "0", "positive"),
    ("datacenter", "maybe", "not a boolean"),
    ("key", "", "blank cell"),
])
def test_from_row_names_file_row_column(column, value, expect):
    row = dict(_good_row())
    row[column] = value
    with pytest.raises(DataError) as info:
        ChipSpec.from_row(row, file="chips.csv", row=7)
    msg = str(info.value)
    assert msg.startswith("chips.csv row 7 (line 8), column")
    assert f"'{column}'" in msg and expect in msg and "\n" not in msg


def test_from_row_missing_column():
    row = dict(_good_row())
    del row["hbm_capacity_bytes"]
    with pytest.raises(DataError, match=r"row 3 \(line 4\), column 'hbm_capacity_b"):
        ChipSpec.from_row(row, file="x.csv", row=3)


def _write(path, rows, header=None):
    header = header or list(rows[0])
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def test_load_chips_malformed_and_duplicate(tmp_path):
    rows = _rows()[:3]
    bad = [dict(r) for r in rows]
    bad[1]["hbm_bytes_per_s"] = "3.35 TB/s"
    path = tmp_path / "bad.csv"
    _write(path, bad)
    with pytest.raises(DataError) as info:
        load_chips(path)
    assert str(info.value).startswith(f"{path} row 2 (line 3), column 'hbm_bytes_pe")

    dup = [dict(r) for r in rows]
    dup[2]["key"] = dup[0]["key"]
    _write(path, dup)
    with pytest.raises(DataError, match="duplicated key"):
        load_chips(path)

    header = [c for c in rows[0] if c != "tdp_w"]
    _write(path, [{k: r[k] for k in header} for r in rows], header)
    with pytest.raises(DataError, match=r"bad\.csv, column 'tdp_w': missing required"):
        load_chips(path)

    with pytest.raises(DataError, match="cannot read"):
        load_chips(tmp_path / "missing.csv")


def test_required_columns_present_in_shipped_file():
    header = list(_rows()[0])
    for column in CHIP_REQUIRED_COLUMNS:
        assert column in header


def test_stack_chips_keeps_leaves():
    chips = list(load_chips().values())[:4]
    stacked = stack_chips(chips)
    np.testing.assert_allclose(
        stacked.hbm_bytes_per_s, [c.hbm_bytes_per_s for c in chips], rtol=1e-12)


@pytest.mark.skipif(not (REFERENCE / "chips.csv").is_file(),
                    reason="reference tables not available")
def test_build_script_reproduces_shipped_files(tmp_path):
    subprocess.run([sys.executable, str(REPO / "tools" / "build_chips.py"),
                    "--reference", str(REFERENCE), "--out-dir", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("chips.csv", "chip_classifications.csv"):
        assert (tmp_path / name).read_bytes() == (data_dir() / name).read_bytes()
