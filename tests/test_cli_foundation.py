"""CLI: `jaxcost chips` and `jaxcost classify`, and clean one-line input errors."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcost.cli import app as cli
from jaxcost.io.paths import data_dir
from jaxcost.model.hardware import load_chips
from jaxcost.policy.export_control import classify, load_regimes

REPO = Path(__file__).resolve().parent.parent


def _run(*args):
    return subprocess.run([sys.executable, "-m", "jaxcost", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_classify_all_writes_tidy_csv(tmp_path, capsys):
    out = tmp_path / "cls.csv"
    assert cli.main(["classify", "--all", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["chip", "baseline", "2022-10"]
    h20 = next(line for line in printed if line.startswith("H20 "))
    assert "PROHIBITED" in h20 and "license (15% share)" in h20
    rows = _read(out)
    chips, regimes = load_chips(), load_regimes()
    assert len(rows) == len(chips) * len(regimes)
    for row in rows[::17]:
        want = classify(chips[row["chip_key"]], regimes[row["regime_id"]])
        assert row["consequence"] == want.consequence.value


def test_classify_one_regime_and_chips(tmp_path, capsys):
    assert cli.main(["classify", "--regime", "2023-10"]) == 0
    printed = capsys.readouterr().out
    assert "2023-10" in printed and "2022-10" not in printed
    out = tmp_path / "chips.csv"
    assert cli.main(["chips", "--out", str(out)]) == 0
    rows = _read(out)
    assert len(rows) == 30
    h100 = next(r for r in rows if r["key"] == "H100-SXM")
    assert float(h100["tpp"]) == pytest.approx(15832.0, rel=1e-6)  # 6 digits written
    assert float(h100["hbm_bytes_per_s"]) == pytest.approx(3.35e12, rel=1e-6)


def _bad_chips(tmp_path):
    rows = _read(data_dir() / "chips.csv")[:2]
    rows[1]["peak_flop_per_s_bf16"] = "lots"
    path = tmp_path / "bad_chips.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _assert_clean_error(res, *fragments):
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("jaxcost: ")
    assert "Traceback" not in res.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_malformed_chip_row_subprocess(tmp_path):
    bad = _bad_chips(tmp_path)
    out = tmp_path / "out.csv"
    res = _run("classify", "--chips", str(bad), "--out", str(out))
    _assert_clean_error(res, str(bad), "row 2 (line 3)",
                        "column 'peak_flop_per_s_bf16'")
    assert not out.exists()


def test_regime_syntax_error_subprocess(tmp_path):
    folder = tmp_path / "regimes"
    folder.mkdir()
    (folder / "r1.toml").write_text(
        '[regime]\nid = "r1"\nname = "x"\ncitation = "x"\ndate = "2024-01-01"\n'
        'confidence = "x"\ndestination = "PRC"\n\n[[rule]]\nwhen = "tpp >= 4800 and"\n'
        'consequence = "prohibited"\n')
    out = tmp_path / "out.csv"
    res = _run("classify", "--regimes-dir", str(folder), "--out", str(out))
    _assert_clean_error(res, str(folder / "r1.toml"), "rule 1", "column 'when'",
                        "position 15")
    assert not out.exists()


@pytest.mark.parametrize("argv,fragments", [
    (["classify", "--regime", "1999-01"], ["unknown regime '1999-01'"]),
    (["chips", "--chips", "/nonexistent/chips.csv"], ["cannot read"]),
])
def test_input_errors_exit_2_in_process(tmp_path, capsys, argv, fragments):
    out = tmp_path / "out.csv"
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxcost: ") and "\n" not in err
    for fragment in fragments:
        assert fragment in err
    assert not out.exists()


def test_unknown_name_in_condition_exits_2(tmp_path, capsys):
    folder = tmp_path / "regimes"
    folder.mkdir()
    (folder / "r2.toml").write_text(
        '[regime]\nid = "r2"\nname = "x"\ncitation = "x"\ndate = "2024-01-01"\n'
        'confidence = "x"\ndestination = "PRC"\n\n[[rule]]\nwhen = "True"\n'
        'consequence = "allowed"\n\n[[rule]]\nwhen = "flops > 1"\n'
        'consequence = "prohibited"\n')
    out = tmp_path / "out.csv"
    assert cli.main(["classify", "--regimes-dir", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{folder / 'r2.toml'}, rule 2, column 'when'" in err
    assert "unknown name 'flops'" in err and "\n" not in err
    assert not out.exists()
