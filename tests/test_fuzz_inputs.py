"""Fuzzing the input files: every mutation of a shipped file loads or fails cleanly.

Each input class (benchmark CSVs, the chips CSV, regime TOML, scenario TOML, parameters
JSON) starts from a shipped file, applies one generated mutation (a column dropped or
added, a cell replaced by text / NaN / inf / a negative number, a row duplicated, an
unknown chip, an impossible plan, bytes inserted / deleted / truncated, non-UTF-8
bytes, a key removed, a value of the wrong type, ...) and checks the outcome:

* either the file loads, and then every numeric value is finite or NaN exactly where
  the cell was blank (no NaN slips through silently);
* or the loader raises a :class:`~jaxcost.errors.JaxcostError` whose message is one
  line naming the file (and, for a cell mutation, the row and the column);
* never any other exception.

The chips class goes through the real ``jaxcost chips --out`` entry point (in process),
which must also leave no output file and no temporary file behind on failure.

``benchmarks/fuzz_counts.py`` runs the same checkers with many more examples and
prints the number of cases per class. Examples are derandomised (seeded), so a run is
reproducible.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jaxcost import calibrate
from jaxcost.cli import app as cli
from jaxcost.errors import JaxcostError
from jaxcost.io import benchmarks as data
from jaxcost.model import hardware, params
from jaxcost.policy import export_control, scenario

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"

#: outcome counts per input class: "ok" (loaded), "error" (clean JaxcostError)
COUNTS: dict[str, Counter] = {}


def _count(cls: str, outcome: str) -> None:
    COUNTS.setdefault(cls, Counter())[outcome] += 1


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def assert_clean(err: BaseException, path: Path) -> str:
    """``err`` is a one-line JaxcostError naming ``path``; returns the message."""
    assert isinstance(err, JaxcostError), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, repr(msg)
    assert path.name in msg, f"file not named: {msg}"
    return msg


# ------------------------------------------------------------------ text mutations
#: cell values that must be rejected or accepted cleanly
BAD_TOKENS = ["abc", "nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "-0", "0.0",
              "1e400", "-1e-300", "1.5", "1,5", " ", "", "None", "TRUE", "x" * 300,
              "\u00bd", "12abc", "0x10", "1_000", "'1'", "\"\"", "\t7", "1e-320"]
_INSERT_CHARS = "()[]<>=!\"',.+-*/_ \t\n\\#{}abcxyz019e\u00e9\x00"

_byte_edit = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1),
              st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("insert"), st.floats(0, 1),
              st.text(_INSERT_CHARS, min_size=1, max_size=3).map(str.encode)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 8)),
    st.tuples(st.just("latin1"), st.floats(0, 1)),
)


def apply_byte_edit(raw: bytes, edit) -> bytes:
    """Apply one byte-level edit (positions are fractions of the length)."""
    kind, frac = edit[0], edit[1]
    i = min(int(frac * len(raw)), len(raw))
    if kind == "truncate":
        return raw[:i]
    if kind == "insert":
        return raw[:i] + edit[2] + raw[i:]
    if kind == "delete":
        return raw[:i] + raw[i + edit[2]:]
    return raw[:i] + "\u00e9\u00df".encode("latin-1") + raw[i:]  # not UTF-8


# -------------------------------------------------------------------------- CSVs
def _read_rows(path: Path, n: int | None = None) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows if n is None else rows[: n + 1]


def _write_rows(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def csv_mutation(ncols: int, nrows: int, special_cols: dict[str, int]):
    """Strategy of CSV mutations for a file of ``nrows`` data rows, ``ncols`` columns.

    ``special_cols`` maps names (chip_key, tp, row_id) to their column index.
    """
    row = st.integers(0, nrows - 1)
    col = st.integers(0, ncols - 1)
    options = [
        st.tuples(st.just("cell"), row, col, st.sampled_from(BAD_TOKENS)),
        st.tuples(st.just("cell"), row, col, st.text(max_size=6)),
        st.tuples(st.just("drop_col"), col),
        st.tuples(st.just("extra_col"), st.sampled_from(["extra", "notes2", ""]),
                  st.sampled_from(["1", "", "x"])),
        st.tuples(st.just("dup_col"), col),
        st.tuples(st.just("dup_row"), row),
        st.tuples(st.just("ragged"), row, st.booleans()),
        st.tuples(st.just("empty")),
        st.tuples(st.just("header_only")),
        st.tuples(st.just("bytes"), _byte_edit),
    ]
    if "chip_key" in special_cols:
        options.append(st.tuples(st.just("unknown_chip"), row))
    if "tp" in special_cols:
        options.append(st.tuples(st.just("plan"), row,
                                 st.sampled_from(["3", "7", "64"])))
    return st.one_of(options)


def apply_csv_mutation(rows: list[list[str]], mut, special_cols) -> tuple[bytes, tuple]:
    """Return (file bytes, (row index, column name) of a mutated cell or ())."""
    rows = [list(r) for r in rows]
    header = rows[0]
    kind = mut[0]
    cell: tuple = ()
    if kind == "cell":
        _, r, c, tok = mut
        rows[r + 1][c] = tok
        cell = (r, header[c])
    elif kind == "drop_col":
        rows = [x[: mut[1]] + x[mut[1] + 1:] for x in rows]
    elif kind == "extra_col":
        rows = [rows[0] + [mut[1]]] + [x + [mut[2]] for x in rows[1:]]
    elif kind == "dup_col":
        rows = [x + [x[mut[1]]] for x in rows]
    elif kind == "dup_row":
        rows.insert(mut[1] + 2, list(rows[mut[1] + 1]))
    elif kind == "ragged":
        r = rows[mut[1] + 1]
        rows[mut[1] + 1] = r + ["1"] if mut[2] else r[:-1]
    elif kind == "empty":
        return b"", ()
    elif kind == "header_only":
        rows = rows[:1]
    elif kind == "unknown_chip":
        rows[mut[1] + 1][special_cols["chip_key"]] = "NOPE-9000"
        cell = (mut[1], "chip_key")
    elif kind == "plan":
        rows[mut[1] + 1][special_cols["tp"]] = mut[2]
        cell = (mut[1], "tp")
    elif kind == "bytes":
        return apply_byte_edit(_write_rows(rows), mut[1]), ()
    return _write_rows(rows), cell


def _check_numeric_frame(df, schema, path: Path) -> None:
    """Numeric schema columns are finite, NaN only where the raw cell is blank."""
    raw = __import__("pandas").read_csv(path, dtype=str, keep_default_na=False,
                                        na_values=[])
    raw.columns = [str(c).strip() for c in raw.columns]
    for col in schema:  # numeric columns: NaN for a blank cell
        name = col.name
        if not isinstance(col.default, float) or name not in raw.columns:
            continue
        vals = df[name].to_numpy(dtype=float)
        assert not np.any(np.isinf(vals)), name
        blank = np.array([str(x).strip() == "" for x in raw[name]], dtype=bool)
        # derived SI columns may be filled from their quoted column; never the reverse
        assert not np.any(np.isnan(vals) & ~blank), f"silent NaN in {name}"


def _cell_error_ok(err: JaxcostError, cell: tuple) -> None:
    """A cell mutation is reported with a row and a column."""
    if not cell:
        return
    assert err.row is not None and err.column is not None, str(err)
    if err.column != "row_id":
        assert f"(line {cell[0] + 2})" in str(err), (cell, str(err))


_BENCH_ROWS = 12
_BENCH = {kind: _read_rows(DATA / "benchmarks" / f"{kind}.csv", _BENCH_ROWS)
          for kind in data.BENCHMARK_KINDS}


def check_benchmark(kind: str, mut, tmpdir: Path) -> str:
    rows = _BENCH[kind]
    special = {n: rows[0].index(n) for n in ("chip_key", "tp") if n in rows[0]}
    content, cell = apply_csv_mutation(rows, mut, special)
    path = tmpdir / f"{kind}_fuzz.csv"
    path.write_bytes(content)
    try:
        df = data.load_benchmarks(kind, path)
    except Exception as err:  # noqa: BLE001 - the check is the point
        assert_clean(err, path)
        _cell_error_ok(err, cell)
        return "error"
    _check_numeric_frame(df, data._SCHEMAS[kind], path)
    return "ok"


def check_runs(mut, tmpdir: Path) -> str:
    """The ``predict`` path: ``load_runs`` then ``runs_to_arrays(strict=True)``."""
    rows = _BENCH["training_runs"]
    special = {n: rows[0].index(n) for n in ("chip_key", "tp")}
    content, cell = apply_csv_mutation(rows, mut, special)
    path = tmpdir / "runs_fuzz.csv"
    path.write_bytes(content)
    try:
        df = data.load_runs(path)
    except Exception as err:  # noqa: BLE001
        assert_clean(err, path)
        return "error"
    try:
        batch = calibrate.runs_to_arrays(df, hardware.load_chips(), strict=True)
    except Exception as err:  # noqa: BLE001
        # in-memory conversion: one line, with the row; the CLI adds the file name
        assert isinstance(err, JaxcostError), f"{type(err).__name__}: {err}"
        assert "\n" not in str(err)
        return "error"
    for name in ("num_chips", "target_value", "weight"):
        v = np.asarray(getattr(batch, name))
        assert np.all(np.isfinite(v)) and np.all(v > 0), f"non-finite {name}"
    for leaf in jax.tree.leaves((batch.workload, batch.plan)):
        assert np.all(np.isfinite(np.asarray(leaf))), "non-finite model or plan leaf"
    return "ok"


_CHIP_ROWS = _read_rows(DATA / "chips.csv", 6)


def _check_chip_values(chips: dict, path: Path) -> None:
    with open(path, encoding="utf-8") as f:
        raw = {r["key"].strip(): r for r in csv.DictReader(f)}
    for key, chip in chips.items():
        for name in hardware._NUMERIC_COLUMNS:
            v = float(getattr(chip, name))
            assert not math.isinf(v), name
            assert math.isnan(v) == (str(raw[key][name] or "").strip() == ""), \
                f"silent NaN in {key}.{name}"


def check_chips_cli(mut, tmpdir: Path) -> str:
    """``jaxcost chips --chips BAD --out OUT`` in process."""
    special = {"chip_key": _CHIP_ROWS[0].index("key")}
    content, cell = apply_csv_mutation(_CHIP_ROWS, mut, special)
    path = tmpdir / "chips_fuzz.csv"
    path.write_bytes(content)
    out_dir = tmpdir / "out"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / "chips_si.csv"
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        rc = cli.main(["chips", "--chips", str(path), "--out", str(out)])
    if rc == 0:
        _check_chip_values(hardware.load_chips(path), path)
        out.unlink()
        assert not list(out_dir.iterdir())
        return "ok"
    assert rc == 2
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxcost: "), lines
    assert path.name in lines[0]
    assert not list(out_dir.iterdir()), "partial or temporary file left"
    if cell:
        assert "row " in lines[0] and "column " in lines[0], lines[0]
    return "error"


# ---------------------------------------------------------------- TOML and JSON
def toml_dumps(doc: dict) -> str:
    """A TOML writer for the mutated documents (inline tables; enough for tests)."""

    def val(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {val(x)}"
                                   for k, x in v.items()) + "}"
        return json.dumps(str(v))  # dates and times

    return "".join(f"{json.dumps(str(k))} = {val(v)}\n" for k, v in doc.items())


def _paths(doc, prefix=()) -> list[tuple]:
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) \
        if isinstance(doc, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


_VALUES = st.one_of(
    st.sampled_from([0, -1, 1, 10**30, 2.5, -3.5, math.nan, math.inf, -math.inf, True,
                     "", "x", "H100-SXM", "NOPE-9000", [], [1, 2], ["a"], {},
                     {"a": 1}, [{"when": "True"}]]),
    st.text(max_size=8), st.integers(-10**6, 10**6),
)

structure_mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("replace"), st.integers(0, 10**6), _VALUES),
    st.tuples(st.just("add"), st.integers(0, 10**6), _VALUES),
)


def apply_structure_mutation(doc: dict, mut) -> dict:
    """Delete / replace a value at a generated path, or add an unknown key."""
    doc = json.loads(json.dumps(doc, default=str))
    paths = _paths(doc)
    path = paths[mut[1] % len(paths)]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if mut[0] == "delete":
        del parent[last]
    elif mut[0] == "replace":
        parent[last] = mut[2]
    else:
        target = parent[last] if isinstance(parent[last], dict) else parent
        if isinstance(target, dict):
            target["unknown_key_fz"] = mut[2]
        else:
            target.append(mut[2])
    return doc


def toml_text_mutation(keys: tuple[str, ...]):
    """Edits inside a quoted string value of one of ``keys``, or of the whole text."""
    return st.one_of(
        st.tuples(st.just("in_value"), st.sampled_from(keys), st.integers(0, 50),
                  st.floats(0, 1), st.sampled_from(["del", "ins"]),
                  st.text(_INSERT_CHARS, min_size=1, max_size=2)),
        st.tuples(st.just("in_value"), st.sampled_from(keys), st.integers(0, 50),
                  st.floats(0, 1), st.sampled_from(["set"]),
                  st.sampled_from(["foo > 1", "tpp >", "tpp >= 'x'", "1 + 2",
                                   "tpp in 3", "(" * 40 + "True" + ")" * 40,
                                   "(" * 3000, "not " * 2000 + "True", "1e999 > tpp",
                                   "tpp / 0 > 1", "vendor == 3", "[1, 'a'] == []"])),
        st.tuples(st.just("bytes"), _byte_edit),
    )


def apply_toml_text_mutation(text: str, mut) -> bytes:
    import re

    if mut[0] == "bytes":
        return apply_byte_edit(text.encode(), mut[1])
    _, key, which, frac, op, s = mut
    hits = list(re.finditer(rf'(?m)^\s*{re.escape(key)}\s*=\s*"([^"\n]*)"', text))
    if not hits:
        return text.encode()
    m = hits[which % len(hits)]
    a, b = m.span(1)
    value = text[a:b]
    i = int(frac * len(value))
    if op == "del":
        value = value[:i] + value[i + len(s):]
    elif op == "ins":
        value = value[:i] + s + value[i:]
    else:
        value = s
    value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return (text[:a] + value + text[b:]).encode()


# ------------------------------------------------------------------------ regimes
_REGIME_IDS = ("2022-10", "2023-10", "2025-01", "2025-04", "2026-01")
_TEST_CHIPS = None


def _chips():
    global _TEST_CHIPS
    if _TEST_CHIPS is None:
        allc = hardware.load_chips()
        _TEST_CHIPS = [allc[k] for k in ("H100-SXM", "H20", "MI300X") if k in allc] \
            or list(allc.values())[:3]
    return _TEST_CHIPS


def _regime_copy(tmpdir: Path) -> Path:
    folder = tmpdir / "regimes"
    if not folder.exists():
        shutil.copytree(DATA / "regimes", folder)
    return folder


def _load_and_classify(path: Path) -> None:
    reg = export_control.load_regime(path)
    for chip in _chips():
        export_control.classify(chip, reg)


def check_regime(rid: str, mut, tmpdir: Path) -> str:
    import tomllib

    folder = _regime_copy(tmpdir)
    path = folder / f"{rid}.toml"
    original = (DATA / "regimes" / f"{rid}.toml").read_text()
    if mut[0] == "structure":
        content = toml_dumps(apply_structure_mutation(tomllib.loads(original),
                                                      mut[1])).encode()
    else:
        content = apply_toml_text_mutation(original, mut[1])
    try:
        path.write_bytes(content)
        try:
            _load_and_classify(path)
        except Exception as err:  # noqa: BLE001
            assert_clean(err, path)
            return "error"
        return "ok"
    finally:
        path.write_text(original)


_regime_mutation = st.one_of(
    st.tuples(st.just("structure"), structure_mutation),
    st.tuples(st.just("text"),
              toml_text_mutation(("when", "consequence", "tariff_when", "id"))),
    st.tuples(st.just("text"), st.tuples(st.just("in_value"), st.just("consequence"),
                                         st.integers(0, 9), st.just(0.0),
                                         st.just("set"),
                                         st.sampled_from(["banned", "", "Allowed"]))),
)


# ---------------------------------------------------------------------- scenarios
_SCENARIOS = sorted(p.stem for p in (REPO / "scenarios").glob("*.toml"))


def check_scenario(name: str, mut, tmpdir: Path) -> str:
    import tomllib

    original = (REPO / "scenarios" / f"{name}.toml").read_text()
    path = tmpdir / f"{name}_fuzz.toml"
    if mut[0] == "structure":
        content = toml_dumps(apply_structure_mutation(tomllib.loads(original),
                                                      mut[1])).encode()
    else:
        content = apply_toml_text_mutation(original, mut[1])
    path.write_bytes(content)
    try:
        sc = scenario.load_scenario(path)
    except Exception as err:  # noqa: BLE001
        assert_clean(err, path)
        return "error"
    for f in ("tokens", "budget_usd", "power_w", "pue", "max_chips", "tpp_cap",
              "max_time_to_train_s"):
        v = getattr(sc, f, 0.0)
        assert not (isinstance(v, float) and math.isnan(v)), f
    return "ok"


_scenario_mutation = st.one_of(
    st.tuples(st.just("structure"), structure_mutation),
    st.tuples(st.just("text"), toml_text_mutation(("regime", "name", "objective"))),
    st.tuples(st.just("text"), st.tuples(st.just("in_value"), st.just("name"),
                                         st.integers(0, 9), st.just(0.0),
                                         st.just("set"),
                                         st.sampled_from(["NOPE-9000", "h100", ""]))),
)


# ------------------------------------------------------------------------- params
_PARAMS_DOC = None


def _params_doc() -> dict:
    global _PARAMS_DOC
    if _PARAMS_DOC is None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "p.json"
            params.save_params(p, params.default_params(), {"data_sha256": "0" * 64})
            _PARAMS_DOC = json.loads(p.read_text())
    return _PARAMS_DOC


def check_params(mut, tmpdir: Path) -> str:
    doc = _params_doc()
    path = tmpdir / "params_fuzz.json"
    if mut[0] == "structure":
        content = json.dumps(apply_structure_mutation(doc, mut[1])).encode()
    elif mut[0] == "version":
        d = dict(doc, version=mut[1])
        content = json.dumps(d).encode()
    else:
        content = apply_byte_edit(json.dumps(doc, indent=1).encode(), mut[1])
    path.write_bytes(content)
    try:
        p, _ = params.load_params(path)
    except Exception as err:  # noqa: BLE001
        assert_clean(err, path)
        return "error"
    leaves = [float(x) for x in jax.tree_util.tree_leaves(p)]
    assert all(math.isfinite(x) for x in leaves), "non-finite parameter loaded"
    return "ok"


_params_mutation = st.one_of(
    st.tuples(st.just("structure"), structure_mutation),
    st.tuples(st.just("version"), _VALUES),
    st.tuples(st.just("bytes"), _byte_edit),
)


# -------------------------------------------------------------------------- runner
@contextlib.contextmanager
def _tmp():
    d = tempfile.mkdtemp(prefix="jaxcost_fuzz_")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _outcome(cls: str, check, failures: list | None):
    """Run one check; count its outcome, or record the failure when collecting."""
    try:
        _count(cls, check())
    except AssertionError as err:
        if failures is None:
            raise
        text = " ".join(str(err).split())[:200]
        kind = ("partial file" if "partial" in text else
                "silent NaN" if "NaN" in text or "non-finite" in text else "traceback")
        _count(cls, kind)
        failures.append((cls, kind, text))


def run_class(cls: str, n: int, failures: list | None = None, *,
              explore: bool = False) -> None:
    """Run the checker of ``cls`` on ``n`` generated mutations.

    Raises on the first failure, unless ``failures`` is a list: then every failure is
    counted and appended to it as (class, kind, message).
    """
    sets = _settings(n)
    if explore:
        sets = settings(sets, phases=[Phase.generate])
    with _tmp() as tmp:
        if cls.startswith("benchmark:"):
            kind = cls.split(":")[1]
            rows = _BENCH[kind]
            strat = csv_mutation(len(rows[0]), len(rows) - 1,
                                 {c: 0 for c in ("chip_key", "tp") if c in rows[0]})

            @sets
            @given(strat)
            def run(mut):
                _outcome(cls, lambda: check_benchmark(kind, mut, tmp), failures)
        elif cls == "runs":
            rows = _BENCH["training_runs"]
            strat = csv_mutation(len(rows[0]), len(rows) - 1, {"chip_key": 0, "tp": 0})

            @sets
            @given(strat)
            def run(mut):
                _outcome(cls, lambda: check_runs(mut, tmp), failures)
        elif cls == "chips":
            strat = csv_mutation(len(_CHIP_ROWS[0]), len(_CHIP_ROWS) - 1,
                                 {"chip_key": 0})

            @sets
            @given(strat)
            def run(mut):
                _outcome(cls, lambda: check_chips_cli(mut, tmp), failures)
        elif cls == "regime":
            @sets
            @given(st.sampled_from(_REGIME_IDS), _regime_mutation)
            def run(rid, mut):
                _outcome(cls, lambda: check_regime(rid, mut, tmp), failures)
        elif cls == "scenario":
            @sets
            @given(st.sampled_from(_SCENARIOS), _scenario_mutation)
            def run(name, mut):
                _outcome(cls, lambda: check_scenario(name, mut, tmp), failures)
        elif cls == "params":
            @sets
            @given(_params_mutation)
            def run(mut):
                _outcome(cls, lambda: check_params(mut, tmp), failures)
        else:
            raise KeyError(cls)
        run()


CLASSES = {f"benchmark:{k}": 50 for k in data.BENCHMARK_KINDS} | {
    "runs": 40, "chips": 50, "regime": 100, "scenario": 80, "params": 100}


@pytest.fixture(scope="module", autouse=True)
def _print_counts(request):
    """After the module: one line per class with the number of generated cases."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not COUNTS:
        return
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        reporter.write_line("")
        for cls, c in COUNTS.items():
            reporter.write_line(f"fuzz {cls}: {sum(c.values())} cases, {c['ok']} "
                                f"loaded, {c['error']} clean errors")


