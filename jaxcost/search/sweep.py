"""Sweeps: evaluate a function over a large batch of configurations, in chunks.

This module owns *how* many configurations are evaluated, not *what* is evaluated:
it takes any per-configuration function ``fn(config) -> pytree`` (for example
``predict_step_time`` with everything but the plan bound), batches it with
``jax.vmap``, compiles it once with ``jax.jit`` and streams the batch through it in
fixed-size chunks so that memory stays bounded whatever the number of configurations.

Parallelism uses JAX's own engine, not a home-made scheduler:

* across the **local devices** of a process (CPU host devices, GPUs, TPU cores), each
  chunk is placed with a ``NamedSharding`` over a one-axis mesh ``("batch",)``, so XLA
  splits the chunk across devices;
* across **processes / hosts** started with :func:`jax.distributed.initialize`, each
  process takes a contiguous shard of the batch, and the results (or the per-process
  top-k) are gathered with ``multihost_utils.process_allgather``.

The same code runs on CPU, GPU and TPU. Chunks are padded to a fixed size (a multiple
of the local device count), so the function is compiled once per sweep.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
ChunkSource = Callable[[int, int], PyTree]

__all__ = [
    "SweepStats",
    "batch_size",
    "padded_size",
    "local_mesh",
    "process_shard",
    "sweep_map",
    "sweep_topk",
]


@struct.dataclass
class SweepStats:
    """What a sweep did: sizes and timings (host-side numbers, not traced)."""

    num_configs: int = struct.field(pytree_node=False)
    num_chunks: int = struct.field(pytree_node=False)
    chunk_size: int = struct.field(pytree_node=False)
    num_local_devices: int = struct.field(pytree_node=False)
    num_processes: int = struct.field(pytree_node=False)
    seconds: float = struct.field(pytree_node=False)

    @property
    def configs_per_s(self) -> float:
        """Evaluations per second over the whole sweep (compilation included)."""
        return self.num_configs / max(self.seconds, 1e-12)


def batch_size(batch: PyTree) -> int:
    """Length of the leading (batch) axis shared by every leaf of ``batch``.

    Raises:
      ValueError: if the leaves disagree on their leading dimension or are scalars.
    """
    leaves = jax.tree.leaves(batch)
    if not leaves:
        raise ValueError("sweep batch: expected a pytree with at least one array leaf")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) > 0 else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(
            "sweep batch: every leaf must share one leading batch axis, got sizes "
            f"{sorted(sizes)}"
        )
    return sizes.pop()


def local_mesh(devices: list | None = None) -> Mesh:
    """A one-axis mesh named ``"batch"`` over this process's devices."""
    devs = list(devices) if devices is not None else jax.local_devices()
    return Mesh(np.asarray(devs), ("batch",))


