"""Sensitivities of the optimal cluster to the regime's thresholds.

:func:`policy_sensitivity` differentiates the relaxed chip-mix optimum with respect
to each threshold (envelope theorem, smooth classification); :func:`threshold_sweep`
re-optimises exactly at each value of one threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.errors import InfeasibleError, ScenarioError
from jaxcost.policy import export_control as ec
from jaxcost.policy.hetero import MixedClusterEvaluator
from jaxcost.policy.mix import (
    MixResult,
    chip_mix,
    prepare_curves,
    regime_terms,
    smooth_obtainable_frac,
    solve_prepared,
)
from jaxcost.policy.mix_solver import relax, relax_data, relaxed_loss
from jaxcost.search.plans import DEFAULT_CHUNK_SIZE

__all__ = ["policy_sensitivity", "threshold_sweep"]


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
    n = relax(prob, n0[None], act[None], 300)[0]
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
    res = (chip_mix(params, workload, scenario, check_exhaustive=False)
           if result is None else result)
    prob = res.problem
    regime = ec.load_regime(scenario.regime)
    th0 = ec.regime_thresholds(regime)
    raw, act = _relaxed_at_optimum(res)
    d = relax_data(prob)
    cands = scenario.candidates

    def fracs(th):
        out = []
        for c in cands:
            if c.owned:
                out.append(jnp.asarray(1.0))
            else:
                out.append(jnp.asarray(smooth_obtainable_frac(c.chip, regime,
                                                    scenario.allow_licensed, th,
                                                    temperature)))
        return jnp.stack(out)

    def value(th):
        return relaxed_loss(jnp.asarray(raw), fracs(th), jnp.asarray(act), d,
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
    w = scenario.model if workload is None else workload
    regime = ec.load_regime(scenario.regime)
    th0 = ec.regime_thresholds(regime)
    if threshold_name not in th0.values:
        raise ScenarioError(f"unknown threshold '{threshold_name}'; known: "
                            f"{', '.join(sorted(th0.values))}", column="threshold")
    terms0 = regime_terms(scenario.candidates, scenario.regime, scenario.allow_licensed)
    prep = prepare_curves(params, w, scenario, terms0, all_types=True, chunk_size=chunk_size,
                    progress=False)
    hetero = MixedClusterEvaluator(params, w, scenario.search.plan_space(),
                     scenario.search.max_plans)
    out: list[MixResult | None] = []
    for v in values:
        th = th0.replace(values={**th0.values, threshold_name: jnp.asarray(float(v))})
        terms = regime_terms(scenario.candidates, scenario.regime,
                              scenario.allow_licensed, thresholds=th)
        try:
            out.append(solve_prepared(params, w, scenario, prep, terms,
                                       check_exhaustive=False, hetero=hetero))
        except InfeasibleError:
            out.append(None)
    return out
