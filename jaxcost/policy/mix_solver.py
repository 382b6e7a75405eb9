"""The integer chip-mix problem and its solvers.

Integer counts per chip type on their count grids, minimising time-to-train
(``tokens / cluster tokens/s``) or capex under budget, power, stock, chip-count and
aggregate-TPP limits. Method: (a) the throughput curves of
:mod:`jaxcost.search.curves`; (b) a relaxed problem over smooth counts
``n_i = node_i · softplus(raw_i)``, throughput interpolated log-log between grid
points, constraints as smooth penalties, the regime as a smooth allowed fraction,
solved by optax Adam from several starts; (c) integer repair: round each relaxed
solution to its neighbouring grid points, enforce every constraint exactly, then local
search (± one grid step per type, and paired ± moves) on the exact grid values.
:func:`exhaustive_mix` solves the same integer problem by enumeration; on small spaces
the two agree (tested).

Symbols: n_i chip count of type i, τ_i(n) tokens/s of the best plan on n chips,
p_i effective unit price (USD), w_i unit power (W), D tokens to train.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxcost.errors import ScenarioError
from jaxcost.model.numerics import clamp_tiny

__all__ = ["EXHAUSTIVE_MAX_POINTS", "MixProblem", "MixSolution", "evaluate_counts",
           "exhaustive_mix", "rank_order", "relax", "relax_data", "relaxed_loss",
           "solve_mix"]

#: Largest number of integer grid points :func:`exhaustive_mix` enumerates.
EXHAUSTIVE_MAX_POINTS = 2_000_000


@dataclasses.dataclass(frozen=True)
class MixProblem:
    """The integer chip-mix problem on grids (everything the solvers need).

    Per type i (arrays of length T): ``grids[i]`` counts (ascending, first 0),
    ``tput[i]`` tokens/s at those counts (0 at count 0 and where nothing fits),
    ``plans[i]`` plan strings, ``unit_cost_usd`` (price with tariff and revenue share),
    ``unit_power_w`` (TDP × PUE), ``unit_tpp`` (counted against the TPP cap; 0 for
    owned chips), ``stock``, ``allowed`` (hard regime outcome), ``allowed_frac``
    (smooth regime outcome at the regime's thresholds), ``flags`` (per type, e.g.
    ``"notify"``), ``node`` (scale-up domain size).
    """

    keys: tuple[str, ...]
    grids: tuple[np.ndarray, ...]
    tput: tuple[np.ndarray, ...]
    plans: tuple[tuple[str, ...], ...]
    unit_cost_usd: np.ndarray
    unit_power_w: np.ndarray
    unit_tpp: np.ndarray
    stock: np.ndarray
    allowed: np.ndarray
    allowed_frac: np.ndarray
    flags: tuple[str, ...]
    node: np.ndarray
    tokens: float
    objective: str = "time"
    mixed: bool = True
    budget_usd: float = math.inf
    power_w: float = math.inf
    max_chips: float = math.inf
    tpp_cap: float = math.inf
    max_time_to_train_s: float = math.inf
    cross_type_efficiency: float = 0.9

    @property
    def num_types(self) -> int:
        return len(self.keys)


def _combine(tp: np.ndarray, eta: float) -> np.ndarray:
    """Cluster tokens/s of groups (last axis): largest + η · the others."""
    mx = tp.max(axis=-1)
    return mx + eta * (tp.sum(axis=-1) - mx)


def evaluate_counts(prob: MixProblem, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Exact evaluation of integer points ``idx`` (…, T) of grid indices."""
    idx = np.asarray(idx, dtype=np.int64)
    T = prob.num_types
    counts = np.stack([prob.grids[i][idx[..., i]] for i in range(T)], axis=-1)
    tp = np.stack([prob.tput[i][idx[..., i]] for i in range(T)], axis=-1)
    counts = counts.astype(np.float64)
    tok_s = _combine(tp, prob.cross_type_efficiency)
    with np.errstate(divide="ignore"):
        t = np.where(tok_s > 0, prob.tokens / np.where(tok_s > 0, tok_s, 1.0), np.inf)
    cost = counts @ prob.unit_cost_usd
    power = counts @ prob.unit_power_w
    tpp = counts @ prob.unit_tpp
    nchips = counts.sum(axis=-1)
    active = counts > 0
    # a group with chips but no fitting plan contributes nothing: forbid it
    dead = np.any(active & (tp <= 0), axis=-1)
    ok = (tok_s > 0) & ~dead
    ok &= np.all(counts <= prob.stock, axis=-1)
    ok &= np.all(~active | prob.allowed, axis=-1)
    ok &= cost <= prob.budget_usd * (1 + 1e-12)
    ok &= power <= prob.power_w * (1 + 1e-12)
    ok &= nchips <= prob.max_chips
    ok &= tpp <= prob.tpp_cap * (1 + 1e-12)
    ok &= t <= prob.max_time_to_train_s * (1 + 1e-12)
    if not prob.mixed:
        ok &= active.sum(axis=-1) <= 1
    obj = t if prob.objective == "time" else cost
    # ties broken by cost then time, so results are deterministic
    return {"counts": counts, "tokens_per_s": tok_s, "time_s": t, "cost_usd": cost,
            "power_w": power, "tpp": tpp, "feasible": ok,
            "objective": np.where(ok, obj, np.inf),
            "tiebreak": np.where(ok, cost if prob.objective == "time" else t, np.inf)}