@pytest.mark.parametrize("cls", list(CLASSES))
def test_fuzz_class(cls):
    run_class(cls, CLASSES[cls])
    assert sum(COUNTS[cls].values()) >= CLASSES[cls] // 2
    assert COUNTS[cls]["error"] > 0  # the mutations do reach the validators


@pytest.mark.slow
@pytest.mark.parametrize("cls", ["benchmark:training_runs", "regime", "params"])
def test_fuzz_class_more(cls):
    run_class(cls, 300)


# --------------------------------------------------------- fixed special classes
def _expect_clean(fn, path: Path):
    with pytest.raises(JaxcostError) as info:
        fn(path)
    return assert_clean(info.value, path)


@pytest.mark.parametrize("loader", ["benchmark", "chips", "regime", "scenario",
                                    "params"])
def test_unreadable_paths(loader, tmp_path):
    """Missing file, a folder, an empty file, non-UTF-8 bytes, no read permission."""
    fns = {
        "benchmark": lambda p: data.load_benchmarks("training_runs", p),
        "chips": hardware.load_chips,
        "regime": lambda p: export_control.load_regime(p),
        "scenario": scenario.load_scenario,
        "params": params.load_params,
    }
    fn = fns[loader]
    suffix = {"benchmark": ".csv", "chips": ".csv",
              "params": ".json"}.get(loader, ".toml")
    _expect_clean(fn, tmp_path / f"missing{suffix}")
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    _expect_clean(fn, folder)
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    _expect_clean(fn, empty)
    latin = tmp_path / f"latin{suffix}"
    latin.write_bytes(b"\xff\xfe\xe9\x00 = \xe9\n")
    _expect_clean(fn, latin)
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / f"locked{suffix}"
        locked.write_text("x")
        locked.chmod(0)
        _expect_clean(fn, locked)


def test_regime_deep_nesting_is_clean(tmp_path):
    """A pathologically nested condition is a RegimeError, not a RecursionError."""
    folder = _regime_copy(tmp_path)
    path = folder / "2022-10.toml"
    text = path.read_text().replace('when = "tpp >= 4800', 'when = "' + "(" * 5000 +
                                    "tpp >= 4800", 1)
    path.write_text(text)
    msg = _expect_clean(export_control.load_regime, path)
    assert "rule 1" in msg and "column 'when'" in msg
