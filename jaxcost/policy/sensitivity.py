"""The regime's thresholds and the optimal cluster: margins, sweeps, value functions.

A regime is a step function of its thresholds: a chip's class changes only where a
threshold crosses one of the chip's rule quantities (TPP, performance density,
bandwidths), and between two such crossings the optimal cluster cannot change. So the
honest tools are exact re-optimisation and the distances of the chips to the
thresholds:

* :func:`threshold_margins`: every numeric threshold a chip is compared with, the
  chip's quantity, the relative margin (q − θ)/θ, whether the threshold decides the
  rule for that chip, and the chip's class once the threshold alone is moved past it;
* :func:`threshold_breakpoints`: where a threshold's value function can step (the
  candidates' quantities compared with it);
* :func:`threshold_sweep`: exact re-optimisation at each value of one threshold;
* :func:`threshold_curves`: the throughput curves those re-optimisations share;
* :func:`threshold_value_function`: time-to-train and the optimum cluster as a
  function of one threshold (or of several moved by a common factor), evaluated once
  between consecutive breakpoints, with the steps marked.

:func:`policy_sensitivity` (the envelope derivative of the *relaxed* optimum with
respect to the thresholds through the smooth classification) is kept for reproducing
one measurement and is not part of the package's public API: its result depends on the
smoothing temperature. On experiment 05's 2023-10 scenario (Llama-2-70B, 300 MUSD,
20 MW; shipped calibration) the elasticity of the optimal time with respect to the
TPP threshold of rule 1 is −1e-225 at temperature 0.02, −7e-215 at 0.05 (numerical
zeros), −0.0053 at 0.1 and −0.075 at 0.2 (the H20 and the L20, 51 % and 60 % below
that threshold, get a smooth probability of being prohibited that grows with the
temperature); on the 2025-04 scenario every value
is below 1e-77 at all four. A quantity that changes by 200 orders of magnitude with an
arbitrary constant is not an answer; experiment 05 prints the table.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.errors import InfeasibleError, ScenarioError
from jaxcost.model.hardware import ChipSpec
from jaxcost.policy import export_control as ec
from jaxcost.policy import expr
from jaxcost.policy.hetero import MixedClusterEvaluator
from jaxcost.policy.mix import (
    MixResult,
    PreparedCurves,
    chip_mix,
    prepare_curves,
    regime_terms,
    smooth_obtainable_frac,
    solve_prepared,
)
from jaxcost.policy.mix_solver import relax, relax_data, relaxed_loss
from jaxcost.search.plans import DEFAULT_CHUNK_SIZE

__all__ = [
    "ThresholdMargin",
    "ThresholdPoint",
    "policy_sensitivity",
    "threshold_breakpoints",
    "threshold_curves",
    "threshold_margins",
    "threshold_sweep",
    "threshold_value_function",
]

#: Temperature of the smooth classification used as a hard one at moved thresholds
#: (relative margins above ~1e-5 are decided exactly).
_HARD_TEMPERATURE = 1e-6
#: Relative distance past the chip's quantity to which a threshold is moved when
#: asking what the chip's class would be.
_PAST = 1e-3


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


def policy_sensitivity(
    params,
    workload,
    scenario,
    *,
    result: MixResult | None = None,
    temperature: float = 0.05,
) -> dict[str, dict[str, float]]:
    """d(optimal time-to-train or capex)/d(threshold) for every regime threshold.

    Envelope theorem on the relaxed problem: at the relaxed optimum n* (re-solved from
    the best integer cluster, every allowed type active), the derivative of the
    optimal value with respect to a threshold θ is the partial derivative of the
    relaxed objective, which depends on θ only through the smooth allowed fractions
    ``frac_i(θ)`` (``export_control.smooth_consequence_probs`` at ``temperature``):
    dJ*/dθ = Σ_i ∂J/∂frac_i · ∂frac_i/∂θ. J is log time (or log capex), so the
    returned derivative is ``value · dJ*/dθ``.

    Not temperature-stable (see the module docstring for the measured values): only
    chips within a few ``temperature`` (relative) of a threshold contribute, and how
    much they contribute is set by the temperature, not by the regime. Use
    :func:`threshold_value_function` for the effect of moving a threshold.

    Returns:
      ``{threshold leaf name: {"value": θ, "d_opt_d_threshold": ..., "elasticity":
      θ/opt · d_opt/dθ}}``; the optimum is in seconds (time) or USD (cost).
    """
    res = (
        chip_mix(params, workload, scenario, check_exhaustive=False)
        if result is None
        else result
    )
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
                out.append(
                    jnp.asarray(
                        smooth_obtainable_frac(
                            c.chip, regime, scenario.allow_licensed, th, temperature
                        )
                    )
                )
        return jnp.stack(out)

    def value(th):
        return relaxed_loss(
            jnp.asarray(raw), fracs(th), jnp.asarray(act), d, jnp.asarray(1e4)
        )

    grads = jax.grad(value)(th0)
    opt = (
        res.clusters[0].time_to_train_s
        if prob.objective == "time"
        else res.clusters[0].capex_usd
    )
    out = {}
    for name, g in grads.values.items():
        theta = float(th0.values[name])
        dv = opt * float(g)
        out[name] = {
            "value": theta,
            "d_opt_d_threshold": dv,
            "elasticity": theta / opt * dv if opt else math.nan,
        }
    return out


# ------------------------------------------------------------------ margins
@dataclasses.dataclass(frozen=True)
class ThresholdMargin:
    """One numeric threshold a chip's quantity is compared with in a regime's rule.

    Attributes:
      regime: id of the regime file holding the rule (the regime or one it refers to).
      rule: 1-based rule index in that file.
      leaf: the threshold's leaf name in ``regime_thresholds``
        (``"<id>/rule <i>/when/<k>"``).
      quantity: the compared quantity as written (e.g. ``"tpp"``,
        ``"mem_bw_gbs + io_bidir_gbs"``), in the rules' units.
      op: the comparison with the chip's quantity on the left (``q op θ``).
      chip_value: the chip's quantity q (NaN if unknown, e.g. no die area).
      threshold: θ.
      margin: (q − θ) / θ, relative distance of the chip above (> 0) or below the
        threshold.
      decides_rule: moving this threshold alone past q changes whether the rule's
        condition holds for the chip.
      class_now: the chip's class under the regime.
      class_if_moved: its class with this threshold alone moved just past q (to
        q·(1 ∓ 1e-3)); equal to ``class_now`` where another rule still catches it.
      when: the rule's condition text.
    """

    regime: str
    rule: int
    leaf: str
    quantity: str
    op: str
    chip_value: float
    threshold: float
    margin: float
    decides_rule: bool
    class_now: str
    class_if_moved: str
    when: str


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _walk(node) -> Iterator:
    """Every node of a condition tree (public node classes of :mod:`expr`)."""
    yield node
    if isinstance(node, expr.Compare | expr.BoolOp):
        kids = list(node.operands)
    elif isinstance(node, expr.Not | expr.Unary):
        kids = [node.operand]
    elif isinstance(node, expr.BinOp | expr.In):
        kids = [node.left, node.right]
    elif isinstance(node, expr.ListExpr):
        kids = list(node.items)
    else:
        kids = []
    for k in kids:
        yield from _walk(k)


def _text(node) -> str:
    if isinstance(node, expr.Name):
        return node.name
    if isinstance(node, expr.Const):
        return f"{node.value:g}" if isinstance(node.value, float) else repr(node.value)
    if isinstance(node, expr.BinOp):
        return f"{_text(node.left)} {node.op} {_text(node.right)}"
    if isinstance(node, expr.Unary):
        return f"{node.op}{_text(node.operand)}"
    return "(expression)"


def _env(chip: ChipSpec) -> dict:
    """Condition variables of a concrete chip (rule units; NaN = unknown)."""
    q = ec.chip_quantities(chip)
    env = {f.name: getattr(q, f.name) for f in dataclasses.fields(q)}
    for k in ("tpp", "pd", "io_bidir_gbs", "mem_bw_gbs", "year"):
        env[k] = float(env[k])
    return env


def _class(chip: ChipSpec, regime: ec.Regime, thresholds=None) -> str:
    """Hard class; at moved thresholds the smooth one at a vanishing temperature."""
    if thresholds is None:
        return str(ec.classify(chip, regime).consequence.value)
    probs = ec.smooth_consequence_probs(
        chip, regime, thresholds=thresholds, temperature=_HARD_TEMPERATURE
    )
    return max(probs, key=lambda k: float(probs[k]))


def _comparisons(regime: ec.Regime):
    """(regime, rule, compare node, index of the threshold operand) of every leaf."""
    for r in [regime] + [regime.deps[k] for k in sorted(regime.deps)]:
        for rule in r.rules:
            for node in _walk(rule.when):
                if not isinstance(node, expr.Compare):
                    continue
                for i, o in enumerate(node.operands):
                    if isinstance(o, expr.Const) and o.leaf is not None:
                        yield r, rule, node, i


def threshold_margins(chip: ChipSpec, regime: ec.Regime | str) -> list[ThresholdMargin]:
    """Relative distance of the chip to every numeric threshold of a regime.

    For each threshold θ (a leaf of ``regime_thresholds``, in the regime and every
    regime it refers to) and each numeric quantity q it is compared with (its
    neighbours in a chained comparison such as ``2400 <= tpp < 4800``), the margin
    (q − θ)/θ, whether θ decides that rule for this chip, and the chip's class if θ
    alone moved past q.

    Args:
      chip: the chip (concrete leaves).
      regime: a ``Regime`` or its id.

    Returns:
      One :class:`ThresholdMargin` per (threshold, compared quantity), in file order.

    Example: the A800 under 2023-10 sits 4.0 % above the TPP threshold 4800 (rule 1)
    and 2.1 % above the performance-density threshold 5.92 (rule 2); moving either
    alone leaves it prohibited by the other.
    """
    reg = ec.load_regime(regime) if isinstance(regime, str) else regime
    env = _env(chip)
    th0 = ec.regime_thresholds(reg)
    now = _class(chip, reg)
    out = []
    for r, rule, node, i in _comparisons(reg):
        const = node.operands[i]
        theta = float(const.value)
        sides = []
        if i > 0:
            sides.append((node.operands[i - 1], node.ops[i - 1]))
        if i + 1 < len(node.operands):
            sides.append((node.operands[i + 1], _FLIP[node.ops[i]]))
        for other, op in sides:
            if isinstance(other, expr.Const):
                continue
            q = expr.evaluate(other, env)
            q = math.nan if q is None else float(q)
            margin = (q - theta) / theta if theta else math.nan
            decides, moved = False, now
            if math.isfinite(q) and q > 0:
                past = q * (1 + _PAST) if q >= theta else q * (1 - _PAST)
                cond = copy.deepcopy(rule.when)
                for n2 in _walk(cond):
                    if isinstance(n2, expr.Const) and n2.leaf == const.leaf:
                        n2.value = past
                decides = expr.evaluate(cond, env) != expr.evaluate(rule.when, env)
                th = th0.replace(values={**th0.values, const.leaf: jnp.asarray(past)})
                moved = _class(chip, reg, th)
            out.append(
                ThresholdMargin(
                    regime=r.id,
                    rule=rule.index,
                    leaf=const.leaf,
                    quantity=_text(other),
                    op=op,
                    chip_value=q,
                    threshold=theta,
                    margin=margin,
                    decides_rule=bool(decides),
                    class_now=now,
                    class_if_moved=moved,
                    when=rule.when_text,
                )
            )
    return out


def threshold_breakpoints(
    chips: Sequence[ChipSpec], regime: ec.Regime | str, threshold_name: str
) -> np.ndarray:
    """Values of one threshold at which a chip's rule outcome can change.

    These are the chips' quantities compared with it; between two consecutive
    breakpoints every chip's class, and so the optimal cluster, is constant.

    Returns:
      Sorted unique finite values, in the threshold's units.

    Raises:
      ScenarioError: unknown threshold name.
    """
    reg = ec.load_regime(regime) if isinstance(regime, str) else regime
    _check_names(reg, (threshold_name,))
    vals = {
        m.chip_value
        for c in chips
        for m in threshold_margins(c, reg)
        if m.leaf == threshold_name and math.isfinite(m.chip_value)
    }
    return np.asarray(sorted(vals), np.float64)


def _check_names(regime: ec.Regime, names: Sequence[str]) -> dict:
    th0 = ec.regime_thresholds(regime)
    for name in names:
        if name not in th0.values:
            raise ScenarioError(
                f"unknown threshold '{name}'; known: {', '.join(sorted(th0.values))}",
                column="threshold",
            )
    return th0.values


# ------------------------------------------------------------------- sweeps
def threshold_curves(
    params, workload, scenario, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> PreparedCurves:
    """Throughput curves of every candidate of a scenario, whatever its class.

    The regime does not change them, so one set serves every threshold sweep and value
    function of the scenario (pass it as ``prepared``).
    """
    w = scenario.model if workload is None else workload
    terms0 = regime_terms(scenario.candidates, scenario.regime, scenario.allow_licensed)
    return prepare_curves(
        params,
        w,
        scenario,
        terms0,
        all_types=True,
        chunk_size=chunk_size,
        progress=False,
    )


def _solve_at(
    params,
    w,
    scenario,
    moves: Sequence[dict[str, float]],
    chunk_size: int,
    prepared: PreparedCurves | None = None,
) -> list[tuple[MixResult | None, list]]:
    """Re-optimise exactly with the thresholds of each ``moves`` entry set.

    Throughput curves are computed once for every candidate (the regime does not
    change them) unless ``prepared`` is given; each entry re-solves the integer
    problem. Returns (result or None where infeasible, the regime terms) per entry.
    """
    regime = ec.load_regime(scenario.regime)
    th0 = ec.regime_thresholds(regime)
    prep = (
        threshold_curves(params, w, scenario, chunk_size=chunk_size)
        if prepared is None
        else prepared
    )
    hetero = MixedClusterEvaluator(
        params, w, scenario.search.plan_space(), scenario.search.max_plans
    )
    out = []
    for move in moves:
        th = th0.replace(
            values={**th0.values, **{k: jnp.asarray(float(v)) for k, v in move.items()}}
        )
        terms = regime_terms(
            scenario.candidates, scenario.regime, scenario.allow_licensed, thresholds=th
        )
        try:
            res = solve_prepared(
                params, w, scenario, prep, terms, check_exhaustive=False, hetero=hetero
            )
        except InfeasibleError:
            res = None
        out.append((res, terms))
    return out


def threshold_sweep(
    params,
    workload,
    scenario,
    threshold_name: str,
    values: Sequence[float],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    prepared: PreparedCurves | None = None,
) -> list[MixResult | None]:
    """Re-optimise exactly at each value of one regime threshold.

    The chips' classification at the moved threshold is the most probable
    consequence of the smooth classification at temperature 1e-4 (which equals the
    hard classification away from the threshold). Throughput curves are computed once
    for every candidate (the regime does not change them; or pass ``prepared`` from
    :func:`threshold_curves`); each value re-solves the integer problem.

    Returns:
      One :class:`MixResult` per value (None where the problem is infeasible).

    Raises:
      ScenarioError: unknown threshold name (the message lists the known ones).
    """
    w = scenario.model if workload is None else workload
    _check_names(ec.load_regime(scenario.regime), (threshold_name,))
    return [
        r
        for r, _ in _solve_at(
            params,
            w,
            scenario,
            [{threshold_name: v} for v in values],
            chunk_size,
            prepared,
        )
    ]


@dataclasses.dataclass(frozen=True)
class ThresholdPoint:
    """The optimum at one point of a threshold's value function.

    Attributes:
      x: the coordinate: the threshold's value (one threshold), or the common factor
        f applied to every moved threshold (several).
      thresholds: the moved thresholds' values at this point.
      result: the re-optimised :class:`MixResult` (None where infeasible).
      time_to_train_s: optimal time-to-train, s (inf where infeasible).
      cluster: the optimal cluster's label ("infeasible" where none).
      classes: candidate key -> class the optimiser sees ("allowed", "notify",
        "license", "prohibited", "indeterminate", "owned").
      step: the optimal cluster or a class differs from the previous point.
      changes: what changed, e.g. ``("A800-SXM: prohibited -> notify",
        "cluster: ...")``.
      step_at: breakpoints between the previous point and this one (where the step
        lies; its exact location is one of them).
    """

    x: float
    thresholds: dict[str, float]
    result: MixResult | None
    time_to_train_s: float
    cluster: str
    classes: dict[str, str]
    step: bool
    changes: tuple[str, ...]
    step_at: tuple[float, ...]


def threshold_value_function(
    params,
    workload,
    scenario,
    threshold: str | Sequence[str],
    values: Sequence[float] | None = None,
    *,
    span: tuple[float, float] = (0.5, 2.0),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    prepared: PreparedCurves | None = None,
) -> list[ThresholdPoint]:
    """Optimal time-to-train and cluster as a function of a threshold, steps marked.

    One threshold (a leaf name): the coordinate is its value. Several (a sequence of
    names): they move together, θ_i = f·θ_i0, and the coordinate is f. The value
    function is a step function whose steps can only lie at breakpoints
    (:func:`threshold_breakpoints`, in coordinate units q/θ_i0 for several), so by
    default it is evaluated exactly once per interval between consecutive breakpoints
    within ``span`` × the file value (at the interval's midpoint, at the file value
    in its own interval, and at both ends of the span).

    Args:
      params: ``CostParams``.
      workload: model, or None for the scenario's.
      scenario: the scenario (its regime, candidates and limits).
      threshold: a leaf name of ``regime_thresholds``, or several.
      values: coordinates to evaluate instead of the automatic ones.
      span: (low, high) multiples of the file value (1 for several) covered by the
        automatic coordinates.
      chunk_size: configurations per compiled call of the curve search.
      prepared: the scenario's :func:`threshold_curves` (computed when None).

    Returns:
      :class:`ThresholdPoint` per coordinate, ascending.

    Raises:
      ScenarioError: unknown threshold name.
    """
    w = scenario.model if workload is None else workload
    regime = ec.load_regime(scenario.regime)
    names = (threshold,) if isinstance(threshold, str) else tuple(threshold)
    th = _check_names(regime, names)
    base = {n: float(th[n]) for n in names}
    single = len(names) == 1 and isinstance(threshold, str)
    x0 = base[names[0]] if single else 1.0
    chips = [c.chip for c in scenario.candidates if not c.owned]
    bps = sorted(
        {
            float(b) / (1.0 if single else base[n])
            for n in names
            for b in threshold_breakpoints(chips, regime, n)
        }
    )
    if values is None:
        lo, hi = span[0] * x0, span[1] * x0
        inner = [b for b in bps if lo < b < hi]
        edges = [lo] + inner + [hi]
        xs = {lo, hi, x0}
        for a, b in zip(edges, edges[1:], strict=False):
            if not a <= x0 <= b:
                xs.add(0.5 * (a + b))
        values = sorted(xs)
    else:
        values = sorted(float(v) for v in values)

    def move(x):
        return {n: (x if single else x * base[n]) for n in names}

    solved = _solve_at(
        params, w, scenario, [move(x) for x in values], chunk_size, prepared
    )
    keys = [
        f"{c.chip.key}(owned)" if c.owned else c.chip.key for c in scenario.candidates
    ]
    out: list[ThresholdPoint] = []
    prev = None
    for x, (res, terms) in zip(values, solved, strict=True):
        classes = {k: (t.flag or "allowed") for k, t in zip(keys, terms, strict=True)}
        if res is None:
            ttt, label = math.inf, "infeasible"
        else:
            ttt, label = res.clusters[0].time_to_train_s, res.clusters[0].label
        changes: list[str] = []
        between: tuple[float, ...] = ()
        if prev is not None:
            changes = [
                f"{k}: {prev.classes[k]} -> {classes[k]}"
                for k in keys
                if prev.classes[k] != classes[k]
            ]
            if prev.cluster != label:
                changes.append(f"cluster: {prev.cluster} -> {label}")
            between = tuple(b for b in bps if prev.x < b <= x)
        out.append(
            ThresholdPoint(
                x=x,
                thresholds=move(x),
                result=res,
                time_to_train_s=ttt,
                cluster=label,
                classes=classes,
                step=bool(changes),
                changes=tuple(changes),
                step_at=between if changes else (),
            )
        )
        prev = out[-1]
    return out
