"""Reliability of the command and the public API (issue 18, deliverables 3 and 4).

* ``jaxcost fit`` on the shipped data plus any number of user files per kind, with
  provenance columns optional; a numerical failure names the rows responsible.
* Ctrl-C exits 130 with one line and no file; output paths are checked before the
  work; ``jaxcost chips | head`` exits 0.
* Deeply nested TOML and huge or invalid numbers are refused in one line.
* Public entry points refuse bad chip counts, token budgets and k.

The case lists (``TOML_DEEP``, ``SCENARIO_NUMBERS``, ``API_CASES``, ...) are shared
with ``benchmarks/fuzz_counts.py``, which runs all of them; the tests run a sample.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcost as J
from jaxcost import calibrate as F
from jaxcost.cli import main
from jaxcost.cli import optimize as cli_optimize
from jaxcost.cli.common import write_together
from jaxcost.errors import DataError, JaxcostError, NumericalError, RegimeError
from jaxcost.io import benchmarks as D
from jaxcost.model.hardware import load_chips
from jaxcost.policy.export_control import load_regime
from jaxcost.policy.scenario import load_scenario

REPO = Path(__file__).resolve().parent.parent
USER_RUNS = REPO / "tests" / "data" / "user_runs_small.csv"
USER_KERNELS = REPO / "tests" / "data" / "user_kernels_small.csv"
CHIPS = load_chips()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


# ------------------------------------------------------------- fit: user files


def test_user_runs_without_provenance_join_the_shipped_runs():
    shipped = str(D.benchmark_path("training_runs"))
    fd_s, _ = F.load_fit_files([shipped], CHIPS)
    fd, hashes = F.load_fit_files([shipped, str(USER_RUNS)], CHIPS)
    assert fd.num_rows("runs") == fd_s.num_rows("runs") + 4
    groups = fd.label("runs", "group")
    ids = fd.label("runs", "row_id")
    # a missing group is the file's stem, a missing row id <stem>:<data row>
    assert groups[-4:] == ("user_runs_small",) * 4
    assert ids[-4:] == tuple(f"user_runs_small:{r}" for r in range(1, 5))
    assert len(set(ids)) == len(ids)
    assert set(hashes) == {"training_runs.csv", "user_runs_small.csv"}


def test_row_id_used_in_two_files_names_both(tmp_path):
    text = USER_KERNELS.read_text().splitlines()
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("\n".join(["row_id," + text[0]] + [f"x{i},{t}" for i, t in
                                                    enumerate(text[1:])]) + "\n")
    b.write_text("\n".join(["row_id," + text[0], "x9," + text[1], "x2," + text[2]])
                 + "\n")
    with pytest.raises(DataError) as info:
        F.load_fit_files([str(a), str(b)], CHIPS)
    msg = str(info.value)
    assert str(a) in msg and str(b) in msg and "'x2'" in msg and "\n" not in msg
    with pytest.raises(JaxcostError, match="given twice"):
        F.load_fit_files([str(a), str(a)], CHIPS)


def test_fit_command_concatenates_files_of_one_kind(tmp_path):
    other = tmp_path / "other_kernels.csv"
    other.write_text(USER_KERNELS.read_text())
    out = tmp_path / "p.json"
    rc = main(["fit", str(USER_KERNELS), str(other), "--adam-steps", "2",
               "--lbfgs-steps", "0", "--out", str(out)])
    assert rc == 0
    doc = out.read_text()
    assert '"kernels": 8' in doc and '"adam_steps": 2' in doc


def test_with_shipped_adds_the_shipped_files(monkeypatch, tmp_path):
    seen = {}

    def stop(fd, **_):
        seen["fd"] = fd
        raise JaxcostError("stopped before the fit")

    monkeypatch.setattr(F, "fit_params", stop)
    rc = main(["fit", "--with-shipped", str(USER_RUNS), "--out",
               str(tmp_path / "p.json")])
    assert rc == 2 and _files(tmp_path) == []
    fd = seen["fd"]
    assert fd.num_rows("kernels") > 0 and fd.num_rows("collectives") > 0
    assert "user_runs_small" in fd.label("runs", "group")


def test_numerical_failure_names_the_rows():
    data, _ = F.load_fit_files([str(USER_KERNELS)], CHIPS)
    bad_id = data.label("kernels", "row_id")[3]
    bad = data.replace(kernels=data.kernels.replace(
        obs=data.kernels.obs.at[3].set(jnp.nan)))
    with pytest.raises(NumericalError) as info:
        F.fit_params(bad, options=F.FitOptions(adam_steps=2, lbfgs_steps=0, chunk=2))
    assert f"rows responsible: kernels {bad_id};" in str(info.value)


# ------------------------------------------------------------- the command


#: ``python -m jaxcost ARGS`` with SIGINT at its default, as from a terminal (a
#: background job inherits it ignored, and jaxcost then leaves it ignored)
_EXEC_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'jaxcost', *sys.argv[1:]])"
)


def _jaxcost(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _EXEC_DEFAULT_SIGINT, *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_watcher(proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until main() has installed its SIGINT watcher (a socket pair appears)."""
    fd_dir = Path(f"/proc/{proc.pid}/fd")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and proc.poll() is None:
        try:
            if any("socket" in os.readlink(p) for p in fd_dir.iterdir()):
                return
        except OSError:
            pass
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_sigint_exits_130_in_one_line_without_files(tmp_path):
    out = tmp_path / "p.json"
    proc = _jaxcost("fit", str(USER_RUNS), "--adam-steps", "100000", "--out",
                    str(out))
    _wait_for_watcher(proc)
    time.sleep(1.0)  # inside the work: loading, compiling or fitting
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    lines = [x for x in err.decode().replace("\r", "\n").splitlines() if x.strip()]
    assert proc.returncode == 130
    assert lines[-1] == "jaxcost: interrupted"
    assert "Traceback" not in err.decode()
    assert _files(tmp_path) == []


