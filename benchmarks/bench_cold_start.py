"""Time a one-row ``jaxcost predict`` as a user runs it: a fresh process each time.

Run: python benchmarks/bench_cold_start.py [--repeat N] [--no-cache] [--no-bytecode]

Writes a one-row runs CSV (a 1.3B-parameter GPT on 8 A100-SXM, plan given, so no
plan search) to a temporary folder, then times the whole command
``python -m jaxcost predict RUNS.csv --out PRED.csv`` (interpreter start, imports,
JAX start-up, tracing, compilation or cache loads, the prediction, the file write and
the exit) as the wall time of a subprocess:

- ``first``: the first run with an empty compilation cache (a new temporary
  ``JAXCOST_CACHE_DIR``), i.e. everything compiled;
- ``repeat``: the median (and min, max) of ``--repeat`` further runs, the compiled
  programs now loaded from the cache;
- ``floor``: the median of 3 runs of ``python -c "import jaxcost.cli.predict"``: the
  modules a prediction imports, the part that no cache can remove; ``python``,
  ``numpy``, ``jax`` and ``+pandas/flax`` are the same for ``python -c pass`` and
  those imports alone (``jax`` includes numpy and ml_dtypes);
- ``breakdown``: one more warm run, instrumented from inside (the command's own
  ``main`` after timed imports, then ``os._exit`` as the command does): interpreter
  start, imports, then JAX's own timings of tracing, lowering to StableHLO and
  compilation or cache load (``jax.monitoring`` events, summed over the programs),
  the rest of the work (reading, writing), and the exit.

Each line gives the wall time and the CPU time (user + system) of the subprocess: on a
shared machine the wall time grows with other load, the CPU time much less.

Compiled bytecode: each subprocess may write and read ``.pyc`` files in a temporary
``PYTHONPYCACHEPREFIX`` (``PYTHONDONTWRITEBYTECODE`` is removed), as on a user's
machine where Python caches the bytecode of an installed package; ``--no-bytecode``
keeps the environment as it is (where ``PYTHONDONTWRITEBYTECODE=1`` is set, every run
compiles jaxcost's own modules again, about 0.15 s).

One untimed run first warms the operating system's file cache (and the bytecode). With
``--no-cache`` every run sets ``JAXCOST_NO_CACHE=1`` (each run compiles, as before the
cache). To time another checkout, run this script with ``PYTHONPATH`` pointing at it
(the subprocesses inherit the environment). The figures vary with other load on the
machine; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS_CSV = (
    "row_id,model,layers,hidden,heads,seq_len,vocab,gbs_seqs,n_chips,chip_key,"
    "tp,pp,dp\n"
    "r1,gpt-1.3b,24,2048,16,2048,50304,64,8,A100-SXM,1,1,8\n"
)

#: JAX's duration events (jax.monitoring) -> the name printed.
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile/load",
}

#: Every import of a `predict` command (before the subcommand modules: jaxcost.cli).
IMPORTS = """\
try:
    import jaxcost.cli.predict
except ModuleNotFoundError:
    import jaxcost.cli
"""

#: The instrumented run (``--child``): ``python THIS --child OUT.json ARGS...``.
CHILD = """\
import json, os, sys, time
t_start = time.time()
try:  # the modules the command imports for `predict`
    import jaxcost.cli.predict
except ModuleNotFoundError:  # a checkout from before the subcommand modules
    import jaxcost.cli
t_imports = time.time()
from collections import defaultdict
from jax import monitoring
from jaxcost.cli import main
sums, counts = defaultdict(float), defaultdict(int)
def listen(event, seconds, **kw):
    sums[event] += seconds
    counts[event] += 1
monitoring.register_event_duration_secs_listener(listen)
status = main(sys.argv[2:])
t_main = time.time()
with open(sys.argv[1], "w") as f:
    json.dump({"start": t_start, "imports": t_imports, "main": t_main,
               "sums": sums, "counts": counts}, f)
sys.stdout.flush()
sys.stderr.flush()
os._exit(status)
"""


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _wall_s(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall time, CPU time user + system) of one subprocess, s; raises if it
    fails."""
    c0, t0 = _cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt, dc = time.perf_counter() - t0, _cpu_s() - c0
    if proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}"
        )
    return dt, dc


