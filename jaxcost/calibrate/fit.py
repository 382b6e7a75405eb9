"""The optax fit of ``CostParams``: Adam then L-BFGS, deterministic.

The optimiser is Adam followed by L-BFGS (``optax.lbfgs`` with a backtracking line
search), a fixed number of steps each, so that the same data and options always give
bit-identical parameters, and so that many fits (folds, bootstrap resamples) run as
one ``jax.vmap``-ed program (:func:`optimize_packed`). The loss and its gradient are
compiled once per dataset and called from the small optimiser programs.

Training rows whose parallel plan is blank in the source are left out of the fit (a
plan search inside the loss would be too slow) and listed in ``FitData.excluded``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcost.calibrate.metrics import ErrorRow, error_table
from jaxcost.calibrate.residuals import (
    FitOptions,
    base_weights,
    initial_params,
    log_residuals_packed,
    loss_packed,
    pack_params,
    prior_tables,
    run_values,
    step_sign,
    unpack_params,
)
from jaxcost.calibrate.rows import FitData, x64
from jaxcost.errors import (
    NumericalError,
)
from jaxcost.model.params import (
    CostParams,
)

__all__ = [
    "FitResult",
    "BOOTSTRAP_LBFGS_STEPS",
    "LOSS_BATCH",
    "optimize_packed",
    "fit_params",
]


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
      params: fitted ``CostParams``.
      loss: final loss.
      loss_history: loss at every iteration (Adam then L-BFGS), ``(steps,)``.
      dataset_losses: dataset -> weighted mean squared log residual at the optimum.
      log_residuals: dataset -> ``(n,)`` log(pred / obs) of each row's target.
      step_log_residuals: ``(n_runs,)`` log(T_pred / T_obs) of training step time
        (rate targets converted: T is proportional to 1 / rate).
      step_time_s: ``(n_runs,)`` predicted step time, s.
      metrics: in-sample APE of training step time (overall, family, chip, group).
      seconds: wall time of the fit, s.
    """

    params: CostParams
    loss: float
    loss_history: np.ndarray
    dataset_losses: dict[str, float]
    log_residuals: dict[str, np.ndarray]
    step_log_residuals: np.ndarray
    step_time_s: np.ndarray
    metrics: tuple[ErrorRow, ...]
    seconds: float


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.t0 = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        frac = done / max(self.total, 1)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{self.desc:<12} [{bar:<30}] {done}/{self.total} "
                         f"{time.perf_counter() - self.t0:6.1f} s")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _check_finite(values: np.ndarray, stage: str, start: int,
                  rows: Callable[[int, int], str] | None = None) -> None:
    """Raise ``NumericalError`` if a loss in ``values`` (``([B,] n)``, iterations
    ``start ...``) is not finite; ``rows(member, index)`` names the rows
    responsible."""
    bad = ~np.isfinite(values)
    if bad.any():
        where = np.argwhere(bad)[0]
        step = start + int(where[-1])
        member = f" (batch member {int(where[0])})" if values.ndim > 1 else ""
        culprits = ""
        if rows is not None:
            culprits = rows(int(where[0]) if values.ndim > 1 else 0, int(where[-1]))
        raise NumericalError(f"non-finite loss or gradient in {stage} at iteration "
                             f"{step}{member}{culprits}; check the data for zero or "
                             "negative targets, or lower adam_lr")


#: Rows named at most in the note of a numerical failure.
_MAX_ROWS_NAMED = 8


def _nonfinite_rows(data: FitData, m: jax.Array) -> list[str]:
    """Rows (``dataset row_id``) whose log residual, or its gradient with respect to
    the packed parameters ``m`` (one member, 2-D), is not finite.

    Run only after a fit failed (one backward pass per row); inside :func:`x64`.
    """
    res = jax.jit(log_residuals_packed)(m, data)
    out = []
    for d, r in res.items():
        ids = data.label(d, "row_id")
        out += [f"{d} {ids[i]}" for i in np.flatnonzero(~np.isfinite(np.asarray(r)))]
    if out:
        return out

    def row_grad(q, dat, d, e):
        return jax.vjp(lambda x: log_residuals_packed(x, dat)[d], q)[1](e)[0]

    vjp = jax.jit(row_grad, static_argnums=2)
    for d, r in res.items():
        ids = data.label(d, "row_id")
        for i in range(r.shape[0]):
            e = jnp.zeros_like(r).at[i].set(1.0)
            if not np.all(np.isfinite(np.asarray(vjp(m, data, d, e)))):
                out.append(f"{d} {ids[i]}")
    return out