def rank_order(ev: dict) -> np.ndarray:
    return np.lexsort((ev["tiebreak"], ev["objective"]))


def exhaustive_mix(prob: MixProblem, *, top: int = 10) -> list[np.ndarray]:
    """Solve the integer problem by enumerating every grid point (reference solver).

    Returns:
      Grid-index vectors of the ``top`` best feasible points, best first.

    Raises:
      ScenarioError: more than ``EXHAUSTIVE_MAX_POINTS`` points.
    """
    sizes = [g.size for g in prob.grids]
    if prob.mixed:
        size = math.prod(sizes)
        if size > EXHAUSTIVE_MAX_POINTS:
            raise ScenarioError(f"exhaustive search over {size} grid points exceeds "
                                f"{EXHAUSTIVE_MAX_POINTS}", column="exhaustive")
        idx = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"),
                       axis=-1).reshape(-1, len(sizes))
    else:
        rows = [np.zeros(len(sizes), np.int64)]
        for i, s in enumerate(sizes):
            r = np.zeros((s, len(sizes)), np.int64)
            r[:, i] = np.arange(s)
            rows.append(r)
        idx = np.unique(np.vstack([np.atleast_2d(r) for r in rows]), axis=0)
    ev = evaluate_counts(prob, idx)
    order = rank_order(ev)
    order = order[np.isfinite(ev["objective"][order])][:top]
    return [idx[j] for j in order]


# ------------------------------------------------------------------ relaxed problem


@dataclasses.dataclass(frozen=True)
class _Curves:
    """Padded log-log curve tables of a problem (fitting grid points only)."""

    log_g: np.ndarray    # (T, M) log counts, strictly increasing per row
    log_t: np.ndarray    # (T, M) log tokens/s
    log_g0: np.ndarray   # (T,) log of the smallest fitting count
    has_fit: np.ndarray  # (T,) bool


def _curve_tables(prob: MixProblem) -> _Curves:
    T = prob.num_types
    fits = [(np.asarray(g[t > 0], np.float64), np.asarray(t[t > 0], np.float64))
            for g, t in zip(prob.grids, prob.tput, strict=True)]
    M = max([f[0].size for f in fits] + [2])
    log_g = np.zeros((T, M))
    log_t = np.zeros((T, M))
    log_g0 = np.zeros(T)
    has = np.zeros(T, bool)
    for i, (g, t) in enumerate(fits):
        if g.size == 0:
            log_g[i] = np.arange(M, dtype=np.float64)
            continue
        has[i] = True
        lg, lt = np.log(g), np.log(t)
        pad = M - g.size
        log_g[i] = np.concatenate([lg, lg[-1] + 1e-6 * np.arange(1, pad + 1)])
        log_t[i] = np.concatenate([lt, np.full(pad, lt[-1])])
        log_g0[i] = lg[0]
    return _Curves(log_g, log_t, log_g0, has)