def _line(name: str, runs: list[tuple[float, float]], what: str) -> str:
    wall = [w for w, _ in runs]
    cpu = statistics.median(c for _, c in runs)
    spread = f" (min {min(wall):.2f}, max {max(wall):.2f})" if len(runs) > 1 else ""
    return (
        f"{name:12s} {statistics.median(wall):6.2f} s wall, {cpu:5.2f} s CPU  "
        f"{what}{spread}"
    )


def _breakdown(args: list[str], env: dict[str, str], tmp: Path) -> str:
    """One instrumented warm run: where its wall time goes."""
    out = tmp / "breakdown.json"
    t0 = time.time()
    subprocess.run([sys.executable, "-c", CHILD, str(out), *args], env=env,
                   capture_output=True, check=True)
    t_end = time.time()
    d = json.loads(out.read_text())
    sums, counts = d["sums"], d["counts"]
    jax_s = sum(sums.get(e, 0.0) for e in EVENTS)
    parts = [
        ("interpreter", d["start"] - t0),
        ("imports", d["imports"] - d["start"]),
        *((name, sums.get(e, 0.0)) for e, name in EVENTS.items()),
        ("other work", d["main"] - d["imports"] - jax_s),
        ("exit", t_end - d["main"]),
    ]
    n = max(counts.values(), default=0)
    text = ", ".join(f"{name} {s:.2f}" for name, s in parts)
    return (f"breakdown    {t_end - t0:6.2f} s wall: {text} "
            f"({n} programs traced and compiled or loaded)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="warm runs (>= 3)")
    ap.add_argument(
        "--no-cache", action="store_true", help="JAXCOST_NO_CACHE=1 in every run"
    )
    ap.add_argument(
        "--no-bytecode",
        action="store_true",
        help="leave PYTHONDONTWRITEBYTECODE / PYTHONPYCACHEPREFIX as they are",
    )
    args = ap.parse_args()
    if args.repeat < 3:
        ap.error("--repeat: expected an integer >= 3 (a median of at least 3)")
    with tempfile.TemporaryDirectory(prefix="jaxcost-cold-") as tmp:
        runs, out = Path(tmp) / "runs.csv", Path(tmp) / "pred.csv"
        runs.write_text(RUNS_CSV)
        env = dict(os.environ)
        env["JAXCOST_CACHE_DIR"] = str(Path(tmp) / "xla")
        if args.no_cache:
            env["JAXCOST_NO_CACHE"] = "1"
        else:
            env.pop("JAXCOST_NO_CACHE", None)
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        pred_args = ["predict", str(runs), "--out", str(out)]
        predict = [sys.executable, "-m", "jaxcost", *pred_args]
        imports = [sys.executable, "-c", IMPORTS]
        _wall_s(imports, env)  # warm the file cache (and the bytecode), untimed
        first = _wall_s(predict, env)
        if not out.exists():
            raise SystemExit(f"no output file {out}")
        repeat = [_wall_s(predict, env) for _ in range(args.repeat)]
        floor = {
            name: [_wall_s([sys.executable, "-c", code], env) for _ in range(3)]
            for name, code in (
                ("python", "pass"),
                ("numpy", "import numpy"),
                ("jax", "import jax"),
                ("+pandas/flax", "import jax, pandas, flax.struct"),
            )
        }
        floor["floor"] = [_wall_s(imports, env) for _ in range(3)]
        breakdown = _breakdown(pred_args, env, Path(tmp))
        versions = subprocess.run(
            [sys.executable, "-c", "import jax, ml_dtypes, numpy; print("
             "f'jax {jax.__version__}, numpy {numpy.__version__}, ml_dtypes '"
             "f'{ml_dtypes.__version__}')"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    mode = "no cache (JAXCOST_NO_CACHE=1)" if args.no_cache else "compilation cache"
    code = "as in the environment" if args.no_bytecode else "cached"
    print(f"one-row `jaxcost predict`, {mode}, bytecode {code}; {versions}; "
          f"load average {load:.2f}")
    print(_line("first", [first], "empty cache"))
    print(_line("repeat", repeat, f"median of {len(repeat)}"))
    what = {
        "python": "`python -c pass`",
        "numpy": "`import numpy`",
        "jax": "`import jax` (numpy, ml_dtypes, jaxlib)",
        "+pandas/flax": "`import jax, pandas, flax.struct`",
        "floor": "`import jaxcost.cli.predict`: every import of the command",
    }
    for name, timing in floor.items():
        print(_line(name, timing, f"{what[name]}, median of 3"))
    print(breakdown)


if __name__ == "__main__":
    main()
