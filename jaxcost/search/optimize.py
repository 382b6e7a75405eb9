"""Optimisation: the best parallel plan for a cluster, and the best cluster to buy.

Three layers, each usable alone:

1. **Plan search** (:func:`best_plan`). Every valid plan of a model on a cluster
   (``parallel.enumerate_plans``) is scored with ``predict_step_time`` through
   :func:`jaxcost.search.sweep.sweep_topk` (chunked ``jit(vmap(...))``, sharded over devices
   and processes); plans that do not fit in HBM or give a non-finite time score
   ``inf``. The top-k are re-evaluated for their full ``StepTime``.

2. **Throughput curves** (:func:`throughput_curves`). For each candidate chip type,
   tokens/s of the best plan at every count of a geometric grid of multiples of the
   scale-up domain (the node), in ONE :func:`jaxcost.search.sweep.sweep_map` per chip type
   (the chip count is a batched leaf, so the cost function is compiled once per type).

3. **Chip mix** (:func:`chip_mix`, :func:`solve_mix`). Integer counts per chip type on
   those grids, minimising time-to-train (``tokens / cluster tokens/s``) or capex under
   budget, power, stock, chip-count and aggregate-TPP limits and the export-control
   regime. Method: (a) the curves above; (b) a relaxed problem over smooth counts
   ``n_i = node_i · softplus(raw_i)``, throughput interpolated log-log between grid
   points, constraints as smooth penalties, the regime as a smooth allowed fraction,
   solved by optax Adam from several starts; (c) integer repair: round each relaxed
   solution to its neighbouring grid points, enforce every constraint exactly, then
   local search (± one grid step per type, and paired ± moves) on the exact grid
   values. :func:`exhaustive_mix` solves the same integer problem by enumeration; on
   small spaces the two agree (tested), and :func:`chip_mix` checks it whenever the
   grid product is small enough.

Mixed clusters. Groups of different chip types are combined as data-parallel groups:
each group runs its own best plan, and the cluster's throughput is the largest
group's throughput plus ``cross_type_efficiency`` (η, scenario ``[search]``, default
0.9) times the others'. η is a *parameter* (not fitted): it stands for the load
imbalance and the slower cross-type gradient all-reduce over the scale-out network.
The search ranks clusters with that surrogate; the final clusters (the ranked pool and
the Pareto front) are then evaluated exactly with ``step_time.predict_step_time_hetero``
(``mode="data"``), each group re-planned for its balanced share of the global batch
(``_Hetero``), and re-ranked on that value.

Cost. ``capex = Σ count · price · (1 + tariff_frac + revenue_share_frac)``, with the
tariff and revenue share of the chip's classification under the regime. The revenue
share (remitted by the vendor to the exporting government) is assumed to be passed
through in full to the buyer's price; owned chips (stockpiles) cost their given price
(default 0) and carry neither. Power is ``Σ count · tdp_w · pue``.

Regime. Chips whose classification is ``prohibited`` get count 0; ``license`` chips
are allowed only when the scenario says ``allow_licensed = true`` and are flagged;
``notify`` chips are allowed and flagged; owned chips are exempt. The relaxed problem
multiplies each type's useful count by the regime's smooth allowed fraction, so
:func:`policy_sensitivity` can differentiate the relaxed optimum with respect to each
threshold (envelope theorem).

Symbols: n_i chip count of type i, τ_i(n) tokens/s of the best plan on n chips,
p_i effective unit price (USD), w_i unit power (W), D tokens to train.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxcost.search import sweep
from jaxcost.errors import InfeasibleError, PlanError, ScenarioError

__all__ = [
    "PlanResult",
    "ThroughputCurve",
    "MixProblem",
    "ClusterResult",
    "MixResult",
    "best_plan",
    "count_grid",
    "throughput_curves",
    "mix_problem",
    "solve_mix",
    "exhaustive_mix",
    "chip_mix",
    "pareto_front",
    "policy_sensitivity",
    "threshold_sweep",
]

#: Largest number of integer grid points :func:`exhaustive_mix` enumerates.
EXHAUSTIVE_MAX_POINTS = 2_000_000
#: Default number of configurations per compiled sweep call.
DEFAULT_CHUNK_SIZE = 8192


# ============================================================================ plans


@struct.dataclass
class PlanResult:
    """One scored plan of one cluster.

    Attributes:
      plan: the ``ParallelPlan`` (scalar leaves).
      step_time: its full ``StepTime`` breakdown.
      tokens_per_s: cluster throughput, tokens/s.
      time_to_train_s: time to train the token budget, s (``nan`` when none given).
      plan_str: the plan as a string (``parallel.plan_to_str``).
    """

    plan: Any
    step_time: Any
    tokens_per_s: float
    time_to_train_s: float
    plan_str: str = struct.field(pytree_node=False)


def _tokens_per_step(workload) -> float:
    return float(workload.global_batch_seqs) * float(workload.seq_len)


def _score_time(params, cluster, workload, plan):
    """Step time in s, ``inf`` when the plan does not fit or the time is not finite."""
    from jaxcost.model.step_time import predict_step_time

    st = predict_step_time(params, cluster, workload, plan)
    ok = jnp.logical_and(st.fits_in_hbm > 0.5, jnp.isfinite(st.total_s))
    return jnp.where(ok, st.total_s, jnp.inf)


def best_plan(params, cluster, workload, *, k: int = 10, objective: str = "time",
              chunk_size: int = DEFAULT_CHUNK_SIZE, tokens: float | None = None,
              plans=None, progress: bool = False, **enumerate_kwargs
              ) -> list[PlanResult]:
    """The ``k`` best valid plans of ``workload`` on ``cluster``, best first.

    Every plan of ``parallel.enumerate_plans`` (or ``plans``, a batched
    ``ParallelPlan``) is scored by step time with :func:`jaxcost.search.sweep.sweep_topk`;
    invalid or non-fitting plans score ``inf`` and are never returned.

    Args:
      params: ``CostParams``.
      cluster: a homogeneous ``ClusterSpec``.
      workload: ``TransformerConfig``.
      k: number of plans to return.
      objective: ``"time"`` (step time; on a fixed cluster this also minimises cost
        and energy per token).
      chunk_size: configurations per compiled call.
      tokens: token budget; gives ``time_to_train_s``.
      plans: pre-enumerated plans (``(P,)`` leaves); default: enumerate.
      progress: progress bar on stderr.
      **enumerate_kwargs: passed to ``parallel.enumerate_plans``.

    Returns:
      Up to ``k`` :class:`PlanResult` (an empty list when no plan fits).

    Raises:
      PlanError: unknown objective.
    """
    from jaxcost.model import parallel
    from jaxcost.model.step_time import predict_step_time

    if objective != "time":
        raise PlanError(f"objective={objective!r}: best_plan minimises step time; "
                        "expected 'time'", column="objective")
    n = int(round(float(cluster.num_chips)))
    if plans is None:
        plans = parallel.enumerate_plans(workload, n, cluster.chip, **enumerate_kwargs)
    num = sweep.batch_size(plans) if jax.tree.leaves(plans) else 0
    if num == 0:
        return []
    idx, _, _ = sweep.sweep_topk(
        lambda p: _score_time(params, cluster, workload, p), plans, k,
        chunk_size=chunk_size, progress=progress, desc=f"plans {cluster.chip.key}x{n}")
    if idx.size == 0:
        return []
    top = jax.tree.map(lambda x: np.asarray(x)[idx], plans)
    st = jax.jit(jax.vmap(lambda p: predict_step_time(params, cluster, workload, p)))(top)
    tps = _tokens_per_step(workload)
    out = []
    for j in range(idx.size):
        plan_j = parallel.plan_at(top, j)
        st_j = jax.tree.map(lambda x, j=j: np.asarray(x)[j], st)
        total = float(st_j.total_s)
        tok_s = tps / total
        out.append(PlanResult(plan=plan_j, step_time=st_j, tokens_per_s=tok_s,
                              time_to_train_s=(float(tokens) / tok_s if tokens
                                               else math.nan),
                              plan_str=parallel.plan_to_str(plan_j)))
    return out


# ================================================================ throughput curves


@dataclasses.dataclass(frozen=True)
class ThroughputCurve:
    """Best-plan throughput of one chip type at a grid of counts.

    Attributes:
      key: chip key.
      counts: chip counts (ascending, int).
      tokens_per_s: best-plan tokens/s at each count (0 where no plan fits).
      plans: best plan string at each count ("" where none fits).
      step_s: best step time at each count, s (inf where none fits).
      num_plans: plans evaluated at each count.
    """

    key: str
    counts: np.ndarray
    tokens_per_s: np.ndarray
    plans: tuple[str, ...]
    step_s: np.ndarray
    num_plans: np.ndarray


def count_grid(node_size: int, max_count: float, *, steps_per_octave: int = 2,
               min_count: int | None = None, extra: Sequence[float] = ()) -> np.ndarray:
    """Geometric grid of chip counts, multiples of ``node_size``, up to ``max_count``.

    Nodes ``round(2**(j / steps_per_octave))`` for j = 0, 1, ... (deduplicated), times
    ``node_size``; ``extra`` counts (e.g. the most chips a budget buys) are rounded
    down to a node multiple and added. Counts below one node are not on the grid
    unless ``min_count`` is smaller than a node (then ``min_count`` is its own point).
    """
    node = max(int(node_size), 1)
    max_nodes = math.floor(max_count / node) if math.isfinite(max_count) else 1 << 20
    pts: set[int] = set()
    j = 0
    while True:
        nodes = int(round(2 ** (j / steps_per_octave)))
        if nodes > max_nodes:
            break
        pts.add(nodes * node)
        j += 1
    for e in extra:
        if math.isfinite(e) and e >= node:
            pts.add(int(math.floor(min(e, max_count) / node)) * node)
    if min_count is not None and 1 <= min_count < node and min_count <= max_count:
        pts.add(int(min_count))
    return np.asarray(sorted(p for p in pts if p >= 1), dtype=np.int64)


def _stack_static(chips: Sequence) -> Any:
    """Stack chips of different types into one record with ``(n,)`` leaves (static
    fields taken from the first chip; the step-time model reads only the leaves)."""
    first = chips[0]
    static = {f.name: getattr(first, f.name) for f in dataclasses.fields(first)
              if not f.metadata.get("pytree_node", True)}
    same = [c.replace(**static) for c in chips]
    return jax.tree.map(lambda *x: np.stack([np.asarray(v, np.float64) for v in x]),
                        *same)


def throughput_curves(params, workload, chips: Sequence, counts: Sequence[np.ndarray],
                      *, chunk_size: int = DEFAULT_CHUNK_SIZE, max_plans: int = 200_000,
                      progress: bool = False, **enumerate_kwargs
                      ) -> list[ThroughputCurve]:
    """Best-plan throughput of each chip type at each of its counts.

    The plans of every (chip type, count) are concatenated into ONE batch whose rows
    carry the plan, the chip count and the chip type; each row looks up its chip's
    specification and physical parameters (``params.physical``, resolved per type
    outside the sweep) and is scored with ``step_time.predict_step_time_physical``
    through ONE :func:`jaxcost.search.sweep.sweep_map` (one compilation in all).

    Args:
      params: ``CostParams``.
      workload: ``TransformerConfig``.
      chips: ``ChipSpec`` per type.
      counts: chip counts per type.
      max_plans: largest number of plans per chip type; larger counts beyond it are
        left out (throughput 0).

    Returns:
      One :class:`ThroughputCurve` per chip type.
    """
    from jaxcost.model import parallel
    from jaxcost.model.hardware import ClusterSpec
    from jaxcost.model.params import physical
    from jaxcost.model.step_time import predict_step_time_physical

    tps = _tokens_per_step(workload)
    blocks, owner_t, owner_c, nplans = [], [], [], []
    for t, (chip, cnts) in enumerate(zip(chips, counts, strict=True)):
        total = 0
        per = []
        for i, n in enumerate(np.asarray(cnts, dtype=np.int64)):
            pl = parallel.enumerate_plans(workload, int(n), chip, **enumerate_kwargs)
            m = sweep.batch_size(pl) if jax.tree.leaves(pl) else 0
            if m and total + m > max_plans:
                m = 0
            per.append(m)
            if m:
                blocks.append(pl)
                owner_t.append(np.full(m, t))
                owner_c.append(np.full(m, i))
                total += m
        nplans.append(np.asarray(per, dtype=np.int64))
    steps = [np.full(len(c), np.inf) for c in counts]
    plan_s = [[""] * len(c) for c in counts]
    if blocks:
        allp = jax.tree.map(lambda *x: np.concatenate(x), *blocks)
        ot, oc = np.concatenate(owner_t), np.concatenate(owner_c)
        ncount = np.concatenate([np.asarray(counts[t], np.float64)[oc[ot == t]]
                                 for t in range(len(chips)) if np.any(ot == t)])
        stacked_chip = _stack_static(list(chips))
        stacked_pp = jax.tree.map(
            lambda *x: np.stack([np.asarray(v, np.float64) for v in x]),
            *[physical(params, c) for c in chips])

        def score(row):
            p, n, t = row
            chip = jax.tree.map(lambda x: jnp.asarray(x)[t], stacked_chip)
            pp = jax.tree.map(lambda x: jnp.asarray(x)[t], stacked_pp)
            st = predict_step_time_physical(pp, ClusterSpec(chip=chip, num_chips=n),
                                            workload, p)
            ok = jnp.logical_and(st.fits_in_hbm > 0.5, jnp.isfinite(st.total_s))
            return jnp.where(ok, st.total_s, jnp.inf)

        scores, _ = sweep.sweep_map(score, (allp, ncount, ot.astype(np.int32)),
                                    chunk_size=chunk_size, progress=progress,
                                    desc="throughput curves")
        scores = np.asarray(scores, dtype=np.float64)
        key = ot.astype(np.int64) * (1 << 32) + oc
        for k in np.unique(key):
            sel = np.flatnonzero(key == k)
            j = sel[np.argmin(scores[sel])]
            t, i = int(ot[j]), int(oc[j])
            if np.isfinite(scores[j]):
                steps[t][i] = scores[j]
                plan_s[t][i] = parallel.plan_to_str(parallel.plan_at(allp, int(j)))
    out = []
    for t, chip in enumerate(chips):
        st = steps[t]
        tok = np.where(np.isfinite(st), tps / np.where(np.isfinite(st), st, 1.0), 0.0)
        out.append(ThroughputCurve(key=chip.key,
                                   counts=np.asarray(counts[t], np.int64),
                                   tokens_per_s=tok, plans=tuple(plan_s[t]),
                                   step_s=st, num_plans=nplans[t]))
    return out


# ===================================================================== mix problem


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


def _evaluate_idx(prob: MixProblem, idx: np.ndarray) -> dict[str, np.ndarray]:
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


def _order(ev: dict) -> np.ndarray:
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
    ev = _evaluate_idx(prob, idx)
    order = _order(ev)
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
    limits: jax.Array      # budget_usd, power_w, max_chips, tpp_cap, max_time_to_train_s
    is_time: jax.Array     # 1: minimise time-to-train; 0: minimise capex


def _relax_data(prob: MixProblem) -> _RelaxData:
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


def _relaxed_loss(raw, frac, active, d: _RelaxData, rho):
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
    log_time = d.log_tokens - jnp.log(jnp.maximum(tok_s, 1e-30))
    cost = jnp.sum(n * d.unit_cost_usd)
    usage = jnp.stack([cost, jnp.sum(n * d.unit_power_w), jnp.sum(n),
                       jnp.sum(n * d.unit_tpp), jnp.exp(log_time)])
    v = jnp.log(jnp.maximum(usage, 1e-30)) - jnp.log(jnp.maximum(d.limits, 1e-30))
    # the deadline is a constraint only when minimising cost
    v = v.at[4].set(jnp.where(d.is_time > 0, -1.0, v[4]))
    vs = jnp.log(jnp.maximum(n, 1e-30)) - jnp.log(jnp.maximum(d.stock, 1e-30))
    vs = jnp.where(active > 0, vs, -1.0)
    pen = jnp.sum(_soft_excess(v) ** 2) + jnp.sum(_soft_excess(vs) ** 2)
    obj = jnp.where(d.is_time > 0, log_time, jnp.log(jnp.maximum(cost, 1e-30)))
    return obj + rho * pen


_ADAM = optax.adam(0.05)


def _adam_step(raw, state, active, frac, d, rho):
    g = jax.grad(_relaxed_loss)(raw, frac, active, d, rho) * active
    upd, state = _ADAM.update(g, state, raw)
    return optax.apply_updates(raw, upd), state


_adam_steps = jax.jit(jax.vmap(_adam_step, in_axes=(0, 0, 0, None, None, None)))


def _relax(prob: MixProblem, n0: np.ndarray, active: np.ndarray, steps: int,
           frac: np.ndarray | None = None) -> np.ndarray:
    """Adam on the relaxed problem from counts ``n0`` (S, T); returns smooth counts.

    The penalty weight grows geometrically from 10 to 1e4 over the steps. All starts
    move together (one vmapped, jitted step).
    """
    d = _relax_data(prob)
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
        ev = _evaluate_idx(prob, points)
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
        o = _order(ev)[0]
        key = (float(ev["objective"][o]), float(ev["tiebreak"][o]))
        if not key < cur_key:
            break
        cur, cur_key = nb[o], key
    return cur


@dataclasses.dataclass(frozen=True)
class _Solve:
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
        ev = _evaluate_idx(prob, idx)
        for p, o, tb in zip(idx, ev["objective"], ev["tiebreak"], strict=True):
            seen[tuple(int(x) for x in p)] = (float(o), float(tb))
        b = _order(ev)[0]
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


def solve_mix(prob: MixProblem, *, top: int = 10, steps: int = 300) -> _Solve:
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
        relaxed = _relax(prob, n0, act, steps)
        for n in relaxed:
            for c in _round_candidates(prob, n):
                _local_search(prob, c, seen)
    if not seen:
        return _Solve(ranked=[], relaxed_counts=relaxed,
                      evaluated=np.zeros((0, T), np.int64))
    pts = np.asarray(list(seen), np.int64).reshape(-1, T)
    ev = _evaluate_idx(prob, pts)
    order = _order(ev)
    order = order[np.isfinite(ev["objective"][order])][:top]
    return _Solve(ranked=[pts[j] for j in order], relaxed_counts=relaxed, evaluated=pts)


def _cap_count(prob: MixProblem, i: int) -> float:
    """Most chips of type i the limits allow on their own."""
    caps = [prob.stock[i], prob.max_chips]
    for lim, unit in ((prob.budget_usd, prob.unit_cost_usd[i]),
                      (prob.power_w, prob.unit_power_w[i]),
                      (prob.tpp_cap, prob.unit_tpp[i])):
        if math.isfinite(lim) and unit > 0:
            caps.append(lim / unit)
    return float(min(caps))


# ======================================================================= scenario


@dataclasses.dataclass(frozen=True)
class ClusterResult:
    """One cluster: chip counts per type, plans, and what it costs.

    Attributes:
      counts: chips per type (types with 0 chips omitted).
      plans: best plan string per type (data-parallel groups).
      group_tokens_per_s: tokens/s of each group alone (its best plan).
      tokens_per_s: cluster tokens/s: the group's for one type; for several, the
        heterogeneous data-parallel model (``predict_step_time_hetero``,
        ``mode="data"``) when ``throughput_model == "hetero-data"``, else the
        surrogate.
      surrogate_tokens_per_s: largest group + η × the others (what the search used).
      time_to_train_s: tokens to train / tokens_per_s, s.
      capex_usd: Σ count · effective unit price, USD.
      power_w: Σ count · TDP · PUE, W.
      tpp: aggregate TPP of bought chips.
      flags: regime notes per type, e.g. ``("H20:license",)``.
      throughput_model: ``"homogeneous"``, ``"hetero-data"`` or ``"surrogate"``.
    """

    counts: dict[str, int]
    plans: dict[str, str]
    group_tokens_per_s: dict[str, float]
    tokens_per_s: float
    surrogate_tokens_per_s: float
    time_to_train_s: float
    capex_usd: float
    power_w: float
    tpp: float
    flags: tuple[str, ...]
    throughput_model: str = "homogeneous"

    @property
    def label(self) -> str:
        return " + ".join(f"{n}x{k}" for k, n in self.counts.items())

    @property
    def plan_label(self) -> str:
        return " + ".join(self.plans[k] for k in self.counts)


@dataclasses.dataclass(frozen=True)
class MixResult:
    """Ranked clusters of a scenario, and how they were found.

    Attributes:
      clusters: best first (by the scenario's objective, exact evaluation).
      pareto: the non-dominated clusters (time vs capex) among all evaluated ones.
      problem: the integer problem that was solved.
      curves: the throughput curves per type.
      excluded: chip key -> why it was excluded (regime, stock, no fitting plan).
      relaxed_counts: smooth counts of each relaxed start (S, T).
      exhaustive_agrees: the relaxed+repair optimum equals the exhaustive optimum of
        the same integer problem (None when the grid was too large to check).
      seconds: wall time per phase.
    """

    clusters: list[ClusterResult]
    pareto: list[ClusterResult]
    problem: MixProblem
    curves: list[ThroughputCurve]
    excluded: dict[str, str]
    relaxed_counts: np.ndarray
    exhaustive_agrees: bool | None
    seconds: dict[str, float]


def _consequence_str(c) -> str:
    c = getattr(c, "value", c)
    return str(c).lower()


#: consequences under which a chip may be bought (``license`` only when allowed)
_OBTAINABLE = ("allowed", "notify", "not_applicable")


def _smooth_frac(ec, chip, regime, allow_licensed: bool, thresholds=None,
                 temperature: float = 0.05):
    """Smooth allowed fraction: 1 − P(prohibited) − P(indeterminate)
    − P(license) (the last only when licensed chips are not allowed)."""
    probs = ec.smooth_consequence_probs(chip, regime, thresholds=thresholds,
                                        temperature=temperature)
    ok = sum(probs.get(k, 0.0) for k in _OBTAINABLE)
    if allow_licensed:
        ok = ok + probs.get("license", 0.0)
    return ok


@dataclasses.dataclass(frozen=True)
class _Term:
    allowed: bool
    frac: float
    price_factor: float
    flag: str
    why: str


def _regime_terms(candidates, regime_id: str, allow_licensed: bool,
                  thresholds=None, temperature: float | None = None) -> list[_Term]:
    """Per candidate: hard outcome, smooth allowed fraction, price factor, flag.

    With ``thresholds`` and a small ``temperature`` the hard outcome is the most
    probable consequence of the smooth classification at those thresholds (used by
    :func:`threshold_sweep`); otherwise it is ``export_control.classify``.
    """
    from jaxcost.policy import export_control as ec

    regime = ec.load_regime(regime_id)
    out = []
    for cand in candidates:
        if cand.owned:
            out.append(_Term(True, 1.0, 1.0, "owned", ""))
            continue
        frac = float(_smooth_frac(ec, cand.chip, regime, allow_licensed, thresholds))
        if thresholds is None:
            cls = ec.classify(cand.chip, regime)
            cons = _consequence_str(cls.consequence)
            factor = 1.0 + float(cls.tariff_frac) + float(cls.revenue_share_frac)
        else:
            t = 1e-4 if temperature is None else temperature
            probs = ec.smooth_consequence_probs(cand.chip, regime,
                                                thresholds=thresholds, temperature=t)
            cons = max(probs, key=lambda k: float(probs[k]))
            factor = 1.0 + float(ec.smooth_license_cost_frac(
                cand.chip, regime, thresholds=thresholds, temperature=t))
        if cons == "prohibited":
            out.append(_Term(False, frac, factor, "prohibited",
                             f"prohibited under regime {regime_id}"))
        elif cons == "indeterminate":
            out.append(_Term(False, frac, factor, "indeterminate",
                             f"indeterminate under regime {regime_id} (a quantity the "
                             "rules need is unknown for this chip)"))
        elif cons == "license":
            if allow_licensed:
                out.append(_Term(True, frac, factor, "license", ""))
            else:
                out.append(_Term(False, frac, factor, "license",
                                 f"needs a licence under regime {regime_id} "
                                 "(allow_licensed = false)"))
        elif cons == "notify":
            out.append(_Term(True, frac, factor, "notify", ""))
        else:
            out.append(_Term(True, frac, factor, "", ""))
    return out


def mix_problem(scenario, curves: Sequence[ThroughputCurve], regime_terms) -> MixProblem:
    """Assemble the integer problem of a scenario from its curves and regime terms."""
    cands = scenario.candidates
    grids, tput, plans = [], [], []
    for cv in curves:
        grids.append(np.concatenate([[0], cv.counts]).astype(np.int64))
        tput.append(np.concatenate([[0.0], cv.tokens_per_s]))
        plans.append(("",) + tuple(cv.plans))
    price = np.asarray([c.price_usd * rt.price_factor for c, rt in
                        zip(cands, regime_terms, strict=True)])
    tpp = _tpp_of([c.chip for c in cands])
    return MixProblem(
        keys=tuple(_cand_key(c) for c in cands), grids=tuple(grids), tput=tuple(tput),
        plans=tuple(plans), unit_cost_usd=price,
        unit_power_w=np.asarray([float(c.chip.tdp_w) * scenario.pue for c in cands]),
        unit_tpp=np.asarray([0.0 if c.owned else t for c, t in
                             zip(cands, tpp, strict=True)]),
        stock=np.asarray([c.stock for c in cands], np.float64),
        allowed=np.asarray([rt.allowed for rt in regime_terms], bool),
        allowed_frac=np.asarray([rt.frac for rt in regime_terms], np.float64),
        flags=tuple(rt.flag for rt in regime_terms),
        node=np.asarray([max(int(float(c.chip.scaleup_domain_size)), 1)
                         for c in cands]),
        tokens=scenario.tokens, objective=scenario.objective, mixed=scenario.mixed,
        budget_usd=scenario.budget_usd, power_w=scenario.power_w,
        max_chips=scenario.max_chips, tpp_cap=scenario.tpp_cap,
        max_time_to_train_s=scenario.max_time_to_train_s,
        cross_type_efficiency=scenario.search.cross_type_efficiency)


def _cand_key(c) -> str:
    return f"{c.chip.key}(owned)" if c.owned else c.chip.key


def _tpp_of(chips) -> np.ndarray:
    from jaxcost.policy import export_control as ec

    return np.asarray([float(ec.tpp(c)) for c in chips], np.float64)


def _cluster_result(prob: MixProblem, idx: np.ndarray) -> ClusterResult:
    ev = _evaluate_idx(prob, idx[None])
    counts, plans, group, flags = {}, {}, {}, []
    for i, j in enumerate(idx):
        n = int(prob.grids[i][j])
        if n == 0:
            continue
        counts[prob.keys[i]] = n
        plans[prob.keys[i]] = prob.plans[i][j]
        group[prob.keys[i]] = float(prob.tput[i][j])
        if prob.flags[i]:
            flags.append(f"{prob.keys[i]}:{prob.flags[i]}")
    tok = float(ev["tokens_per_s"][0])
    return ClusterResult(
        counts=counts, plans=plans, group_tokens_per_s=group, tokens_per_s=tok,
        surrogate_tokens_per_s=tok, time_to_train_s=float(ev["time_s"][0]),
        capex_usd=float(ev["cost_usd"][0]), power_w=float(ev["power_w"][0]),
        tpp=float(ev["tpp"][0]), flags=tuple(flags),
        throughput_model="homogeneous" if len(counts) == 1 else "surrogate")


def _grid_max(scenario, cand, factor: float) -> float:
    """Most chips of a candidate any feasible cluster can hold (for its count grid)."""
    caps = [cand.stock, scenario.max_chips]
    price = cand.price_usd * factor
    if math.isfinite(scenario.budget_usd) and price > 0:
        caps.append(scenario.budget_usd / price)
    if math.isfinite(scenario.power_w):
        caps.append(scenario.power_w / (float(cand.chip.tdp_w) * scenario.pue))
    return float(min(caps))


def _smallest_fitting(w, chip, node: int, max_count: int = 1 << 20,
                      **plan_options) -> int | None:
    """Smallest count (node × 2^k) with a valid plan that fits in memory (numpy only)."""
    from jaxcost.model import parallel

    n = node
    while n <= max_count:
        pl = parallel.enumerate_plans(w, n, chip, **plan_options)
        if jax.tree.leaves(pl) and sweep.batch_size(pl) > 0:
            return n
        n *= 2
    return None


def _infeasible_message(scenario, w, prob: MixProblem, excluded: dict) -> str:
    """Name the constraint that binds when no cluster is feasible.

    For each usable type, the smallest cluster on which the model fits in memory is
    found (plan enumeration, numpy only) and compared with each limit; the message
    names the limit missed by the smallest factor.
    """
    usable = [i for i in range(prob.num_types) if prob.allowed[i] and prob.stock[i] > 0]
    if not usable:
        why = "; ".join(f"{k}: {v}" for k, v in excluded.items())
        return f"no candidate chip is usable ({why})"
    chips = {_cand_key(c): c.chip for c in scenario.candidates}
    msgs = []
    for i in usable:
        n = _smallest_fitting(w, chips[prob.keys[i]], int(prob.node[i]),
                              **scenario.search.plan_options())
        if n is None:
            msgs.append((math.inf, f"the model fits in memory on no cluster of "
                                   f"{prob.keys[i]} up to {1 << 20} chips"))
            continue
        smallest = f"{n} x {prob.keys[i]}"
        cost = n * prob.unit_cost_usd[i]
        power = n * prob.unit_power_w[i]
        tpp = n * prob.unit_tpp[i]
        checks = [
            (cost, scenario.budget_usd,
             f"budget_usd={scenario.budget_usd:.3g} buys fewer chips than the smallest "
             f"cluster that fits the model in memory ({smallest} = {cost:.3g} USD)"),
            (power, scenario.power_w,
             f"power_w={scenario.power_w:.3g} powers fewer chips than the smallest "
             f"cluster that fits the model in memory ({smallest} = {power:.3g} W)"),
            (n, prob.stock[i],
             f"stock of {prob.keys[i]} ({prob.stock[i]:.0f}) is below the smallest "
             f"cluster that fits the model in memory ({smallest})"),
            (n, scenario.max_chips,
             f"max_chips={scenario.max_chips:.0f} is below the smallest cluster that "
             f"fits the model in memory ({smallest})"),
            (tpp, scenario.tpp_cap,
             f"tpp_cap={scenario.tpp_cap:.3g} is below the TPP of the smallest cluster "
             f"that fits the model in memory ({smallest} = {tpp:.3g})"),
        ]
        broken = [(use / max(lim, 1e-30), m) for use, lim, m in checks if use > lim]
        if broken:
            msgs.append(min(broken))
        elif np.any(prob.tput[i] > 0):
            best_t = prob.tokens / float(np.max(prob.tput[i]))
            msgs.append((best_t / prob.max_time_to_train_s,
                         f"max_time_to_train_s={prob.max_time_to_train_s:.3g} is "
                         f"shorter than the fastest {prob.keys[i]} cluster the limits "
                         f"allow ({best_t:.3g} s)"))
        else:
            msgs.append((math.inf, f"no grid count of {prob.keys[i]} within the limits "
                                   "has a valid plan (batch divisibility)"))
    return min(msgs, key=lambda m: m[0])[1]


def pareto_front(results: Sequence[ClusterResult]) -> list[ClusterResult]:
    """Non-dominated clusters for (time-to-train, capex), both minimised.

    A cluster is dominated when another is no slower and no costlier and strictly
    better in one. Returns the front sorted by capex (ascending); duplicates in both
    values are kept once.
    """
    pts = sorted(results, key=lambda r: (r.capex_usd, r.time_to_train_s))
    front: list[ClusterResult] = []
    best_t = math.inf
    for r in pts:
        if r.time_to_train_s < best_t:
            front.append(r)
            best_t = r.time_to_train_s
    return front


def _chips_of(scenario, prob: MixProblem) -> dict[str, Any]:
    return {_cand_key(c): c.chip for c in scenario.candidates}


def _nice_batch(share: float) -> int:
    """The nearest 2^k or 3·2^k (k ≥ 0) to ``share`` (in log space), at least 1."""
    if share <= 1.0:
        return 1
    k = int(math.floor(math.log2(share)))
    cands = [2 ** k, 3 * 2 ** (k - 1) if k >= 1 else 1, 2 ** (k + 1)]
    return min(cands, key=lambda c: abs(math.log(c / share)))


class _Hetero:
    """Exact throughput of mixed clusters with the heterogeneous data-parallel model,
    each group re-planned for the share of the global batch it runs.

    The search ranks clusters with each type's best plan for the *whole* global batch;
    inside a mixed cluster a group runs only its share B_g, for which another plan
    (fewer micro-batches, hence other pipeline and data-parallel degrees) can be
    faster. Starting from the whole-batch plans, ``REPLAN_ROUNDS`` times: compute the
    balanced shares (``step_time.hetero_batch_shares``), pick every group's best plan
    for a batch of about B_g sequences (B_g rounded to the nearest 2^k or 3·2^k, so
    that the plan enumeration has divisors to work with and searches are shared
    between clusters), and evaluate the cluster again at the exact shares. The fastest
    re-planned evaluation is kept. It can be slower than the whole-batch plans: those
    may give a group fewer sequences than one micro-batch per replica, which the
    continuous step model would time as a fraction of a micro-batch. One compilation
    per combination of chip types for the cluster, one per chip type (and padded plan
    count) for the plan scoring.
    """

    REPLAN_ROUNDS = 2

    def __init__(self, params, workload, plan_options: dict | None = None,
                 max_plans: int = 200_000) -> None:
        self.params, self.w = params, workload
        self.plan_options = dict(plan_options or {})
        self.max_plans = int(max_plans)
        self.fns: dict[tuple[str, ...], Any] = {}
        self.score_fn = None
        self.plan_cache: dict[tuple[str, int, int], str | None] = {}

    def _cluster_fn(self, keys):
        # step time and balanced shares from one evaluation of the data-parallel
        # groups (``predict_step_time_hetero(mode="data")`` and
        # ``hetero_batch_shares`` would each balance the shares)
        from jaxcost.model.params import physical
        from jaxcost.model.step_time import _hetero_data

        if keys not in self.fns:
            def total(clusters, plans):
                pps = [physical(self.params, cl.chip) for cl in clusters]
                st, share = _hetero_data(pps, clusters, self.w, plans, "bf16")
                return jnp.where(st.fits_in_hbm > 0.5, st.total_s, jnp.inf), share

            self.fns[keys] = jax.jit(total)
        return self.fns[keys]

    def _best_plan_str(self, name: str, chip, n: int, share: float) -> str | None:
        """Best plan of ``n`` chips for a batch of about ``share`` sequences (cached
        per chip type, count and rounded batch)."""
        if not math.isfinite(share) or share < 1:
            return None
        b = _nice_batch(share)
        key = (name, int(n), b)
        if key not in self.plan_cache:
            self.plan_cache[key] = self._search(chip, n, b)
        return self.plan_cache[key]

    def _search(self, chip, n: int, b: int) -> str | None:
        from jaxcost.model import parallel
        from jaxcost.model.hardware import ClusterSpec

        wg = self.w.replace(global_batch_seqs=float(b))
        plans = parallel.enumerate_plans(wg, int(n), chip, **self.plan_options)
        num = sweep.batch_size(plans) if jax.tree.leaves(plans) else 0
        if num == 0 or num > self.max_plans:
            return None
        if self.score_fn is None:
            self.score_fn = jax.jit(jax.vmap(_score_time,
                                             in_axes=(None, None, None, 0)))
        size = 1 << max(int(math.ceil(math.log2(num))), 6)  # padded: few compilations
        t = np.asarray(self.score_fn(self.params,
                                     ClusterSpec(chip=chip, num_chips=float(n)), wg,
                                     sweep._pad_rows(plans, size)))[:num]
        j = int(np.argmin(t))
        if not np.isfinite(t[j]):
            return None
        return parallel.plan_to_str(parallel.plan_at(plans, j))

    def evaluate(self, chips: dict, r: ClusterResult) -> tuple[float, dict[str, str]]:
        """(tokens/s, plan string per type) of the mixed cluster ``r``."""
        from jaxcost.model import parallel
        from jaxcost.model.hardware import ClusterSpec

        keys = tuple(r.counts)
        fn = self._cluster_fn(keys)
        clusters = tuple(ClusterSpec(chip=chips[k], num_chips=float(r.counts[k]))
                         for k in keys)

        def run(plan_strs):
            plans = tuple(parallel.plan_from_str(plan_strs[k]) for k in keys)
            t, share = fn(clusters, plans)
            return float(t), np.asarray(share, dtype=np.float64)

        cur = dict(r.plans)
        t0, share = run(cur)
        best_t, best = math.inf, None
        for _ in range(self.REPLAN_ROUNDS):
            if not np.all(np.isfinite(share)):
                break
            new = {}
            for i, k in enumerate(keys):
                s = self._best_plan_str(k, chips[k], r.counts[k], float(share[i]))
                new[k] = cur[k] if s is None else s
            if new == cur and best is not None:
                break
            cur = new
            t, share = run(cur)
            if math.isfinite(t) and t < best_t:
                best_t, best = t, cur
        if best is None:  # no round (REPLAN_ROUNDS = 0) or none finite
            best_t, best = t0, dict(r.plans)
        tok = _tokens_per_step(self.w) / best_t \
            if math.isfinite(best_t) and best_t > 0 else 0.0
        return tok, best


def _exact(prob: MixProblem, r: ClusterResult, hetero: _Hetero | None,
           chips: dict) -> ClusterResult:
    if len(r.counts) < 2 or hetero is None:
        return r
    tok, plans = hetero.evaluate(chips, r)
    t = prob.tokens / tok if tok > 0 else math.inf
    return dataclasses.replace(r, tokens_per_s=tok, time_to_train_s=t, plans=plans,
                               throughput_model="hetero-data")


def _rank_key(prob: MixProblem, r: ClusterResult) -> tuple[float, float]:
    if prob.objective == "time":
        return (r.time_to_train_s, r.capex_usd)
    return (r.capex_usd, r.time_to_train_s)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    curves: list[ThroughputCurve]
    excluded_static: dict[str, str]
    seconds: dict[str, float]


def _prepare(params, w, scenario, terms, *, all_types: bool, chunk_size: int,
             progress: bool) -> _Prepared:
    """Count grids and throughput curves of every usable candidate."""
    t0 = time.perf_counter()
    excluded: dict[str, str] = {}
    chips, grids = [], []
    for cand, rt in zip(scenario.candidates, terms, strict=True):
        chips.append(cand.chip)
        node = max(int(float(cand.chip.scaleup_domain_size)), 1)
        gmax = _grid_max(scenario, cand, rt.price_factor)
        if not rt.allowed and not all_types:
            excluded[_cand_key(cand)] = rt.why
            gmax = 0.0
        elif cand.stock <= 0:
            excluded[_cand_key(cand)] = "stock is 0"
            gmax = 0.0
        grids.append(count_grid(node, gmax,
                                steps_per_octave=scenario.search.grid_steps_per_octave,
                                extra=(gmax,)))
    t1 = time.perf_counter()
    curves = throughput_curves(params, w, chips, grids, chunk_size=chunk_size,
                               max_plans=scenario.search.max_plans, progress=progress,
                               **scenario.search.plan_options())
    return _Prepared(curves, excluded, {"grids": t1 - t0,
                                        "curves": time.perf_counter() - t1})


def _solve_prepared(params, w, scenario, prep: _Prepared, terms, *,
                    check_exhaustive: bool, hetero: _Hetero | None) -> MixResult:
    t2 = time.perf_counter()
    prob = mix_problem(scenario, prep.curves, terms)
    excluded = dict(prep.excluded_static)
    for i, (cand, rt) in enumerate(zip(scenario.candidates, terms, strict=True)):
        if not rt.allowed:
            excluded.setdefault(_cand_key(cand), rt.why)
        cv = prep.curves[i]
        if prob.allowed[i] and cv.counts.size and not np.any(cv.tokens_per_s > 0):
            excluded.setdefault(prob.keys[i], "no plan fits in memory up to "
                                f"{int(cv.counts[-1])} chips")
    top = max(scenario.search.top, 1)
    sol = solve_mix(prob, top=3 * top, steps=scenario.search.relaxed_steps)
    t3 = time.perf_counter()
    if not sol.ranked:
        raise InfeasibleError(_infeasible_message(scenario, w, prob, excluded),
                              file=scenario.path or None)
    agrees = None
    if check_exhaustive:
        try:
            ref = exhaustive_mix(prob, top=1)
        except ScenarioError:
            ref = None
        if ref is not None:
            a = _evaluate_idx(prob, sol.ranked[0][None])["objective"][0]
            b = _evaluate_idx(prob, ref[0][None])["objective"][0]
            agrees = bool(a <= b * (1 + 1e-9))
    t4 = time.perf_counter()
    chips = _chips_of(scenario, prob)
    ev = _evaluate_idx(prob, sol.evaluated)
    pool = [_cluster_result(prob, idx) for idx in sol.evaluated[ev["feasible"]]]
    front = pareto_front(pool)
    # the exact (heterogeneous) model may rate mixed clusters below the surrogate:
    # keep the best homogeneous cluster of every type in the pool so that the final
    # ranking never misses it
    pool_idx = list(sol.ranked)
    for i in range(prob.num_types):
        g = prob.grids[i]
        idx = np.zeros((g.size, prob.num_types), np.int64)
        idx[:, i] = np.arange(g.size)
        evh = _evaluate_idx(prob, idx)
        b = _order(evh)[0]
        if np.isfinite(evh["objective"][b]):
            pool_idx.append(idx[b])
    ranked = [_cluster_result(prob, idx) for idx in pool_idx]
    exact: dict[tuple, ClusterResult] = {}

    def ex(r):
        k = tuple(sorted(r.counts.items()))
        if k not in exact:
            exact[k] = _exact(prob, r, hetero, chips)
        return exact[k]

    uniq: dict[tuple, ClusterResult] = {}
    for r in ranked:
        uniq.setdefault(tuple(sorted(r.counts.items())), r)
    ranked = [ex(r) for r in uniq.values()]
    ranked = [r for r in ranked
              if r.time_to_train_s <= prob.max_time_to_train_s * (1 + 1e-12)]
    ranked = sorted(ranked, key=lambda r: _rank_key(prob, r))[:top]
    if not ranked:
        raise InfeasibleError("max_time_to_train_s: no cluster meets the deadline "
                              "once mixed clusters are evaluated exactly",
                              file=scenario.path or None)
    front = pareto_front([ex(r) for r in front] + ranked)
    return MixResult(
        clusters=ranked, pareto=front, problem=prob, curves=prep.curves,
        excluded=excluded, relaxed_counts=sol.relaxed_counts, exhaustive_agrees=agrees,
        seconds={**prep.seconds, "solve": t3 - t2, "exhaustive_check": t4 - t3,
                 "exact": time.perf_counter() - t4})


def chip_mix(params, workload, scenario, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
             check_exhaustive: bool = True, hetero: bool = True,
             progress: bool = False) -> MixResult:
    """The best clusters (chip counts per type + plans) for a scenario.

    See the module docstring for the method and the cost, power and regime
    conventions. ``workload`` overrides the scenario's model when not None.

    Args:
      params: ``CostParams``.
      workload: ``TransformerConfig`` or None (the scenario's model).
      scenario: a :class:`jaxcost.policy.scenario.Scenario`.
      check_exhaustive: also solve the integer problem by enumeration when the grid
        product is at most ``EXHAUSTIVE_MAX_POINTS`` and report agreement.
      hetero: evaluate the final mixed clusters with ``predict_step_time_hetero``
        (data-parallel groups); otherwise keep the η surrogate.

    Raises:
      InfeasibleError: no cluster satisfies the limits; names the binding one.
    """
    t0 = time.perf_counter()
    w = scenario.model if workload is None else workload
    terms = _regime_terms(scenario.candidates, scenario.regime, scenario.allow_licensed)
    prep = _prepare(params, w, scenario, terms, all_types=False, chunk_size=chunk_size,
                    progress=progress)
    res = _solve_prepared(params, w, scenario, prep, terms,
                          check_exhaustive=check_exhaustive,
                          hetero=(_Hetero(params, w, scenario.search.plan_options(),
                                          scenario.search.max_plans)
                                  if hetero else None))
    res.seconds["total"] = time.perf_counter() - t0
    return res


# ==================================================================== sensitivity


def _relaxed_at_optimum(res: MixResult):
    """Relaxed optimum near the best integer cluster: (raw counts, active mask)."""
    prob = res.problem
    T = prob.num_types
    best = res.clusters[0]
    n0 = np.ones(T)
    act = np.zeros(T)
    for i, k in enumerate(prob.keys):
        if prob.allowed[i] and np.any(prob.tput[i] > 0):
            act[i] = 1.0
            n0[i] = float(best.counts.get(k, prob.node[i]))
    n = _relax(prob, n0[None], act[None], 300)[0]
    x = np.maximum(n / prob.node, 1e-6)
    raw = np.where(x > 30, x, np.log(np.expm1(np.minimum(x, 30))))
    return raw, act


def policy_sensitivity(params, workload, scenario, *, result: MixResult | None = None,
                       temperature: float = 0.05) -> dict[str, dict[str, float]]:
    """d(optimal time-to-train or capex)/d(threshold) for every regime threshold.

    Envelope theorem on the relaxed problem: at the relaxed optimum n* (re-solved from
    the best integer cluster, every allowed type active), the derivative of the
    optimal value with respect to a threshold θ is the partial derivative of the
    relaxed objective, which depends on θ only through the smooth allowed fractions
    ``frac_i(θ)`` (``export_control.smooth_consequence_probs`` at ``temperature``):
    dJ*/dθ = Σ_i ∂J/∂frac_i · ∂frac_i/∂θ. J is log time (or log capex), so the
    returned derivative is ``value · dJ*/dθ``.

    Only chips that sit within a few ``temperature`` (relative) of a threshold have
    non-negligible derivatives: a local sensitivity, see :func:`threshold_sweep` for
    the discrete effect of moving a threshold far.

    Returns:
      ``{threshold leaf name: {"value": θ, "d_opt_d_threshold": ..., "elasticity":
      θ/opt · d_opt/dθ}}``; the optimum is in seconds (time) or USD (cost).
    """
    from jaxcost.policy import export_control as ec

    res = (chip_mix(params, workload, scenario, check_exhaustive=False)
           if result is None else result)
    prob = res.problem
    regime = ec.load_regime(scenario.regime)
    th0 = ec.regime_thresholds(regime)
    raw, act = _relaxed_at_optimum(res)
    d = _relax_data(prob)
    cands = scenario.candidates

    def fracs(th):
        out = []
        for c in cands:
            if c.owned:
                out.append(jnp.asarray(1.0))
            else:
                out.append(jnp.asarray(_smooth_frac(ec, c.chip, regime,
                                                    scenario.allow_licensed, th,
                                                    temperature)))
        return jnp.stack(out)

    def value(th):
        return _relaxed_loss(jnp.asarray(raw), fracs(th), jnp.asarray(act), d,
                             jnp.asarray(1e4))

    grads = jax.grad(value)(th0)
    opt = res.clusters[0].time_to_train_s if prob.objective == "time" \
        else res.clusters[0].capex_usd
    out = {}
    for name, g in grads.values.items():
        theta = float(th0.values[name])
        dv = opt * float(g)
        out[name] = {"value": theta, "d_opt_d_threshold": dv,
                     "elasticity": theta / opt * dv if opt else math.nan}
    return out


def threshold_sweep(params, workload, scenario, threshold_name: str,
                    values: Sequence[float], *, chunk_size: int = DEFAULT_CHUNK_SIZE
                    ) -> list[MixResult | None]:
    """Re-optimise exactly at each value of one regime threshold.

    The chips' classification at the moved threshold is the most probable
    consequence of the smooth classification at temperature 1e-4 (which equals the
    hard classification away from the threshold). Throughput curves are computed once
    for every candidate (the regime does not change them); each value re-solves the
    integer problem.

    Returns:
      One :class:`MixResult` per value (None where the problem is infeasible).

    Raises:
      ScenarioError: unknown threshold name (the message lists the known ones).
    """
    from jaxcost.policy import export_control as ec

    w = scenario.model if workload is None else workload
    regime = ec.load_regime(scenario.regime)
    th0 = ec.regime_thresholds(regime)
    if threshold_name not in th0.values:
        raise ScenarioError(f"unknown threshold '{threshold_name}'; known: "
                            f"{', '.join(sorted(th0.values))}", column="threshold")
    terms0 = _regime_terms(scenario.candidates, scenario.regime, scenario.allow_licensed)
    prep = _prepare(params, w, scenario, terms0, all_types=True, chunk_size=chunk_size,
                    progress=False)
    hetero = _Hetero(params, w, scenario.search.plan_options(),
                     scenario.search.max_plans)
    out: list[MixResult | None] = []
    for v in values:
        th = th0.replace(values={**th0.values, threshold_name: jnp.asarray(float(v))})
        terms = _regime_terms(scenario.candidates, scenario.regime,
                              scenario.allow_licensed, thresholds=th)
        try:
            out.append(_solve_prepared(params, w, scenario, prep, terms,
                                       check_exhaustive=False, hetero=hetero))
        except InfeasibleError:
            out.append(None)
    return out