@struct.dataclass
class _RelaxData:
    """The relaxed problem's data as arrays (so one compilation serves every problem
    of the same shape). Absent limits are ``inf``."""

    node: jax.Array
    unit_cost_usd: jax.Array
    unit_power_w: jax.Array
    unit_tpp: jax.Array
    stock: jax.Array
    log_g: jax.Array
    log_t: jax.Array
    log_g0: jax.Array
    has_fit: jax.Array
    log_tokens: jax.Array
    eta: jax.Array
    # limits: budget_usd, power_w, max_chips, tpp_cap, max_time_to_train_s
    limits: jax.Array
    is_time: jax.Array     # 1: minimise time-to-train; 0: minimise capex


def relax_data(prob: MixProblem) -> _RelaxData:
    cv = _curve_tables(prob)
    f = lambda x: jnp.asarray(np.asarray(x, np.float64))  # noqa: E731
    return _RelaxData(
        node=f(prob.node), unit_cost_usd=f(prob.unit_cost_usd),
        unit_power_w=f(prob.unit_power_w), unit_tpp=f(prob.unit_tpp),
        stock=f(prob.stock), log_g=f(cv.log_g), log_t=f(cv.log_t), log_g0=f(cv.log_g0),
        has_fit=f(cv.has_fit), log_tokens=f(math.log(prob.tokens)),
        eta=f(prob.cross_type_efficiency),
        limits=f([prob.budget_usd, prob.power_w, prob.max_chips, prob.tpp_cap,
                  prob.max_time_to_train_s]),
        is_time=f(1.0 if prob.objective == "time" else 0.0))


def _pwlinear(x, xp, fp):
    """Row-wise piecewise-linear interpolation, flat outside ``[xp[0], xp[-1]]``.

    ``f(x) = fp[0] + Σ_k slope_k · clip(x − xp_k, 0, xp_{k+1} − xp_k)`` (x: (T,),
    xp, fp: (T, M) with increasing rows); same values as ``jnp.interp`` per row.
    """
    dx = jnp.diff(xp, axis=-1)
    slope = jnp.diff(fp, axis=-1) / jnp.maximum(dx, 1e-12)
    seg = jnp.clip(x[:, None] - xp[:, :-1], 0.0, dx)
    return fp[:, 0] + jnp.sum(slope * seg, axis=-1)


def _soft_excess(v):
    """Smooth max(v, 0): softplus(30 v) / 30."""
    return jax.nn.softplus(30.0 * v) / 30.0


def relaxed_loss(raw, frac, active, d: _RelaxData, rho):
    """Smooth objective (log time or log capex) + rho · penalties, at raw counts.

    ``n_i = node_i · softplus(raw_i) · active_i``; the useful count of a type is
    ``n_i · frac_i`` (the regime's smooth allowed fraction); tokens/s is interpolated
    log-log between grid points and gated to 0 below the smallest fitting count.
    Each limit enters as ``rho · smooth_max(v, 0)²`` with ``v = log(usage / limit)``
    (0 for an absent, infinite, limit).
    """
    n = d.node * jax.nn.softplus(raw) * active
    logn = jnp.log(jnp.maximum(n * frac, 1e-3))
    lt = _pwlinear(logn, d.log_g, d.log_t)
    gate = jax.nn.sigmoid((logn - d.log_g0 + 0.05) / 0.02)
    tp = jnp.where(d.has_fit > 0, jnp.exp(lt) * gate, 0.0) * active
    s = jnp.sum(tp)
    temp = 0.02 * s + 1e-9
    mx = jnp.minimum(temp * jax.nn.logsumexp(tp / temp), s)
    tok_s = mx + d.eta * (s - mx)
    # logs of quantities floored at tiny_like (finite value and gradient at 0)
    log_time = d.log_tokens - jnp.log(clamp_tiny(tok_s))
    cost = jnp.sum(n * d.unit_cost_usd)
    usage = jnp.stack([cost, jnp.sum(n * d.unit_power_w), jnp.sum(n),
                       jnp.sum(n * d.unit_tpp), jnp.exp(log_time)])
    v = jnp.log(clamp_tiny(usage)) - jnp.log(clamp_tiny(d.limits))
    # the deadline is a constraint only when minimising cost
    v = v.at[4].set(jnp.where(d.is_time > 0, -1.0, v[4]))
    vs = jnp.log(clamp_tiny(n)) - jnp.log(clamp_tiny(d.stock))
    vs = jnp.where(active > 0, vs, -1.0)
    pen = jnp.sum(_soft_excess(v) ** 2) + jnp.sum(_soft_excess(vs) ** 2)
    obj = jnp.where(d.is_time > 0, log_time, jnp.log(clamp_tiny(cost)))
    return obj + rho * pen


