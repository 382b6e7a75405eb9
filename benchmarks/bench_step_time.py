"""Throughput of ``predict_step_time`` under jit(vmap(...)) on this machine.

Valid plans are enumerated for a few models and chip counts (numpy, outside jit), tiled
to at least 1e6 configurations per run, and evaluated in fixed-size chunks with one
compiled function per model (physical parameters resolved once, outside the vmap).
Prints configurations per second after warm-up, the machine and the peak RSS.

Run: python benchmarks/bench_step_time.py [--total 2000000] [--chunk 8192] [--x64]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=1_048_576 * 2)
    ap.add_argument("--chunk", type=int, default=8192)  # fits in cache
    ap.add_argument("--x64", action="store_true")
    args = ap.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)

    from jaxcost.model.hardware import ClusterSpec, load_chips
    from jaxcost.model.params import default_params, physical
    from jaxcost.model.step_time import predict_step_time_physical
    from jaxcost.model.workload import load_models
    from jaxcost.search.space import enumerate_plans

    chips = load_chips()
    models = load_models()
    params = default_params()
    cases = [("llama2-70b", "H100-SXM", (64, 256, 1024)),
             ("gpt3-175b", "A100-SXM", (128, 512, 1024)),
             ("mixtral-8x7b", "H800-SXM", (32, 128, 512))]
    per_model = -(-args.total // len(cases))
    n_chunks = -(-per_model // args.chunk)
    total_evals, total_time, n_plans = 0, 0.0, 0
    for model, chip_key, counts in cases:
        chip = chips[chip_key]
        w = models[model]
        plan_list = [enumerate_plans(w, n, chip) for n in counts]
        plans = jax.tree.map(lambda *x: np.concatenate(x), *plan_list)
        p = plans.dp.shape[0]
        n_plans += p
        reps = -(-args.chunk // p)
        chunk = jax.tree.map(
            lambda x, reps=reps: jnp.asarray(np.tile(x, reps)[: args.chunk]), plans)
        pp = physical(params, chip)
        hw = ClusterSpec(chip=chip, num_chips=1.0)

        @jax.jit
        def run(plans_, pp=pp, hw=hw, w=w):
            out = jax.vmap(lambda pl: predict_step_time_physical(pp, hw, w, pl))(plans_)
            return out.total_s, out.mfu

        jax.block_until_ready(run(chunk))  # compile + warm-up
        t0 = time.perf_counter()
        for _ in range(n_chunks):
            res = run(chunk)
        jax.block_until_ready(res)
        dt = time.perf_counter() - t0
        evals = n_chunks * args.chunk
        total_evals += evals
        total_time += dt
        assert bool(jnp.all(jnp.isfinite(res[0])))
        print(f"{model:14s} {chip_key:9s} {p:6d} valid plans, {evals:9d} evals in "
              f"{dt:6.2f} s: {evals / dt:12,.0f} configs/s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dtype = "float64" if args.x64 else "float32"
    print(f"machine: {platform.machine()} {platform.processor() or ''} "
          f"cores={os.cpu_count()} jax={jax.__version__} backend="
          f"{jax.default_backend()} dtype={dtype}")
    print(f"TOTAL {total_evals:,} configurations ({n_plans} distinct valid plans) in "
          f"{total_time:.2f} s: {total_evals / total_time:,.0f} configs/s")
    print(f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
