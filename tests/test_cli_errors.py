"""Bad input at the command line: exit status 2, one line on stderr, no output file.

For every subcommand and every class of bad input file (missing, a folder, empty,
non-UTF-8 bytes, malformed content, an impossible request, an output path that cannot
be written) the command must print exactly one line ``jaxcost: <message>`` on stderr
naming the file, exit with status 2, show no traceback, and leave neither the
``--out`` target nor a temporary file behind.

The whole matrix runs in process through :func:`jaxcost.cli.main` (cheap); a subset
covering every subcommand runs the real ``python -m jaxcost`` as subprocesses, one in
each test (so that a test worker runs only the subprocesses of its own tests).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcost.cli import app as cli
from jaxcost.model import params

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
COMMANDS = set(cli.build_parser()._subparsers._group_actions[0].choices)


# ----------------------------------------------------------------- bad input files
def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def _rows(path: Path, n: int) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))[: n + 1]


def _generic(folder: Path, suffix: str) -> dict[str, Path]:
    """The classes every file input shares: missing, folder, empty, non-UTF-8."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"adir{suffix}").mkdir()
    (folder / f"empty{suffix}").write_bytes(b"")
    (folder / f"latin1{suffix}").write_bytes("caf\u00e9 = \u00e9\n".encode("latin-1"))
    return {"missing": folder / f"missing{suffix}", "folder": folder / f"adir{suffix}",
            "empty": folder / f"empty{suffix}", "latin1": folder / f"latin1{suffix}"}


def _bad_chips(folder: Path) -> dict[str, Path]:
    files = _generic(folder, ".csv")
    rows = _rows(DATA / "chips.csv", 3)
    rows[2][rows[0].index("hbm_bytes_per_s")] = "fast"
    files["bad_cell"] = _write_csv(folder / "badcell_chips.csv", rows)
    rows = _rows(DATA / "chips.csv", 3)
    files["missing_column"] = _write_csv(
        folder / "nocol_chips.csv", [r[:3] + r[4:] for r in rows])
    rows = _rows(DATA / "chips.csv", 3)
    rows[3][rows[0].index("tdp_w")] = "nan"
    files["nan_cell"] = _write_csv(folder / "nan_chips.csv", rows)
    files["header_only"] = _write_csv(folder / "header_chips.csv", rows[:1])
    return files


def _bad_regime_dirs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {"missing": folder / "no_such_dir", "a_file": folder / "afile.toml"}
    out["a_file"].write_text("x = 1\n")
    (folder / "emptydir").mkdir()
    out["empty"] = folder / "emptydir"

    def variant(name: str, edit) -> Path:
        d = folder / name
        shutil.copytree(DATA / "regimes", d)
        p = d / "2022-10.toml"
        p.write_bytes(edit(p.read_bytes()))
        return d

    out["toml_syntax"] = variant("syntax", lambda b: b.replace(b"[[rule]]", b"[[rule]",
                                                               1))
    out["when_syntax"] = variant("when", lambda b: b.replace(b"tpp >= 4800",
                                                             b"tpp >= = 4800", 1))
    out["unknown_name"] = variant("name", lambda b: b.replace(b"tpp >= 4800",
                                                              b"tpps >= 4800", 1))
    out["consequence"] = variant("cons", lambda b: b.replace(b'"prohibited"',
                                                             b'"banned"', 1))
    out["latin1"] = variant("latin", lambda b: b.replace(b"A100", b"A\xe9100", 1))
    return out


_GOOD_SCENARIO = """regime = "baseline"
[model]
name = "llama2-7b"
[training]
tokens = 1e9
[chips]
candidates = ["H100-SXM"]
[limits]
budget_usd = 1e9
"""


