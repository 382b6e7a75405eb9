"""One validation layer for every input table (jaxcost.io.schema).

Chips, models, priors, goodput parameters, benchmark files and scenarios are each
declared as a schema (a tuple of ``Column``) and validated by the same generic code:
a bad cell is one line naming the file, the data row with its line, the column and
what was expected; every problem of a file is collected (``err.problems``); the CLI
exits with status 2 and one ``jaxcost:`` line.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

import pytest

from jaxcost.cli import app as cli
from jaxcost.errors import DataError, JaxcostError, ScenarioError, UnknownChipError
from jaxcost.io import benchmarks, schema
from jaxcost.io.paths import data_dir, default_scenario_path, scenarios_dir
from jaxcost.model import goodput, hardware, params, workload
from jaxcost.policy import scenario

DATA = data_dir()


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _bad_copy(src: Path, dst: Path, cells: dict[tuple[int, str], str]) -> Path:
    """``src`` with ``cells[(data row, column)]`` replaced (data rows 1-based)."""
    rows = _rows(src)
    for (row, column), value in cells.items():
        rows[row][rows[0].index(column)] = value
    with open(dst, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return dst


def _one_line(err: JaxcostError) -> str:
    msg = str(err)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------ the schemas


@pytest.mark.parametrize("columns", [
    hardware.CHIP_COLUMNS, workload.MODEL_COLUMNS, params.PRIOR_COLUMNS,
    goodput.GOODPUT_COLUMNS, benchmarks.TRAINING_RUNS_SCHEMA,
    benchmarks.COLLECTIVES_SCHEMA, benchmarks.KERNELS_SCHEMA,
    scenario.TOP_KEYS, scenario.LIMIT_KEYS, scenario.CANDIDATE_KEYS,
], ids=["chips", "models", "priors", "goodput", "training_runs", "collectives",
        "kernels", "scenario", "scenario_limits", "scenario_candidate"])
def test_every_table_is_a_schema_of_columns(columns):
    assert columns and all(isinstance(c, schema.Column) for c in columns)
    names = [c.name for c in columns]
    assert len(set(names)) == len(names)
    assert all(callable(c.parse) for c in columns)
    assert schema.schema_markdown(columns).count("\n") == len(columns) + 1


def test_shipped_tables_validate_clean():
    assert len(hardware.load_chips()) >= 20
    assert len(workload.load_models()) >= 20
    assert params.default_params() is not None
    assert "default" in goodput.goodput_variants()
    for kind in benchmarks.BENCHMARK_KINDS:
        assert len(benchmarks.load_benchmarks(kind)) > 0
    assert scenario.load_scenario().name == "default"


# ------------------------------------------------------------ one bad cell


@pytest.mark.parametrize("name, load, cell, column, expected", [
    ("chips.csv", hardware.load_chips, "fast", "hbm_bytes_per_s",
     "value 'fast' is not a number; expected a number in SI units"),
    ("models.csv", workload.load_models, "abc", "d_model",
     "value 'abc' is not a number; expected a whole number"),
    ("priors.csv", params.default_params, "-3", "prior_sigma_raw",
     "value '-3' must be > 0; expected a positive number"),
    ("goodput.csv", goodput.load_goodput_params, "inf", "value",
     "value 'inf' is not finite; expected a finite number"),
    ("benchmarks/kernels.csv",
     lambda p: benchmarks.load_benchmarks("kernels", p), "2.5", "m",
     "value '2.5' is not a whole number; expected a count"),
])
def test_bad_cell_is_one_line_naming_file_row_line_column(
        tmp_path, name, load, cell, column, expected):
    path = _bad_copy(DATA / name, tmp_path / Path(name).name, {(2, column): cell})
    with pytest.raises(DataError) as info:
        load(path)
    err = info.value
    assert _one_line(err) == f"{path} row 2 (line 3), column '{column}': {expected}"
    assert (err.file, err.row, err.line, err.column) == (str(path), 2, 3, column)
    assert len(err.problems) == 1


def test_rows_are_data_rows_and_lines_are_lines(tmp_path):
    # a blank line moves the line, not the row
    rows = _rows(DATA / "chips.csv")[:4]
    rows[3][rows[0].index("tdp_w")] = "-5"
    text = "\n".join(",".join(f'"{c}"' for c in r) for r in rows[:3])
    path = tmp_path / "chips.csv"
    path.write_text(text + "\n\n" + ",".join(f'"{c}"' for c in rows[3]) + "\n")
    with pytest.raises(DataError, match=r"chips\.csv row 3 \(line 5\), column 'tdp_w'"):
        hardware.load_chips(path)


def test_scenario_key_is_named(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(default_scenario_path().read_text().replace("pue = 1.3",
                                                                "pue = 20"))
    with pytest.raises(ScenarioError) as info:
        scenario.load_scenario(path)
    assert _one_line(info.value) == (
        f"{path}, key 'limits.pue': expected a number in [1, 10), got 20.0")


def test_unknown_chip_key_is_its_own_class(tmp_path):
    path = _bad_copy(DATA / "benchmarks" / "kernels.csv", tmp_path / "k.csv",
                     {(1, "chip_key"): "H999"})
    with pytest.raises(UnknownChipError, match=r"row 1 \(line 2\), column 'chip_key'"):
        benchmarks.load_benchmarks("kernels", path)


# ------------------------------------------------------------ every problem


@pytest.mark.parametrize("name, load, cells", [
    ("chips.csv", hardware.load_chips,
     {(4, "year"): "soon", (2, "datacenter"): "maybe", (2, "key"): ""}),
    ("models.csv", workload.load_models,
     {(5, "mlp"): "relu", (3, "kind"): "guess", (3, "source"): ""}),
    ("priors.csv", params.prior_sigmas,
     {(5, "transform"): "exp", (2, "value"): "x", (3, "value"): "0"}),
    ("goodput.csv", goodput.goodput_variants,
     {(3, "kind"): "guess", (1, "unit"): "h",
      (5, "name"): "failure_rate_per_chip_s__bloom"}),
    ("benchmarks/collectives.csv",
     lambda p: benchmarks.load_benchmarks("collectives", p),
     {(9, "n_ranks"): "0", (2, "collective_kind"): "gossip", (3, "row_id"): "C0001"}),
])
def test_every_problem_of_a_file_is_collected(tmp_path, name, load, cells):
    path = _bad_copy(DATA / name, tmp_path / Path(name).name, cells)
    with pytest.raises(DataError) as info:
        load(path)
    err = info.value
    assert {(p.row, p.column) for p in err.problems} == set(cells)
    rows = [p.row for p in err.problems]
    assert rows == sorted(rows)  # in row order
    first = err.problems[0]
    assert _one_line(err).startswith(str(first).split(": ", 1)[0])
    assert _one_line(err).endswith(f"(1 of {len(cells)} problems in this file)")


def test_missing_columns_are_collected_and_name_no_row(tmp_path):
    rows = _rows(DATA / "chips.csv")
    keep = [i for i, h in enumerate(rows[0]) if h not in ("tdp_w", "year")]
    path = tmp_path / "chips.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in keep] for r in rows])
    with pytest.raises(DataError) as info:
        hardware.load_chips(path)
    assert {(p.row, p.column) for p in info.value.problems} == {
        (None, "tdp_w"), (None, "year")}
    assert str(info.value).startswith(f"{path}, column '")


def test_every_problem_of_a_scenario_is_collected(tmp_path):
    text = default_scenario_path().read_text()
    text = text.replace("pue = 1.3", "pue = 0.5").replace('objective = "time"',
                                                          'objective = "speed"')
    path = tmp_path / "s.toml"
    path.write_text(text.replace('"H20",', '"H2O",'))
    with pytest.raises(ScenarioError) as info:
        scenario.load_scenario(path)
    keys = [p.row for p in info.value.problems]
    assert keys == ["key 'objective'", "key 'chips.candidates[1].name'",
                    "key 'limits.pue'"]
    assert _one_line(info.value).endswith("(1 of 3 problems in this file)")


# ------------------------------------------------------------ through the CLI


def _cli(argv: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(argv)
    return rc, err.getvalue().splitlines()


def _data_with(tmp_path: Path, name: str, cells: dict) -> Path:
    """A data folder of links to the shipped one, with ``name`` made bad."""
    folder = tmp_path / "data"
    folder.mkdir()
    for entry in DATA.iterdir():
        (folder / entry.name).symlink_to(entry)
    (folder / name).unlink()
    _bad_copy(DATA / name, folder / name, cells)
    return folder


def test_cli_chips_bad_cell_exits_2(tmp_path):
    path = _bad_copy(DATA / "chips.csv", tmp_path / "chips.csv",
                     {(2, "hbm_bytes_per_s"): "fast"})
    rc, lines = _cli(["chips", "--chips", str(path), "--out", str(tmp_path / "o.csv")])
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith(f"jaxcost: {path} row 2 (line 3), column "
                               "'hbm_bytes_per_s': value 'fast' is not a number")
    assert not (tmp_path / "o.csv").exists()


def test_cli_fit_bad_benchmark_exits_2(tmp_path):
    path = _bad_copy(DATA / "benchmarks" / "kernels.csv", tmp_path / "k.csv",
                     {(3, "value"): "-1"})
    rc, lines = _cli(["fit", str(path), "--out", str(tmp_path / "p.json")])
    assert rc == 2 and len(lines) == 1
    assert f"{path} row 3 (line 4), column 'value': value '-1' must be > 0" in lines[0]


def test_cli_optimize_bad_scenario_exits_2(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(default_scenario_path().read_text().replace("tokens = 2e12",
                                                                "tokens = -1"))
    rc, lines = _cli(["optimize", str(path), "--out", str(tmp_path / "o")])
    assert rc == 2 and len(lines) == 1
    assert f"{path}, key 'training.tokens': expected a positive number" in lines[0]


@pytest.mark.parametrize("name, column, argv", [
    ("models.csv", "num_layers", []),
    ("priors.csv", "value", ["--priors"]),
])
def test_cli_optimize_bad_shipped_table_exits_2(tmp_path, monkeypatch, name, column,
                                                argv):
    folder = _data_with(tmp_path, name, {(4, column): "many"})
    monkeypatch.setenv("JAXCOST_DATA_DIR", str(folder))
    shutil.copytree(scenarios_dir(), tmp_path / "scenarios")
    monkeypatch.setenv("JAXCOST_SCENARIOS_DIR", str(tmp_path / "scenarios"))
    rc, lines = _cli(["optimize", *argv, "--out", str(tmp_path / "o")])
    assert rc == 2 and len(lines) == 1
    where = f"{folder / name} row 4 (line 5), column '{column}'"
    assert f"{where}: value 'many'" in lines[0]
