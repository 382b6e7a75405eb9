"""Cost of the exact re-evaluation of mixed clusters in ``chip_mix``.

Runs ``jaxcost.chip_mix`` on one scenario (default: ``scenarios/default.toml``, the
main job of the README) with the shipped calibration, once with each group of a mixed
cluster keeping its whole-batch plan (``replan_rounds=0``) and once with the
groups re-planned for their share of the global batch (the default, 2 rounds). Prints
the phase timings (throughput curves, integer solve, exact evaluation, total, in s)
and the top cluster of each run with its surrogate and exact throughput.

Run: python benchmarks/bench_chip_mix.py [SCENARIO.toml]
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jaxcost as jc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(path: str) -> None:
    params, _ = jc.load_params(str(ROOT / "data" / "calibration" / "default.json"))
    sc = jc.load_scenario(path)
    print(f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
          f"{jax.default_backend()}; load average {os.getloadavg()[0]:.1f}; {path}")
    for rounds in (0, 2):
        t0 = time.perf_counter()
        res = jc.chip_mix(params, None, sc, check_exhaustive=False,
                          replan_rounds=rounds)
        wall = time.perf_counter() - t0
        s = res.seconds
        top = res.clusters[0]
        print(f"replan rounds {rounds}: curves {s['curves']:.1f} s, "
              f"solve {s['solve']:.1f} s, exact {s['exact']:.1f} s, total {wall:.1f} s")
        print(f"  top: {top.label}  {top.time_to_train_s / 86400:.2f} d  exact "
              f"{top.tokens_per_s:.4g} tok/s  surrogate "
              f"{top.surrogate_tokens_per_s:.4g} tok/s ({top.throughput_model})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "scenarios" / "default.toml"))