def _wait_for_mapped(proc: subprocess.Popen, library: str, timeout_s: float = 60):
    """Until the process has loaded a shared library whose path contains
    ``library``: an import of numpy or JAX has begun."""
    maps = Path(f"/proc/{proc.pid}/maps")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and proc.poll() is None:
        try:
            if library in maps.read_text():
                return
        except OSError:
            pass
        time.sleep(0.001)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("library", ["_multiarray_umath", "ml_dtypes", "jaxlib"])
def test_sigint_while_jax_is_imported_exits_130_in_one_line(tmp_path, library):
    """Ctrl-C while numpy, ml_dtypes or JAX is being imported (before any work):
    status 130 and one line, never a ``KeyboardInterrupt`` traceback."""
    proc = _jaxcost("chips", "--out", str(tmp_path / "chips.csv"))
    _wait_for_mapped(proc, library)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    lines = [x for x in text.replace("\r", "\n").splitlines() if x.strip()]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert proc.returncode == 130, text
    assert lines == ["jaxcost: interrupted"]
    assert _files(tmp_path) == []


def test_output_paths_checked_before_the_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = tmp_path / "p.json"
    cases = [
        ["--out", str(out), "--plot", str(blocker / "parity.png")],
        ["--out", str(tmp_path), "--plot", str(tmp_path / "x.png")],
        ["--out", str(out), "--plot", "/proc/jaxcost_parity.png"],
    ]
    for opts in cases:
        t0 = time.perf_counter()
        rc = main(["fit", str(USER_RUNS), *opts])
        seconds = time.perf_counter() - t0
        cap = capsys.readouterr()
        assert rc == 2, cap.err
        line = cap.err.strip()
        assert "\n" not in line and ".tmp" not in line
        assert opts[1] in line or opts[3] in line
        # refused before the work (a fit of these rows compiles for ~30 s)
        assert "rows fitted" not in cap.out and seconds < 5.0
        assert _files(tmp_path) == ["a_file"]