def process_shard(
    n: int, *, process_index: int | None = None, process_count: int | None = None
) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` range of ``n`` configurations this process
    owns."""
    pid = jax.process_index() if process_index is None else process_index
    npr = jax.process_count() if process_count is None else process_count
    per = -(-n // npr)
    start = min(pid * per, n)
    return start, min(start + per, n)


def _slice_source(batch: PyTree | ChunkSource) -> ChunkSource:
    if callable(batch):
        return batch

    def take(start: int, stop: int) -> PyTree:
        return jax.tree.map(lambda x: np.asarray(x)[start:stop], batch)

    return take


def pad_rows(tree: PyTree, rows: int) -> PyTree:
    """Pad every leaf to ``rows`` along axis 0 by repeating its last row."""

    def pad(x):
        x = np.asarray(x)
        missing = rows - x.shape[0]
        if missing <= 0:
            return x
        return np.concatenate([x, np.repeat(x[-1:], missing, axis=0)], axis=0)

    return jax.tree.map(pad, tree)


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not final and now - self.last < 0.25:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        frac = done / max(self.total, 1)
        bar = "#" * int(30 * frac)
        end = "\n" if final else ""
        print(
            f"\r{self.desc} [{bar:<30}] {done}/{self.total} {rate:,.0f}/s",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def _compiled(fn: Callable, mesh: Mesh) -> tuple[Callable, NamedSharding]:
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.jit(jax.vmap(fn), in_shardings=(sharding,)), sharding


@functools.lru_cache(maxsize=64)
def _compiled_with_consts(fn: Callable, mesh: Mesh) -> Callable:
    """``fn(consts, row)`` vmapped over rows and jitted once per (fn, mesh): calls
    with new ``consts`` of the same structure reuse the compiled program (``fn`` must
    be a module-level function, so that its identity is stable)."""
    rows = NamedSharding(mesh, PartitionSpec("batch"))
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(jax.vmap(fn, in_axes=(None, 0)), in_shardings=(replicated, rows))


def padded_size(n: int, minimum: int = 64) -> int:
    """The power of two ≥ ``n`` (and ≥ ``minimum``, itself a power of two) that a
    batch of ``n`` rows is padded to, so that batches of nearby sizes share one
    compiled shape (the padding rows are dropped)."""
    return max(1 << int(math.ceil(math.log2(max(n, 1)))), minimum)


def _round_chunk(chunk_size: int, n_dev: int, n: int) -> int:
    chunk = max(1, min(chunk_size, padded_size(n)))
    return int(math.ceil(chunk / n_dev) * n_dev)


def _local_map(fn, source, start, stop, chunk_size, mesh, progress, desc, on_chunk,
               consts=None):
    n_local = stop - start
    n_dev = mesh.devices.size
    chunk = _round_chunk(chunk_size, n_dev, n_local)
    if consts is None:
        jitted, sharding = _compiled(fn, mesh)
    else:
        cached = _compiled_with_consts(fn, mesh)
        sharding = NamedSharding(mesh, PartitionSpec("batch"))

        def jitted(cfg):
            return cached(consts, cfg)

    bar = _Progress(n_local, desc, progress)
    num_chunks = 0
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        cfg = pad_rows(source(lo, hi), chunk)
        cfg = jax.device_put(cfg, sharding)
        out = jitted(cfg)
        out = jax.tree.map(lambda x, k=hi - lo: np.asarray(x)[:k], out)
        on_chunk(lo, hi, out)
        num_chunks += 1
        bar.update(hi - start)
    bar.update(n_local, final=True)
    return chunk, num_chunks


def _gather_rows(local: PyTree, n_local: int, n_total: int) -> PyTree:
    """Concatenate per-process row blocks in process order (multi-process only)."""
    per = -(-n_total // jax.process_count())

    def gather(x):
        x = np.asarray(x)
        padded = np.zeros((per,) + x.shape[1:], dtype=x.dtype)
        padded[: x.shape[0]] = x
        allx = np.asarray(multihost_utils.process_allgather(padded, tiled=False))
        return allx.reshape((-1,) + x.shape[1:])[:n_total]

    return jax.tree.map(gather, local)


def _setup(name: str, batch, num_configs, devices):
    """Size, row source, local mesh and this process's row range of a sweep."""
    n = num_configs if callable(batch) else batch_size(batch)
    if n is None or n < 0:
        raise ValueError(f"{name}: num_configs is required when batch is a callable")
    return n, _slice_source(batch), local_mesh(devices), process_shard(n)


def sweep_map(
    fn: Callable[[PyTree], PyTree],
    batch: PyTree | ChunkSource,
    *,
    num_configs: int | None = None,
    chunk_size: int = 1 << 16,
    devices: list | None = None,
    progress: bool = False,
    desc: str = "sweep",
) -> tuple[PyTree, SweepStats]:
    """Evaluate ``fn`` on every configuration of ``batch``; return all outputs.

    Args:
      fn: per-configuration function (unbatched pytree → pytree of arrays); it is
        vmapped and jitted here.
      batch: a pytree whose leaves share a leading axis of length N, or a callable
        ``source(start, stop) -> pytree`` that builds rows ``[start, stop)`` on demand
        (then ``num_configs`` is required) so the whole batch never sits in memory.
      num_configs: N, when ``batch`` is a callable.
      chunk_size: configurations per compiled call (rounded up to a multiple of the
        local device count). Peak memory grows linearly with it.
      devices: local devices to shard over (default: all of this process's).
      progress: print a progress bar on stderr.
      desc: progress-bar label.

    Returns:
      ``(outputs, stats)``: outputs is ``fn``'s pytree with numpy leaves of leading size
      N (gathered over all processes), and a :class:`SweepStats`.
    """
    t0 = time.perf_counter()
    n, source, mesh, (start, stop) = _setup("sweep_map", batch, num_configs, devices)
    blocks: list[PyTree] = []
    chunk, num_chunks = _local_map(
        fn,
        source,
        start,
        stop,
        chunk_size,
        mesh,
        progress,
        desc,
        lambda lo, hi, out: blocks.append(out),
    )
    if blocks:
        local = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *blocks)
    else:  # this process owns no rows: evaluate one row for the output structure
        probe = jax.jit(jax.vmap(fn))(_slice_source(batch)(0, 1))
        local = jax.tree.map(lambda x: np.asarray(x)[:0], probe)
    out = local if jax.process_count() == 1 else _gather_rows(local, stop - start, n)
    stats = SweepStats(
        n,
        num_chunks,
        chunk,
        mesh.devices.size,
        jax.process_count(),
        time.perf_counter() - t0,
    )
    return out, stats


def _merge_topk(
    idx: np.ndarray, val: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    # Stable: ties broken by the lower configuration index, so results do not depend
    # on the chunking or on the number of devices/processes.
    order = np.lexsort((idx, val))[:k]
    return idx[order], val[order]


def sweep_topk(
    score_fn: Callable[[PyTree], jax.Array],
    batch: PyTree | ChunkSource,
    k: int,
    *,
    num_configs: int | None = None,
    chunk_size: int = 1 << 16,
    devices: list | None = None,
    progress: bool = False,
    desc: str = "sweep",
    consts: PyTree | None = None,
) -> tuple[np.ndarray, np.ndarray, SweepStats]:
    """The ``k`` configurations with the smallest finite score, without keeping all
    scores.

    With ``consts``, ``score_fn(consts, row)`` is called instead of ``score_fn(row)``:
    a module-level ``score_fn`` is then compiled once per row and constant structure
    and reused by later sweeps with other constants (e.g. another cluster or model of
    the same shape), where a closure over them compiles anew each time.

    Memory is bounded by ``chunk_size`` + ``k`` whatever N is. Non-finite scores
    (for example invalid configurations scored ``inf``) are never returned.

    Returns:
      ``(indices, scores, stats)``: global indices into the batch (int64, ascending
      score, ties by index) and their scores; fewer than ``k`` if fewer are finite.
    """
    if k < 1:
        raise ValueError(f"sweep_topk: k must be >= 1, got {k}")
    t0 = time.perf_counter()
    n, source, mesh, (start, stop) = _setup("sweep_topk", batch, num_configs, devices)
    best_idx = np.zeros((0,), np.int64)
    best_val = np.zeros((0,), np.float64)

    def keep(lo, hi, scores):
        nonlocal best_idx, best_val
        s = np.asarray(scores, dtype=np.float64).reshape(hi - lo)
        ok = np.isfinite(s)
        idx = np.arange(lo, hi, dtype=np.int64)[ok]
        s = s[ok]
        if s.size > k:
            part = np.argpartition(s, k - 1)[:k]
            # include every tie with the k-th value so the merge stays exact
            kth = s[part].max()
            sel = s <= kth
            idx, s = idx[sel], s[sel]
        best_idx, best_val = _merge_topk(
            np.concatenate([best_idx, idx]), np.concatenate([best_val, s]), k
        )

    chunk, num_chunks = _local_map(
        score_fn if consts is not None else (lambda c: jnp.asarray(score_fn(c))),
        source,
        start,
        stop,
        chunk_size,
        mesh,
        progress,
        desc,
        keep,
        consts=consts,
    )
    if jax.process_count() > 1:
        pad_idx = np.full((k,), -1, np.int64)
        pad_val = np.full((k,), np.inf, np.float64)
        pad_idx[: best_idx.size] = best_idx
        pad_val[: best_val.size] = best_val
        all_idx = np.asarray(multihost_utils.process_allgather(pad_idx)).reshape(-1)
        all_val = np.asarray(multihost_utils.process_allgather(pad_val)).reshape(-1)
        ok = all_idx >= 0
        best_idx, best_val = _merge_topk(all_idx[ok], all_val[ok], k)
    stats = SweepStats(
        n,
        num_chunks,
        chunk,
        mesh.devices.size,
        jax.process_count(),
        time.perf_counter() - t0,
    )
    return best_idx, best_val, stats
