"""Time a one-row ``jaxcost predict`` as a user runs it: a fresh process each time.

Run: python benchmarks/bench_cold_start.py [--repeat N] [--no-cache]

Writes a one-row runs CSV (a 1.3B-parameter GPT on 8 A100-SXM, plan given, so no
plan search) to a temporary folder, then times the whole command
``python -m jaxcost predict RUNS.csv --out PRED.csv`` (interpreter start, imports,
JAX start-up, tracing, compilation or cache loads, the prediction and the file
write) as the wall time of a subprocess:

- ``first``: the first run with an empty compilation cache (a new temporary
  ``JAXCOST_CACHE_DIR``), i.e. everything compiled;
- ``repeat``: the median (and min, max) of ``--repeat`` further runs, the compiled
  programs now loaded from the cache;
- ``floor``: the median time of ``python -c "import jaxcost.cli"`` (imports only), the
  part that no cache can remove.

Each line gives the wall time and the CPU time (user + system) of the subprocess: on a
shared machine the wall time grows with other load, the CPU time much less.

One untimed import first warms the operating system's file cache. With
``--no-cache`` every run sets ``JAXCOST_NO_CACHE=1`` (each run compiles, as before the
cache). To time another checkout, run this script with ``PYTHONPATH`` pointing at it
(the subprocesses inherit the environment). The figures vary with other load on the
machine; the load average is printed.
"""

from __future__ import annotations

import argparse
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
        f"{name:7s} {statistics.median(wall):6.2f} s wall, {cpu:5.2f} s CPU  "
        f"{what}{spread}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="warm runs (>= 3)")
    ap.add_argument(
        "--no-cache", action="store_true", help="JAXCOST_NO_CACHE=1 in every run"
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
        predict = [sys.executable, "-m", "jaxcost", "predict", str(runs)]
        predict += ["--out", str(out)]
        imports = [sys.executable, "-c", "import jaxcost.cli"]
        _wall_s(imports, env)  # warm the file cache, untimed
        first = _wall_s(predict, env)
        if not out.exists():
            raise SystemExit(f"no output file {out}")
        repeat = [_wall_s(predict, env) for _ in range(args.repeat)]
        floor = [_wall_s(imports, env) for _ in range(3)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    mode = "no cache (JAXCOST_NO_CACHE=1)" if args.no_cache else "compilation cache"
    print(f"one-row `jaxcost predict`, {mode}; load average {load:.2f}")
    print(_line("first", [first], "empty cache"))
    print(_line("repeat", repeat, f"median of {len(repeat)}"))
    print(_line("floor", floor, "`import jaxcost.cli` alone, median of 3"))


if __name__ == "__main__":
    main()