def test_chips_into_a_closed_pipe_exits_0():
    proc = _jaxcost("chips")
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1`
    rc = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert rc == 0 and err == ""


def _write(text: str):
    return lambda tmp: tmp.write_text(text)


def _fail(tmp: Path) -> None:
    tmp.write_text("half")
    raise OSError(28, "No space left on device")


def test_write_together_writes_all_or_nothing(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "sub" / "b.json", tmp_path / "c.png"
    write_together({a: _write("A"), b: _write("B"), c: _write("C")})
    assert [p.read_text() for p in (a, b, c)] == ["A", "B", "C"]
    # a writer fails: nothing changes, no temporary file is left
    with pytest.raises(OSError, match="No space"):
        write_together({a: _write("A2"), b: _fail, c: _write("C2")})
    assert [p.read_text() for p in (a, b, c)] == ["A", "B", "C"]
    assert _files(tmp_path) == ["a.csv", "b.json", "c.png", "sub"]
    # a rename fails (a folder where the second file goes) after the third is in
    # place: the files already renamed are put back as they were
    d = tmp_path / "d.csv"
    (tmp_path / "blocked").mkdir()
    with pytest.raises(OSError):
        write_together({a: _write("A3"), tmp_path / "blocked": _write("X"),
                        d: _write("D")})
    assert a.read_text() == "A" and not d.exists()
    assert (tmp_path / "blocked").is_dir()
    assert _files(tmp_path) == ["a.csv", "b.json", "blocked", "c.png", "sub"]


def test_optimize_writes_its_three_files_or_none(tmp_path, monkeypatch, capsys):
    out = tmp_path / "opt"
    (out / "result.json").mkdir(parents=True)  # the second file cannot be renamed
    monkeypatch.setattr(cli_optimize, "chip_mix", lambda *a, **k: None)
    monkeypatch.setattr(cli_optimize, "_optimize_outputs",
                        lambda res, sc, top: ("table", "csv\n", "{}\n", b"png"))
    rc = main(["optimize", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "result.json" in err
    assert _files(tmp_path) == ["opt", "result.json"]  # the folder, as it was
    (out / "result.json").rmdir()
    assert main(["optimize", "--out", str(out)]) == 0
    assert _files(out) == ["pareto.png", "ranked.csv", "result.json"]


# ------------------------------------------------------------- TOML files

SCENARIO = (REPO / "scenarios" / "default.toml").read_text()

#: (label, text appended or substituted): nesting of arrays / inline tables
TOML_DEEP = {
    f"{kind}{depth}": text
    for depth in (100, 1000, 5000)
    for kind, text in (
        ("array", "x = " + "[" * depth + "]" * depth + "\n"),
        ("inline", "x = " + "{a=" * depth + "1" + "}" * depth + "\n"),
    )
}


@pytest.mark.parametrize("label", ["array1000", "inline1000", "array5000"])
def test_deep_toml_refused_in_one_line(label, tmp_path):
    text = TOML_DEEP[label]
    sc = tmp_path / "deep.toml"
    sc.write_text(text + SCENARIO)
    with pytest.raises(JaxcostError) as info:
        load_scenario(sc)
    assert str(sc) in str(info.value) and "\n" not in str(info.value)
    reg = tmp_path / "deep_regime.toml"
    reg.write_text(text + (REPO / "data" / "regimes" / "2025-04.toml").read_text())
    with pytest.raises(RegimeError) as info:
        load_regime(reg)
    assert str(reg) in str(info.value)


#: (key, TOML line placed in its table, table): values that must be refused
SCENARIO_NUMBERS = [
    (key, value, table)
    for key, table, values in (
        ("relaxed_steps", "search", ("1e308", "-4", "nan", "inf", "1e7")),
        ("top", "search", ("1e308", "0", "99999999999999999999")),
        ("grid_steps_per_octave", "search", ("1e308", "1e6")),
        ("max_plans", "search", ("1e308", "1e18")),
        ("global_batch_seqs", "model", ("-4", "0", "nan", "inf", "1e308")),
        ("seq_len", "model", ("-4", "nan", "1e308")),
        ("tokens", "training", ("1e308", "-1", "nan", "inf")),
        ("max_chips", "limits", ("1e308", "-4", "nan")),
    )
    for value in values
]


def _scenario_with(key: str, value: str, table: str) -> str:
    head = f"[{table}]\n"
    text = SCENARIO
    lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
    text = "\n".join(lines) + "\n"
    return text.replace(head, head + f"{key} = {value}\n", 1)


@pytest.mark.parametrize("key,value,table", [
    c for c in SCENARIO_NUMBERS if c[1] in ("1e308", "-4", "nan")])
def test_bad_scenario_numbers_refused(key, value, table, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(_scenario_with(key, value, table))
    with pytest.raises(JaxcostError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg and "\n" not in msg


# ------------------------------------------------------------- public API

_CHIP = CHIPS["H100-SXM"]
_MODEL = J.get_model("llama2-7b")
_PLAN = J.ParallelPlan.create(dp=8, tp=1, pp=1)
_P = J.default_params()

#: (label, thunk): calls of public entry points that must raise JaxcostError
API_CASES = [
    *[(f"predict_step_time(num_chips={n})",
       lambda n=n: J.predict_step_time(_P, J.ClusterSpec(chip=_CHIP, num_chips=n),
                                       _MODEL, _PLAN))
      for n in (-256, 0, float("nan"), float("inf"), 1e308)],
    *[(f"predict_step_time_hetero(num_chips={n})",
       lambda n=n: J.predict_step_time_hetero(
           _P, (J.ClusterSpec(chip=_CHIP, num_chips=n),), _MODEL, (_PLAN,)))
      for n in (-8, float("nan"))],
    *[(f"best_plan({kw})",
       lambda kw=kw: J.best_plan(_P, J.ClusterSpec(chip=_CHIP, num_chips=8), _MODEL,
                                 **kw))
      for kw in ({"tokens": -1}, {"tokens": float("nan")}, {"k": 0}, {"k": -3},
                 {"k": 1.5})],
    *[(f"best_plan(num_chips={n})",
       lambda n=n: J.best_plan(_P, J.ClusterSpec(chip=_CHIP, num_chips=n), _MODEL))
      for n in (-8, float("nan"), 1e308)],
    *[(f"enumerate_plans(num_chips={n})",
       lambda n=n: J.enumerate_plans(_MODEL, n, _CHIP))
      for n in (-8, 0, float("nan"), 1e308, 8.5)],
]


@pytest.mark.parametrize("label", [c[0] for c in API_CASES])
def test_public_api_refuses_bad_arguments(label):
    thunk = dict(API_CASES)[label]
    with pytest.raises(JaxcostError):
        thunk()


def test_validation_leaves_traced_calls_alone():
    def total(n):
        return J.predict_step_time(_P, J.ClusterSpec(chip=_CHIP, num_chips=n),
                                   _MODEL, _PLAN).total_s

    # traced (jit, vmap, grad): the concrete-argument check is skipped, no error
    got = jax.jit(jax.vmap(total))(jnp.asarray([8.0, 16.0]))
    assert np.all(np.isfinite(np.asarray(got)))