_ADAM = optax.adam(0.05)


def _adam_step(raw, state, active, frac, d, rho):
    g = jax.grad(relaxed_loss)(raw, frac, active, d, rho) * active
    upd, state = _ADAM.update(g, state, raw)
    return optax.apply_updates(raw, upd), state


_adam_steps = jax.jit(jax.vmap(_adam_step, in_axes=(0, 0, 0, None, None, None)))


def relax(prob: MixProblem, n0: np.ndarray, active: np.ndarray, steps: int,
           frac: np.ndarray | None = None) -> np.ndarray:
    """Adam on the relaxed problem from counts ``n0`` (S, T); returns smooth counts.

    The penalty weight grows geometrically from 10 to 1e4 over the steps. All starts
    move together (one vmapped, jitted step).
    """
    d = relax_data(prob)
    node = prob.node.astype(np.float64)
    x = np.maximum(np.asarray(n0, np.float64) / node, 1e-2)
    raw = jnp.asarray(np.where(x > 30, x, np.log(np.expm1(np.minimum(x, 30)))))
    act = jnp.asarray(np.asarray(active, np.float64))
    frac = jnp.asarray(np.asarray(prob.allowed_frac if frac is None else frac,
                                  np.float64))
    state = jax.vmap(_ADAM.init)(raw)
    for rho in np.geomspace(10.0, 1e4, steps):
        raw, state = _adam_steps(raw, state, act, frac, d, jnp.asarray(rho))
    return node[None, :] * np.asarray(jax.nn.softplus(raw)) * np.asarray(active)


def _round_candidates(prob: MixProblem, n: np.ndarray) -> np.ndarray:
    """All floor/ceil grid neighbours of the smooth counts ``n`` (T,)."""
    opts = []
    for i in range(prob.num_types):
        g = prob.grids[i]
        if n[i] <= 0:
            opts.append([0])
            continue
        hi = int(np.clip(np.searchsorted(g, n[i]), 0, g.size - 1))
        opts.append(sorted({max(hi - 1, 0), hi}))
    return np.asarray(list(itertools.product(*opts)), np.int64).reshape(
        -1, prob.num_types)


def _neighbours(prob: MixProblem, idx: np.ndarray) -> np.ndarray:
    """Integer moves around ``idx``: ± one grid step of one type, and trades (one type
    ± up to two steps while another takes any grid point)."""
    T = prob.num_types
    sizes = np.asarray([g.size for g in prob.grids])
    cand = []
    for i in range(T):
        for d in (-1, 1):
            v = idx.copy()
            v[i] += d
            cand.append(v[None])
    for i, j in itertools.permutations(range(T), 2):
        for d in (-2, -1, 1, 2):
            v = np.repeat(idx[None], sizes[j], axis=0)
            v[:, i] += d
            v[:, j] = np.arange(sizes[j])
            cand.append(v)
    if not cand:
        return np.zeros((0, T), np.int64)
    cand = np.concatenate(cand)
    ok = np.all((cand >= 0) & (cand < sizes), axis=1)
    return cand[ok]


def _local_search(prob: MixProblem, start: np.ndarray, seen: dict) -> np.ndarray:
    """Best-improvement hill climbing on grid indices; records every evaluated point."""

    def score(points):
        ev = evaluate_counts(prob, points)
        for p, o, tb in zip(points, ev["objective"], ev["tiebreak"], strict=True):
            seen[tuple(int(x) for x in p)] = (float(o), float(tb))
        return ev

    cur = np.asarray(start, np.int64)
    ev = score(cur[None])
    cur_key = (float(ev["objective"][0]), float(ev["tiebreak"][0]))
    for _ in range(10_000):
        nb = _neighbours(prob, cur)
        if nb.size == 0:
            break
        ev = score(nb)
        o = rank_order(ev)[0]
        key = (float(ev["objective"][o]), float(ev["tiebreak"][o]))
        if not key < cur_key:
            break
        cur, cur_key = nb[o], key
    return cur