def _bad_scenarios(folder: Path) -> dict[str, Path]:
    files = _generic(folder, ".toml")

    def sc(name: str, text: str) -> Path:
        p = folder / f"{name}.toml"
        p.write_text(text)
        return p

    files["toml_syntax"] = sc("syntax", _GOOD_SCENARIO.replace("[limits]", "[limits"))
    files["unknown_chip"] = sc("unknownchip", _GOOD_SCENARIO.replace("H100-SXM",
                                                                     "H900-XYZ"))
    files["negative_budget"] = sc("negbudget", _GOOD_SCENARIO.replace("1e9\n", "-5\n"))
    files["wrong_type"] = sc("wrongtype", _GOOD_SCENARIO.replace("tokens = 1e9",
                                                                 'tokens = "many"'))
    files["unknown_key"] = sc("unknownkey", _GOOD_SCENARIO + "colour = 3\n")
    files["unknown_regime"] = sc("noregime", _GOOD_SCENARIO.replace("baseline",
                                                                    "1999-01"))
    files["infeasible"] = sc("infeasible", _GOOD_SCENARIO.replace("1e9\n", "1000\n"))
    return files


def _bad_params(folder: Path) -> dict[str, Path]:
    files = _generic(folder, ".json")
    good = folder / "good_params.json"
    params.save_params(good, params.default_params(), {})
    text = good.read_text()
    (folder / "truncated.json").write_text(text[: len(text) // 2])
    files["truncated"] = folder / "truncated.json"
    doc = json.loads(text)
    (folder / "version.json").write_text(json.dumps(dict(doc, version=999)))
    files["wrong_version"] = folder / "version.json"
    name = next(iter(doc["global"]))
    doc["global"][name] = float("nan")
    (folder / "nan.json").write_text(json.dumps(doc))  # a bare NaN token
    files["non_finite"] = folder / "nan.json"
    return files


def _bad_runs(folder: Path) -> dict[str, Path]:
    """User run CSVs for ``fit`` / ``predict`` (the training-runs columns)."""
    files = _generic(folder, ".csv")
    src = DATA / "benchmarks" / "training_runs.csv"
    rows = _rows(src, 4)
    hdr = rows[0]
    bad = [list(r) for r in rows]
    bad[2][hdr.index("n_chips")] = "many"
    files["bad_cell"] = _write_csv(folder / "badcell_runs.csv", bad)
    files["header_only"] = _write_csv(folder / "header_runs.csv", rows[:1])
    bad = [list(r) for r in rows]
    bad[1][hdr.index("chip_key")] = "NOPE-9000"
    files["unknown_chip"] = _write_csv(folder / "unknownchip_runs.csv", bad)
    return files


# -------------------------------------------------------------------------- cases
def _cases(tmp: Path) -> list[tuple[str, list[str], Path, Path]]:
    """(case id, argv, the bad path the message must name, the --out target)."""
    cases = []
    outs = tmp / "outs"

    def out_for(cid: str, name: str) -> Path:
        d = outs / cid.replace("/", "_")
        d.mkdir(parents=True)
        return d / name

    for cls, p in _bad_chips(tmp / "chips").items():
        for cmd in ("chips", "classify"):
            cid = f"{cmd}/chips-{cls}"
            out = out_for(cid, "out.csv")
            cases.append((cid, [cmd, "--chips", str(p), "--out", str(out)], p, out))
    for cls, p in _bad_regime_dirs(tmp / "regimes").items():
        cid = f"classify/regimes-{cls}"
        out = out_for(cid, "out.csv")
        named = p / "2022-10.toml" if (p / "2022-10.toml").exists() else p
        cases.append((cid, ["classify", "--regimes-dir", str(p), "--out", str(out)],
                      named, out))
    blocker = tmp / "blocker"
    blocker.write_text("a file where a folder is expected\n")
    for cmd in ("chips", "classify"):
        out = blocker / "out.csv"
        cases.append((f"{cmd}/out-unwritable", [cmd, "--out", str(out)], blocker, out))
    if "optimize" in COMMANDS:
        for cls, p in _bad_scenarios(tmp / "scen").items():
            cid = f"optimize/scenario-{cls}"
            out = out_for(cid, "result")
            cases.append((cid, ["optimize", str(p), "--out", str(out)], p, out))
        scen = tmp / "scen" / "good.toml"
        scen.write_text(_GOOD_SCENARIO)
        for cls, p in _bad_params(tmp / "params").items():
            cid = f"optimize/params-{cls}"
            out = out_for(cid, "result")
            cases.append((cid, ["optimize", str(scen), "--params", str(p), "--out",
                                str(out)], p, out))
    runs = _bad_runs(tmp / "runs")
    good_params = tmp / "good_params.json"
    params.save_params(good_params, params.default_params(), {})
    for cmd in ("fit", "predict"):
        if cmd not in COMMANDS:
            continue
        extra = ["--params", str(good_params)] if cmd == "predict" else []
        for cls, p in runs.items():
            cid = f"{cmd}/runs-{cls}"
            out = out_for(cid, "out.json" if cmd == "fit" else "out.csv")
            cases.append((cid, [cmd, str(p), "--out", str(out), *extra], p, out))
    if "validate" in COMMANDS:
        # file-level faults (row-level problems are listed, exit 1: test_byo_runs)
        for cls in ("missing", "folder", "empty", "latin1", "header_only"):
            cid = f"validate/runs-{cls}"
            out = out_for(cid, "unused.csv")  # validate writes nothing
            cases.append((cid, ["validate", str(runs[cls])], runs[cls], out))
    if "predict" in COMMANDS:
        good_runs = _write_csv(tmp / "runs" / "good_runs.csv",
                               _rows(DATA / "benchmarks" / "training_runs.csv", 2))
        for cls, p in _bad_params(tmp / "predict_params").items():
            cid = f"predict/params-{cls}"
            out = out_for(cid, "out.csv")
            cases.append((cid, ["predict", str(good_runs), "--params", str(p), "--out",
                                str(out)], p, out))
    return cases


#: the cases also run as real subprocesses (every subcommand, several classes)
SUBPROCESS_CASES = {
    "chips/chips-latin1", "chips/out-unwritable", "classify/regimes-when_syntax",
    "optimize/scenario-infeasible", "optimize/params-truncated",
    "fit/runs-bad_cell", "predict/runs-missing",
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return {c[0]: c for c in _cases(tmp_path_factory.mktemp("cli_errors"))}


def _check(cid: str, rc: int, stderr: str, named: Path, out: Path) -> None:
    assert "Traceback" not in stderr, f"{cid}: {stderr}"
    lines = stderr.splitlines()
    assert rc == 2, f"{cid}: exit {rc}, stderr {stderr!r}"
    assert len(lines) == 1, f"{cid}: {lines}"
    assert lines[0].startswith("jaxcost: "), f"{cid}: {lines[0]}"
    assert named.name in lines[0], f"{cid}: file not named: {lines[0]}"
    assert not out.exists(), f"{cid}: output written"
    if out.parent.is_dir():
        assert not list(out.parent.iterdir()), f"{cid}: files left in the output folder"


def _case_ids() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return [c[0] for c in _cases(Path(d))]


CASE_IDS = _case_ids()


@pytest.mark.parametrize("cid", CASE_IDS)
def test_in_process(cid, cases, capsys):
    _, argv, named, out = cases[cid]
    rc = cli.main(argv)
    captured = capsys.readouterr()
    _check(cid, rc, captured.err, named, out)


@pytest.mark.parametrize("cid", sorted(SUBPROCESS_CASES))
def test_subprocess(cid, cases):
    if cid not in cases:
        pytest.skip(f"subcommand {cid.split('/')[0]} not present")
    _, argv, named, out = cases[cid]
    proc = subprocess.run([sys.executable, "-m", "jaxcost", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    _check(cid, proc.returncode, proc.stderr, named, out)
    assert proc.stdout == "", f"{cid}: printed {proc.stdout!r}"


def test_every_subcommand_is_covered():
    """Each subcommand has bad-input cases here (a new one must add its own)."""
    covered = {c.split("/")[0] for c in CASE_IDS}
    assert COMMANDS <= covered, sorted(COMMANDS - covered)
