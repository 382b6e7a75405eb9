"""Start-up of the command (issue 18): lazy loading of the public API and of the
subcommands, and the fast exit of ``python -m jaxcost``.

Only behaviour is tested here; the time is measured by
``benchmarks/bench_cold_start.py``.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jaxcost
from jaxcost.cli import app
from jaxcost.cli.common import NO_CACHE_ENV

REPO = Path(__file__).resolve().parent.parent

ONE_ROW = (
    "row_id,model,layers,hidden,heads,seq_len,vocab,gbs_seqs,n_chips,chip_key,"
    "tp,pp,dp\n"
    "r1,gpt-1.3b,24,2048,16,2048,50304,64,8,A100-SXM,1,1,8\n"
)


def _python(code: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, check=False, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_importing_jaxcost_or_the_cli_loads_no_jax():
    out = _python(
        "import sys, jaxcost, jaxcost.cli, jaxcost.__main__\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'numpy', 'pandas', 'flax', 'optax')))"
    )
    assert out.strip() == "[]"


def test_every_public_name_loads_from_its_module():
    assert set(jaxcost.__all__) <= set(dir(jaxcost))
    for name in jaxcost.__all__:
        value = getattr(jaxcost, name)
        assert value is not None, name
        home = getattr(value, "__module__", None)
        if home is not None and name != "__version__":  # functions and classes
            assert home.startswith("jaxcost.") and getattr(sys.modules[home], name) \
                is value, name
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        jaxcost.no_such_name  # noqa: B018
    # subpackages are reachable as attributes, as with eager imports
    assert jaxcost.model.plan.ParallelPlan is jaxcost.ParallelPlan


def test_star_import_gives_every_public_name():
    out = _python("from jaxcost import *\nimport jaxcost\nnames = set(globals())\n"
                  "print(sorted(set(jaxcost.__all__) - names))")
    assert out.strip() == "[]"


def test_the_dispatch_table_matches_the_parser():
    parser = app.build_parser()
    choices = set(parser._subparsers._group_actions[0].choices)
    assert set(app.COMMANDS) == choices
    for name, (module, function) in [*app.COMMANDS.items(), ("", app.JAX_SETUP)]:
        assert module.startswith("jaxcost.cli."), name
        assert callable(getattr(importlib.import_module(module), function)), name


def test_predict_imports_neither_policy_nor_matplotlib(tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text(ONE_ROW)
    out = _python(
        "import sys\nfrom jaxcost.cli import main\n"
        f"assert main(['validate', {str(runs)!r}, '--no-measured']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('jaxcost.policy') "
        "or m.split('.')[0] == 'matplotlib'))"
    )
    assert out.strip().splitlines()[-1] == "[]"


def test_the_program_flushes_its_output_before_its_fast_exit(tmp_path):
    """``python -m jaxcost`` ends with ``os._exit``: the CSV on standard output and
    the file must still be whole, and the same (compilation cache on, so the second
    run loads the first's programs)."""
    runs = tmp_path / "runs.csv"
    runs.write_text(ONE_ROW)
    env = {k: v for k, v in os.environ.items()
           if k not in (NO_CACHE_ENV, "JAX_COMPILATION_CACHE_DIR")}
    env["JAXCOST_CACHE_DIR"] = str(tmp_path / "xla")
    cmd = [sys.executable, "-m", "jaxcost", "predict", str(runs)]
    to_file = subprocess.run([*cmd, "--out", str(tmp_path / "pred.csv")], env=env,
                             capture_output=True, text=True, check=False, cwd=REPO)
    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stderr.startswith("predicted 1 of 1 rows")
    to_stdout = subprocess.run(cmd, env=env, capture_output=True, text=True,
                               check=False, cwd=REPO)
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == (tmp_path / "pred.csv").read_text()
    assert len(to_stdout.stdout.splitlines()) == 2
    assert to_stdout.stderr.strip() == "predicted 1 of 1 rows"