def _rows_note(data: FitData, m: jax.Array) -> str:
    rows = _nonfinite_rows(data, m)
    if not rows:
        return "; no single row is non-finite there (the prior or the optimiser step)"
    more = len(rows) - _MAX_ROWS_NAMED
    tail = f" and {more} more" if more > 0 else ""
    return (f"; rows responsible: {', '.join(rows[:_MAX_ROWS_NAMED])}{tail}")


#: L-BFGS iterations of a bootstrap member, warm-started from the full-data fit (the
#: resampled optimum is near it; 100 resamples must refit in 3 minutes on 2 cores).
BOOTSTRAP_LBFGS_STEPS = 80


#: Members per call of the compiled batched loss (CV folds and bootstrap resamples
#: are padded to a multiple of it, so that one compiled program serves every batch).
LOSS_BATCH = 20


class _HostLoss:
    """The loss and its gradient, compiled once per (data, options), and exposed to
    the optimiser programs as a host call with a custom VJP.

    The step-time graph is large and XLA compile time grows with every copy of it
    (Adam body, L-BFGS body, line search, vmapped variants). Compiling it once as
    ``value_and_grad`` (single and batched) and calling it from the small optimiser
    programs through ``jax.pure_callback`` keeps compile time to two compilations.

    Float64 values cross the callback as uint32 pairs (``_to_bits`` / ``_from_bits``
    / ``_np_bits``), because passing them directly loses precision. Checked with jax
    and jaxlib 0.10.2 (CPU), float64 ``ShapeDtypeStruct`` results and float64
    operands, inside ``jax.enable_x64(True)`` as :func:`fit_params` runs: the first
    150 calls (Adam) ran on the main thread and received float64, but the first call
    from the L-BFGS program ran on an XLA worker thread (``threading`` name
    ``Dummy-2``). ``enable_x64`` is a thread-local context that thread does not
    inherit, so jax handed the callback its operands as float32 arrays, rounded.
    Under the test suite's global ``jax_enable_x64`` the direct version passes
    ``tests/test_fit.py`` and ``tests/test_fit_recovery_runs.py`` and fits
    bit-identically, which is why the tests alone cannot show the problem. A user
    who never sets the global flag can, so the bit-casting stays.
    """

    def __init__(self, data: FitData, options: FitOptions) -> None:
        self.data = data
        self.options = options
        self.tables = tuple(jnp.asarray(t) for t in prior_tables(data))
        vg = jax.value_and_grad(loss_packed)
        self._single = jax.jit(vg, static_argnums=4)
        self._batch = jax.jit(jax.vmap(vg, in_axes=(0, 0, None, None, None)),
                              static_argnums=4)

    def host_vg(self, m: np.ndarray, mult: dict) -> tuple[np.ndarray, np.ndarray]:
        # inputs arrive bit-cast to uint32 pairs: the callback may run on an XLA
        # worker thread without the x64 context, which would round float64 inputs
        # (see the class docstring)
        m = _from_bits(m)
        mult = {k: _from_bits(v) for k, v in mult.items()}
        # jax runs callbacks with the CPU device as default device, and the jit cache
        # key includes it: set it here too, so that the direct call at the end of
        # fit_params reuses the program compiled for the callbacks (it compiled the
        # loss a second time otherwise, some 10 s on 2 cores)
        cpu = jax.local_devices(backend="cpu")[0]
        with x64(), jax.default_device(cpu):
            if m.ndim == 2:
                v, g = self._single(m, mult, self.data, self.tables, self.options)
                return _np_bits(v), _np_bits(g)
            b = m.shape[0]
            mult = {k: np.broadcast_to(v, (b,) + v.shape[-1:]) for k, v in mult.items()}
            pad = (-b) % LOSS_BATCH
            if pad:
                m = np.concatenate([m, np.repeat(m[-1:], pad, axis=0)])
                mult = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)])
                        for k, v in mult.items()}
            vs, gs = [], []
            for i in range(0, b + pad, LOSS_BATCH):
                sl = slice(i, i + LOSS_BATCH)
                v, g = self._batch(m[sl], {k: x[sl] for k, x in mult.items()},
                                   self.data, self.tables, self.options)
                vs.append(np.asarray(v))
                gs.append(np.asarray(g))
            return (_np_bits(np.concatenate(vs)[:b]), _np_bits(np.concatenate(gs)[:b]))

    def loss_fn(self) -> Callable:
        """``loss(m, mult)`` usable in jit / vmap / grad (first order)."""

        def call(m, mult):
            shapes = (jax.ShapeDtypeStruct((2,), jnp.uint32),
                      jax.ShapeDtypeStruct(m.shape + (2,), jnp.uint32))
            v, g = jax.pure_callback(self.host_vg, shapes, _to_bits(m),
                                     jax.tree.map(_to_bits, mult),
                                     vmap_method="expand_dims")
            return (jax.lax.bitcast_convert_type(v, jnp.float64),
                    jax.lax.bitcast_convert_type(g, jnp.float64))

        @jax.custom_vjp
        def loss(m, mult):
            return call(m, mult)[0]

        def fwd(m, mult):
            v, g = call(m, mult)
            return v, (g, mult)

        def bwd(res, ct):
            g, mult = res
            return ct * g, jax.tree.map(jnp.zeros_like, mult)

        loss.defvjp(fwd, bwd)
        return loss


