"""The best clusters to buy for a scenario: chip mix, plans, cost, regime.

:func:`chip_mix` builds the count grids and throughput curves of every usable
candidate (:mod:`jaxcost.search.curves`), states the integer problem
(:func:`mix_problem`) and solves it (:mod:`jaxcost.policy.mix_solver`); the final
mixed clusters are evaluated exactly (:mod:`jaxcost.policy.hetero`) and re-ranked.

Mixed clusters. Groups of different chip types are combined as data-parallel groups:
each group runs its own best plan, and the cluster's throughput is the largest
group's throughput plus ``cross_type_efficiency`` (η, scenario ``[search]``, default
0.9) times the others'. η is a *parameter* (not fitted): it stands for the load
imbalance and the slower cross-type gradient all-reduce over the scale-out network.
The search ranks clusters with that surrogate; the final clusters (the ranked pool and
the Pareto front) are then evaluated exactly with the heterogeneous data-parallel
model, each group re-planned for its balanced share of the global batch.

Cost. ``capex = Σ count · price · (1 + tariff_frac + revenue_share_frac)``, with the
tariff and revenue share of the chip's classification under the regime. The revenue
share (remitted by the vendor to the exporting government) is assumed to be passed
through in full to the buyer's price; owned chips (stockpiles) cost their given price
(default 0) and carry neither. Power is ``Σ count · tdp_w · pue``.

Regime. Chips whose classification is ``prohibited`` get count 0; ``license`` chips
are allowed only when the scenario says ``allow_licensed = true`` and are flagged;
``notify`` chips are allowed and flagged; owned chips are exempt. The relaxed problem
multiplies each type's useful count by the regime's smooth allowed fraction.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxcost.errors import InfeasibleError, ScenarioError
from jaxcost.policy import export_control as ec
from jaxcost.policy.hetero import MixedClusterEvaluator
from jaxcost.policy.mix_solver import (
    MixProblem,
    evaluate_counts,
    exhaustive_mix,
    rank_order,
    solve_mix,
)
from jaxcost.search import sweep
from jaxcost.search.curves import ThroughputCurve, count_grid, throughput_curves
from jaxcost.search.plans import DEFAULT_CHUNK_SIZE
from jaxcost.search.space import PlanSpace, enumerate_plans

__all__ = [
    "ClusterResult",
    "MixResult",
    "PreparedCurves",
    "RegimeTerm",
    "chip_mix",
    "mix_problem",
    "pareto_front",
    "prepare_curves",
    "regime_terms",
    "smooth_obtainable_frac",
    "solve_prepared",
]


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


def smooth_obtainable_frac(
    chip, regime, allow_licensed: bool, thresholds=None, temperature: float = 0.05
):
    """Smooth allowed fraction: 1 − P(prohibited) − P(indeterminate)
    − P(license) (the last only when licensed chips are not allowed)."""
    probs = ec.smooth_consequence_probs(
        chip, regime, thresholds=thresholds, temperature=temperature
    )
    ok = sum(probs.get(k, 0.0) for k in _OBTAINABLE)
    if allow_licensed:
        ok = ok + probs.get("license", 0.0)
    return ok


@dataclasses.dataclass(frozen=True)
class RegimeTerm:
    allowed: bool
    frac: float
    price_factor: float
    flag: str
    why: str


def regime_terms(
    candidates,
    regime_id: str,
    allow_licensed: bool,
    thresholds=None,
    temperature: float | None = None,
) -> list[RegimeTerm]:
    """Per candidate: hard outcome, smooth allowed fraction, price factor, flag.

    With ``thresholds`` and a small ``temperature`` the hard outcome is the most
    probable consequence of the smooth classification at those thresholds (used by
    :func:`threshold_sweep`); otherwise it is ``export_control.classify``.
    """
    regime = ec.load_regime(regime_id)
    out = []
    for cand in candidates:
        if cand.owned:
            out.append(RegimeTerm(True, 1.0, 1.0, "owned", ""))
            continue
        frac = float(
            smooth_obtainable_frac(cand.chip, regime, allow_licensed, thresholds)
        )
        if thresholds is None:
            cls = ec.classify(cand.chip, regime)
            cons = _consequence_str(cls.consequence)
            factor = 1.0 + float(cls.tariff_frac) + float(cls.revenue_share_frac)
        else:
            t = 1e-4 if temperature is None else temperature
            probs = ec.smooth_consequence_probs(
                cand.chip, regime, thresholds=thresholds, temperature=t
            )
            cons = max(probs, key=lambda k: float(probs[k]))
            factor = 1.0 + float(
                ec.smooth_license_cost_frac(
                    cand.chip, regime, thresholds=thresholds, temperature=t
                )
            )
        if cons == "prohibited":
            out.append(
                RegimeTerm(
                    False,
                    frac,
                    factor,
                    "prohibited",
                    f"prohibited under regime {regime_id}",
                )
            )
        elif cons == "indeterminate":
            out.append(
                RegimeTerm(
                    False,
                    frac,
                    factor,
                    "indeterminate",
                    f"indeterminate under regime {regime_id} (a quantity the "
                    "rules need is unknown for this chip)",
                )
            )
        elif cons == "license":
            if allow_licensed:
                out.append(RegimeTerm(True, frac, factor, "license", ""))
            else:
                out.append(
                    RegimeTerm(
                        False,
                        frac,
                        factor,
                        "license",
                        f"needs a licence under regime {regime_id} "
                        "(allow_licensed = false)",
                    )
                )
        elif cons == "notify":
            out.append(RegimeTerm(True, frac, factor, "notify", ""))
        else:
            out.append(RegimeTerm(True, frac, factor, "", ""))
    return out


def mix_problem(
    scenario, curves: Sequence[ThroughputCurve], regime_terms
) -> MixProblem:
    """Assemble the integer problem of a scenario from its curves and regime terms."""
    cands = scenario.candidates
    grids, tput, plans = [], [], []
    for cv in curves:
        grids.append(np.concatenate([[0], cv.counts]).astype(np.int64))
        tput.append(np.concatenate([[0.0], cv.tokens_per_s]))
        plans.append(("",) + tuple(cv.plans))
    price = np.asarray(
        [
            c.price_usd * rt.price_factor
            for c, rt in zip(cands, regime_terms, strict=True)
        ]
    )
    tpp = _tpp_of([c.chip for c in cands])
    return MixProblem(
        keys=tuple(_cand_key(c) for c in cands),
        grids=tuple(grids),
        tput=tuple(tput),
        plans=tuple(plans),
        unit_cost_usd=price,
        unit_power_w=np.asarray([float(c.chip.tdp_w) * scenario.pue for c in cands]),
        unit_tpp=np.asarray(
            [0.0 if c.owned else t for c, t in zip(cands, tpp, strict=True)]
        ),
        stock=np.asarray([c.stock for c in cands], np.float64),
        allowed=np.asarray([rt.allowed for rt in regime_terms], bool),
        allowed_frac=np.asarray([rt.frac for rt in regime_terms], np.float64),
        flags=tuple(rt.flag for rt in regime_terms),
        node=np.asarray(
            [max(int(float(c.chip.scaleup_domain_size)), 1) for c in cands]
        ),
        tokens=scenario.tokens,
        objective=scenario.objective,
        mixed=scenario.mixed,
        budget_usd=scenario.budget_usd,
        power_w=scenario.power_w,
        max_chips=scenario.max_chips,
        tpp_cap=scenario.tpp_cap,
        max_time_to_train_s=scenario.max_time_to_train_s,
        cross_type_efficiency=scenario.search.cross_type_efficiency,
    )


def _cand_key(c) -> str:
    return f"{c.chip.key}(owned)" if c.owned else c.chip.key


def _tpp_of(chips) -> np.ndarray:
    return np.asarray([float(ec.tpp(c)) for c in chips], np.float64)


def _cluster_result(prob: MixProblem, idx: np.ndarray) -> ClusterResult:
    ev = evaluate_counts(prob, idx[None])
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
        counts=counts,
        plans=plans,
        group_tokens_per_s=group,
        tokens_per_s=tok,
        surrogate_tokens_per_s=tok,
        time_to_train_s=float(ev["time_s"][0]),
        capex_usd=float(ev["cost_usd"][0]),
        power_w=float(ev["power_w"][0]),
        tpp=float(ev["tpp"][0]),
        flags=tuple(flags),
        throughput_model="homogeneous" if len(counts) == 1 else "surrogate",
    )


def _grid_max(scenario, cand, factor: float) -> float:
    """Most chips of a candidate any feasible cluster can hold (for its count grid)."""
    caps = [cand.stock, scenario.max_chips]
    price = cand.price_usd * factor
    if math.isfinite(scenario.budget_usd) and price > 0:
        caps.append(scenario.budget_usd / price)
    if math.isfinite(scenario.power_w):
        caps.append(scenario.power_w / (float(cand.chip.tdp_w) * scenario.pue))
    return float(min(caps))


def _smallest_fitting(
    w, chip, node: int, space: PlanSpace, max_count: int = 1 << 20
) -> int | None:
    """Smallest count (node × 2^k) with a valid plan that fits in memory (numpy
    only)."""
    n = node
    while n <= max_count:
        pl = enumerate_plans(w, n, chip, space)
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
        n = _smallest_fitting(
            w, chips[prob.keys[i]], int(prob.node[i]), scenario.search.plan_space()
        )
        if n is None:
            msgs.append(
                (
                    math.inf,
                    f"the model fits in memory on no cluster of "
                    f"{prob.keys[i]} up to {1 << 20} chips",
                )
            )
            continue
        smallest = f"{n} x {prob.keys[i]}"
        cost = n * prob.unit_cost_usd[i]
        power = n * prob.unit_power_w[i]
        tpp = n * prob.unit_tpp[i]
        checks = [
            (
                cost,
                scenario.budget_usd,
                f"budget_usd={scenario.budget_usd:.3g} buys fewer chips than the "
                "smallest "
                f"cluster that fits the model in memory ({smallest} = {cost:.3g} USD)",
            ),
            (
                power,
                scenario.power_w,
                f"power_w={scenario.power_w:.3g} powers fewer chips than the smallest "
                f"cluster that fits the model in memory ({smallest} = {power:.3g} W)",
            ),
            (
                n,
                prob.stock[i],
                f"stock of {prob.keys[i]} ({prob.stock[i]:.0f}) is below the smallest "
                f"cluster that fits the model in memory ({smallest})",
            ),
            (
                n,
                scenario.max_chips,
                f"max_chips={scenario.max_chips:.0f} is below the smallest cluster "
                "that "
                f"fits the model in memory ({smallest})",
            ),
            (
                tpp,
                scenario.tpp_cap,
                f"tpp_cap={scenario.tpp_cap:.3g} is below the TPP of the smallest "
                "cluster "
                f"that fits the model in memory ({smallest} = {tpp:.3g})",
            ),
        ]
        broken = [(use / max(lim, 1e-30), m) for use, lim, m in checks if use > lim]
        if broken:
            msgs.append(min(broken))
        elif np.any(prob.tput[i] > 0):
            best_t = prob.tokens / float(np.max(prob.tput[i]))
            msgs.append(
                (
                    best_t / prob.max_time_to_train_s,
                    f"max_time_to_train_s={prob.max_time_to_train_s:.3g} is "
                    f"shorter than the fastest {prob.keys[i]} cluster the limits "
                    f"allow ({best_t:.3g} s)",
                )
            )
        else:
            msgs.append(
                (
                    math.inf,
                    f"no grid count of {prob.keys[i]} within the limits "
                    "has a valid plan (batch divisibility)",
                )
            )
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


def _exact(
    prob: MixProblem,
    r: ClusterResult,
    hetero: MixedClusterEvaluator | None,
    chips: dict,
) -> ClusterResult:
    if len(r.counts) < 2 or hetero is None:
        return r
    tok, plans = hetero.evaluate(chips, r.counts, r.plans)
    t = prob.tokens / tok if tok > 0 else math.inf
    return dataclasses.replace(
        r,
        tokens_per_s=tok,
        time_to_train_s=t,
        plans=plans,
        throughput_model="hetero-data",
    )


def _rank_key(prob: MixProblem, r: ClusterResult) -> tuple[float, float]:
    if prob.objective == "time":
        return (r.time_to_train_s, r.capex_usd)
    return (r.capex_usd, r.time_to_train_s)


@dataclasses.dataclass(frozen=True)
class PreparedCurves:
    curves: list[ThroughputCurve]
    excluded_static: dict[str, str]
    seconds: dict[str, float]


def prepare_curves(
    params, w, scenario, terms, *, all_types: bool, chunk_size: int, progress: bool
) -> PreparedCurves:
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
        grids.append(
            count_grid(
                node,
                gmax,
                steps_per_octave=scenario.search.grid_steps_per_octave,
                extra=(gmax,),
            )
        )
    t1 = time.perf_counter()
    curves = throughput_curves(
        params,
        w,
        chips,
        grids,
        chunk_size=chunk_size,
        max_plans=scenario.search.max_plans,
        progress=progress,
        space=scenario.search.plan_space(),
    )
    return PreparedCurves(
        curves, excluded, {"grids": t1 - t0, "curves": time.perf_counter() - t1}
    )


def solve_prepared(
    params,
    w,
    scenario,
    prep: PreparedCurves,
    terms,
    *,
    check_exhaustive: bool,
    hetero: MixedClusterEvaluator | None,
) -> MixResult:
    t2 = time.perf_counter()
    prob = mix_problem(scenario, prep.curves, terms)
    excluded = dict(prep.excluded_static)
    for i, (cand, rt) in enumerate(zip(scenario.candidates, terms, strict=True)):
        if not rt.allowed:
            excluded.setdefault(_cand_key(cand), rt.why)
        cv = prep.curves[i]
        if prob.allowed[i] and cv.counts.size and not np.any(cv.tokens_per_s > 0):
            excluded.setdefault(
                prob.keys[i], f"no plan fits in memory up to {int(cv.counts[-1])} chips"
            )
    top = max(scenario.search.top, 1)
    sol = solve_mix(prob, top=3 * top, steps=scenario.search.relaxed_steps)
    t3 = time.perf_counter()
    if not sol.ranked:
        raise InfeasibleError(
            _infeasible_message(scenario, w, prob, excluded), file=scenario.path or None
        )
    agrees = None
    if check_exhaustive:
        try:
            ref = exhaustive_mix(prob, top=1)
        except ScenarioError:
            ref = None
        if ref is not None:
            a = evaluate_counts(prob, sol.ranked[0][None])["objective"][0]
            b = evaluate_counts(prob, ref[0][None])["objective"][0]
            agrees = bool(a <= b * (1 + 1e-9))
    t4 = time.perf_counter()
    chips = _chips_of(scenario, prob)
    ev = evaluate_counts(prob, sol.evaluated)
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
        evh = evaluate_counts(prob, idx)
        b = rank_order(evh)[0]
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
    ranked = [
        r for r in ranked if r.time_to_train_s <= prob.max_time_to_train_s * (1 + 1e-12)
    ]
    ranked = sorted(ranked, key=lambda r: _rank_key(prob, r))[:top]
    if not ranked:
        raise InfeasibleError(
            "max_time_to_train_s: no cluster meets the deadline "
            "once mixed clusters are evaluated exactly",
            file=scenario.path or None,
        )
    front = pareto_front([ex(r) for r in front] + ranked)
    return MixResult(
        clusters=ranked,
        pareto=front,
        problem=prob,
        curves=prep.curves,
        excluded=excluded,
        relaxed_counts=sol.relaxed_counts,
        exhaustive_agrees=agrees,
        seconds={
            **prep.seconds,
            "solve": t3 - t2,
            "exhaustive_check": t4 - t3,
            "exact": time.perf_counter() - t4,
        },
    )


def chip_mix(
    params,
    workload,
    scenario,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    check_exhaustive: bool = True,
    hetero: bool = True,
    replan_rounds: int = 2,
    progress: bool = False,
) -> MixResult:
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
      replan_rounds: rounds of re-planning each group of a mixed cluster for its
        batch share in the exact evaluation (0: keep the whole-batch plans).

    Raises:
      InfeasibleError: no cluster satisfies the limits; names the binding one.
    """
    t0 = time.perf_counter()
    w = scenario.model if workload is None else workload
    terms = regime_terms(scenario.candidates, scenario.regime, scenario.allow_licensed)
    prep = prepare_curves(
        params,
        w,
        scenario,
        terms,
        all_types=False,
        chunk_size=chunk_size,
        progress=progress,
    )
    res = solve_prepared(
        params,
        w,
        scenario,
        prep,
        terms,
        check_exhaustive=check_exhaustive,
        hetero=(
            MixedClusterEvaluator(
                params,
                w,
                scenario.search.plan_space(),
                scenario.search.max_plans,
                replan_rounds=replan_rounds,
            )
            if hetero
            else None
        ),
    )
    res.seconds["total"] = time.perf_counter() - t0
    return res
