"""Subprocess worker for the sweep tests: runs one sweep and saves its results.

Usage: python sweep_worker.py OUT.npz [--distributed ADDR NPROC PID] [--fn toy|model]
Run with XLA_FLAGS=--xla_force_host_platform_device_count=K for K host devices.
"""

import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)


def toy_batch(n: int):
    rng = np.random.default_rng(0)
    return {"a": rng.uniform(0.1, 10.0, n), "b": rng.uniform(0.1, 10.0, (n, 3))}


def toy_fn(c):
    import jax.numpy as jnp

    t = jnp.log1p(c["a"]) * jnp.sum(jnp.sqrt(c["b"])) + 1.0 / c["a"]
    return {"t": t, "v": c["b"] * c["a"]}


def main(argv):
    out = argv[0]
    if "--distributed" in argv:
        i = argv.index("--distributed")
        addr, nproc, pid = argv[i + 1], int(argv[i + 2]), int(argv[i + 3])
        jax.distributed.initialize(coordinator_address=addr, num_processes=nproc,
                                   process_id=pid)
    from jaxcost.search import sweep

    n = 10_007  # prime: uneven chunks, devices and processes
    batch = toy_batch(n)
    res, stats = sweep.sweep_map(toy_fn, batch, chunk_size=1000)
    idx, val, _ = sweep.sweep_topk(lambda c: toy_fn(c)["t"], batch, 25, chunk_size=999)
    if jax.process_index() == 0:
        np.savez(out, t=res["t"], v=res["v"], idx=idx, val=val,
                 ndev=stats.num_local_devices, nproc=stats.num_processes)
    if "--distributed" in argv:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