def _to_bits(x: jax.Array) -> jax.Array:
    return jax.lax.bitcast_convert_type(jnp.asarray(x, dtype=jnp.float64), jnp.uint32)


def _from_bits(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.uint32)
    flat = np.ascontiguousarray(a.reshape(-1))
    return flat.view(np.float64).reshape(a.shape[:-1])


def _np_bits(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    flat = np.ascontiguousarray(a.reshape(-1))
    return flat.view(np.uint32).reshape(a.shape + (2,))


_HOST_CACHE: dict = {}


def _host_loss(data: FitData, options: FitOptions) -> _HostLoss:
    # the loss depends only on the dataset and prior weights, not on the steps
    loss_opts = FitOptions(dataset_weights=options.dataset_weights,
                           prior_weight=options.prior_weight)
    key = (id(data), loss_opts)
    hit = _HOST_CACHE.get(key)
    if hit is None or hit.data is not data:
        _HOST_CACHE.clear()
        hit = _HOST_CACHE[key] = _HostLoss(data, loss_opts)
    return hit


def optimize_packed(data: FitData, params0: jax.Array, mult: dict[str, jax.Array],
              options: FitOptions, *, batched: bool, desc: str
              ) -> tuple[jax.Array, np.ndarray]:
    """Adam then L-BFGS from the packed matrix ``params0``; ``batched``: leading
    axis on params0 and mult.

    Returns the final packed params and the loss history ``([B,] steps)``.
    """
    loss = _host_loss(data, options).loss_fn()
    adam = optax.adam(options.adam_lr)
    lbfgs = optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=20, store_grad=True))

    def adam_chunk(p, s, m, n):
        vg = jax.value_and_grad(lambda q: loss(q, m))

        def body(carry, _):
            q, st = carry
            v, g = vg(q)
            u, st = adam.update(g, st, q)
            # a non-finite gradient shows in the history through 0 * norm
            return (optax.apply_updates(q, u), st), v + 0.0 * jnp.sum(g)

        (p, s), hist = jax.lax.scan(body, (p, s), None, length=n)
        return p, s, hist

    def lbfgs_chunk(p, s, m, n):
        f = lambda q: loss(q, m)  # noqa: E731
        vg = optax.value_and_grad_from_state(f)

        def body(carry, _):
            q, st = carry
            v, g = vg(q, state=st)
            u, st = lbfgs.update(g, st, q, value=v, grad=g, value_fn=f)
            return (optax.apply_updates(q, u), st), v + 0.0 * jnp.sum(g)

        (p, s), hist = jax.lax.scan(body, (p, s), None, length=n)
        return p, s, hist

    def vm(f):
        return jax.vmap(f) if batched else f

    init_a = jax.vmap(adam.init) if batched else adam.init
    init_l = jax.vmap(lbfgs.init) if batched else lbfgs.init
    chunk_a = {}
    chunk_l = {}

    def get(cache, fn, n):
        if n not in cache:
            cache[n] = jax.jit(vm(lambda p, s, m: fn(p, s, m, n)))
        return cache[n]

    total = options.adam_steps + options.lbfgs_steps
    prog = _Progress(total, desc, options.progress)
    hist = []
    p = params0
    s = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), init_a(p))
    def culprits(fn, p0, s0):
        # rows responsible: rerun the failing chunk up to the failing step
        def rows(b, j):
            q = get({}, fn, j)(p0, s0, mult)[0] if j else p0
            return _rows_note(data, q[b] if batched else q)
        return rows

    done = 0
    while done < options.adam_steps:
        n = min(options.chunk, options.adam_steps - done)
        p0, s0 = p, s
        p, s, h = get(chunk_a, adam_chunk, n)(p, s, mult)
        h = np.asarray(h)
        _check_finite(h, "Adam", done, culprits(adam_chunk, p0, s0))
        hist.append(h)
        done += n
        prog.update(done)
    # strong types: a weakly typed state leaf would recompile the second chunk
    s = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), init_l(p))
    k = 0
    while k < options.lbfgs_steps:
        n = min(options.chunk, options.lbfgs_steps - k)
        p0, s0 = p, s
        p, s, h = get(chunk_l, lbfgs_chunk, n)(p, s, mult)
        h = np.asarray(h)
        _check_finite(h, "L-BFGS", options.adam_steps + k,
                      culprits(lbfgs_chunk, p0, s0))
        hist.append(h)
        k += n
        done += n
        prog.update(done)
    if not np.all(np.isfinite(np.asarray(p))):
        raise NumericalError(f"{desc}: non-finite parameters after the fit")
    history = np.concatenate(hist, axis=-1) if hist else np.zeros((0,))
    return p, history