@dataclasses.dataclass(frozen=True)
class MixSolution:
    ranked: list[np.ndarray]
    relaxed_counts: np.ndarray
    evaluated: np.ndarray


def _starts(prob: MixProblem, usable: list[int], seen: dict) -> tuple[np.ndarray, ...]:
    """Relaxation starts (counts, active masks): each usable type alone at its best
    homogeneous grid point; for mixed problems every pair and all usable types at an
    equal share of the limits."""
    T = prob.num_types
    n0, act = [], []
    for i in usable:
        g = prob.grids[i]
        idx = np.zeros((g.size, T), np.int64)
        idx[:, i] = np.arange(g.size)
        ev = evaluate_counts(prob, idx)
        for p, o, tb in zip(idx, ev["objective"], ev["tiebreak"], strict=True):
            seen[tuple(int(x) for x in p)] = (float(o), float(tb))
        b = rank_order(ev)[0]
        n = g[b] if np.isfinite(ev["objective"][b]) else g[int(np.argmax(prob.tput[i]))]
        v, a = np.ones(T), np.zeros(T)
        v[i], a[i] = max(float(n), 1.0), 1.0
        n0.append(v)
        act.append(a)
    if prob.mixed and len(usable) > 1:
        groups = [list(c) for c in itertools.combinations(usable, 2)]
        if len(usable) > 2:
            groups.append(list(usable))
        for grp in groups:
            v, a = np.ones(T), np.zeros(T)
            for i in grp:
                g = prob.grids[i]
                cap = _cap_count(prob, i) / len(grp)
                v[i] = float(np.clip(cap, max(g[min(1, g.size - 1)], 1), g[-1]))
                a[i] = 1.0
            n0.append(v)
            act.append(a)
    return np.asarray(n0).reshape(-1, T), np.asarray(act).reshape(-1, T)


def solve_mix(prob: MixProblem, *, top: int = 10, steps: int = 300) -> MixSolution:
    """Relaxed gradient steps + integer repair + local search (see module docstring).

    Each start (see :func:`_starts`) is relaxed with Adam (all starts in one vmapped,
    jitted call), rounded to every floor/ceil combination of neighbouring grid points,
    and improved by local search with exact evaluation; every integer point touched
    is kept for the ranking.

    Returns:
      The ``top`` best feasible grid-index vectors (best first), the relaxed counts of
      each start (S, T), and every evaluated point.
    """
    T = prob.num_types
    usable = [i for i in range(T) if prob.allowed[i] and np.any(prob.tput[i] > 0)
              and prob.stock[i] > 0]
    seen: dict[tuple, tuple[float, float]] = {}
    relaxed = np.zeros((0, T))
    if usable:
        n0, act = _starts(prob, usable, seen)
        relaxed = relax(prob, n0, act, steps)
        for n in relaxed:
            for c in _round_candidates(prob, n):
                _local_search(prob, c, seen)
    if not seen:
        return MixSolution(ranked=[], relaxed_counts=relaxed,
                      evaluated=np.zeros((0, T), np.int64))
    pts = np.asarray(list(seen), np.int64).reshape(-1, T)
    ev = evaluate_counts(prob, pts)
    order = rank_order(ev)
    order = order[np.isfinite(ev["objective"][order])][:top]
    return MixSolution(ranked=[pts[j] for j in order], relaxed_counts=relaxed,
                       evaluated=pts)


def _cap_count(prob: MixProblem, i: int) -> float:
    """Most chips of type i the limits allow on their own."""
    caps = [prob.stock[i], prob.max_chips]
    for lim, unit in ((prob.budget_usd, prob.unit_cost_usd[i]),
                      (prob.power_w, prob.unit_power_w[i]),
                      (prob.tpp_cap, prob.unit_tpp[i])):
        if math.isfinite(lim) and unit > 0:
            caps.append(lim / unit)
    return float(min(caps))