def fit_params(data: FitData, *, options: FitOptions | None = None,
        params0: CostParams | None = None) -> FitResult:
    """Fit ``CostParams`` to all rows of ``data`` (x64 enabled inside).

    Args:
      data: from :func:`build_fit_data`.
      options: see :class:`FitOptions`.
      params0: starting point (default: the priors of ``data/priors.csv``).

    Returns:
      FitResult (deterministic: same data and options give bit-identical params).

    Raises:
      NumericalError: the loss or its gradient became non-finite.
    """
    options = FitOptions() if options is None else options
    t0 = time.perf_counter()
    with x64():
        p0 = initial_params(data, params0)
        m0 = pack_params(p0, data)
        mult = {d: jnp.ones_like(w) for d, w in base_weights(data).items()}
        m, hist = optimize_packed(data, m0, mult, options, batched=False, desc="fit")
        res = {d: np.asarray(r) for d, r in
               jax.jit(log_residuals_packed)(m, data).items()}
        t_pred = (np.asarray(jax.jit(lambda q, dat: run_values(q, dat)[1])(m, data))
                  if data.runs is not None else np.zeros((0,)))
        final = float(_from_bits(_host_loss(data, options).host_vg(
            _np_bits(m), {k: _np_bits(v) for k, v in mult.items()})[0]))
        p = unpack_params(m, data, base=p0)
    if not math.isfinite(final):
        raise NumericalError("non-finite loss at the fitted parameters")
    dl = {}
    for d, r in res.items():
        w = np.asarray(getattr(data, d).weight)
        dl[d] = float(np.sum(w * r**2) / np.sum(w))
    step = res["runs"] * step_sign(data) if "runs" in res else np.zeros((0,))
    metrics = error_table(step, data) if data.runs is not None else ()
    return FitResult(params=p, loss=final, loss_history=hist, dataset_losses=dl,
                     log_residuals=res, step_log_residuals=step, step_time_s=t_pred,
                     metrics=metrics,
                     seconds=time.perf_counter() - t0)

