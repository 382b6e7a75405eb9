"""Elasticities of time-to-train with respect to each chip specification.

Owns :func:`spec_elasticities`: for one homogeneous cluster (or the best cluster of a
homogeneous scenario) and one workload, the elasticity

    ε_s = ∂ log T / ∂ log s

of the time-to-train T with respect to every chip specification s that enters the cost
model (:data:`SPEC_NAMES`). For a fixed token budget, T = tokens · step / (B·T_seq), so
the elasticity of the time-to-train equals that of the step time.

Three estimates of each ε_s are computed and reported side by side:

* ``envelope``: ``jax.grad`` of log(step time) with respect to a vector of
  log-multipliers on the chip's leaves, at the optimal plan held fixed. By the envelope
  theorem this is the derivative of the optimal (plan re-optimised) log time wherever
  the optimal plan does not switch.
* ``fixed_plan_fd``: central difference of log(step time) over ``±log_step`` in
  log s with the plan held fixed (checks the derivative where the model has kinks:
  clipped ranks per domain, the ideal-time floor).
* ``reoptimised_fd``: the same central difference with the best plan re-searched on
  each side (the plan may switch; ``plan_switch`` and ``differs`` say where the
  re-optimised difference departs from the envelope by more than
  ``AGREE_RTOL`` · |ε| + ``AGREE_ATOL``).

How each specification enters (so what its elasticity can be):

* ``peak_flop_per_s_bf16``, ``peak_flop_per_s_fp8`` (the latter only for FP8 runs),
  ``hbm_bytes_per_s``, ``scaleup_bytes_per_s``, ``scaleout_bytes_per_s``: rates in the
  roofline and collective times; smooth, the envelope is exact.
* ``hbm_capacity_bytes``: only feasibility (which plans fit in memory). Its envelope
  elasticity is exactly 0; the re-optimised difference is non-zero only where a bigger
  (smaller) memory admits (removes) a better plan.
* ``scaleup_domain_size``: a count. With the plan fixed it is treated as the
  continuous leaf it is in the model, where it enters the ranks per scale-up domain of
  each collective, clip(domain / stride, 1, n); the pipeline's cross-domain indicator
  and the plan-search rule tp ≤ domain are steps (zero derivative). Its finite
  differences use a factor ``domain_factor`` (default 2: half and double the domain),
  not ``log_step``: a domain of 8.8 chips is not a machine.
* ``tdp_w``: not in the step time: exactly 0 at a fixed chip count. At a fixed power
  budget the chip count is N = P / (tdp · PUE), so d log T / d log tdp =
  −d log T / d log N; ``count_elasticity`` is that slope, re-optimised, between the
  best plans at N / ``count_factor`` and N · ``count_factor`` (counts must admit a
  plan: the default factor 2 keeps powers of two), and ``tdp_fixed_power`` is
  −``count_elasticity``.

No smoothing temperature of the export-control relaxation enters: the elasticities
are derivatives of the cost model itself.

Intervals: with an ``ensemble`` (``CostParams`` with ``(B,)`` leaves) every member
picks its own best plan among the point estimate's ``member_top_k`` best plans and its
envelope elasticities are taken there; the record holds the per-member values
(:meth:`SpecElasticity.interval` gives the median and the 5–95 % range).

Symbols: T time-to-train (s), s a chip specification (SI), N chip count, P power (W).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.errors import InfeasibleError
from jaxcost.model.hardware import ChipSpec, ClusterSpec, Precision
from jaxcost.model.params import CostParams, PhysicalParams, physical
from jaxcost.model.plan import ParallelPlan, plan_at, plan_to_str
from jaxcost.model.step_time import predict_step_time_physical
from jaxcost.model.workload import TransformerConfig, memory_bytes, tokens_per_step
from jaxcost.policy.mix import chip_mix
from jaxcost.policy.scenario import Scenario
from jaxcost.search.score import blank_labels, plan_time_s_physical
from jaxcost.search.space import PlanSpace, enumerate_plans

__all__ = [
    "AGREE_ATOL",
    "AGREE_RTOL",
    "SPEC_NAMES",
    "ElasticityResult",
    "SpecElasticity",
    "envelope_elasticities",
    "spec_elasticities",
]

#: Chip specifications (``ChipSpec`` leaves) that enter the cost model or the cluster.
SPEC_NAMES: tuple[str, ...] = (
    "peak_flop_per_s_bf16",
    "peak_flop_per_s_fp8",
    "hbm_bytes_per_s",
    "hbm_capacity_bytes",
    "scaleup_bytes_per_s",
    "scaleup_domain_size",
    "scaleout_bytes_per_s",
    "tdp_w",
)
#: Envelope and re-optimised elasticities "differ" when |a − b| exceeds
#: AGREE_RTOL · max(|a|, |b|) + AGREE_ATOL (2 %, with a floor for values near 0).
AGREE_RTOL = 0.02
AGREE_ATOL = 0.002
_NUM_SPECS = len(SPEC_NAMES)
_CAPACITY = SPEC_NAMES.index("hbm_capacity_bytes")
_DOMAIN = SPEC_NAMES.index("scaleup_domain_size")
_TDP = SPEC_NAMES.index("tdp_w")
_MIN_BUCKET = 64


@dataclasses.dataclass(frozen=True)
class SpecElasticity:
    """Elasticity of time-to-train with respect to one chip specification.

    Attributes:
      spec: the ``ChipSpec`` leaf.
      value: the chip's value of it (SI).
      envelope: ∂ log T / ∂ log s at the optimal plan held fixed (point parameters).
      fixed_plan_fd: central difference of log T over ±``log_step``, plan fixed.
      reoptimised_fd: central difference, best plan re-searched on each side.
      reoptimised_down, reoptimised_up: the one-sided re-optimised differences,
        (log T(s) − log T(s·e^−h)) / h and (log T(s·e^h) − log T(s)) / h; they differ
        where a plan switch (or a kink) sits inside the step.
      log_step: the half-width of the difference in log s.
      plan_down, plan_up: best plan at s·exp(−log_step) and s·exp(+log_step).
      plan_switch: either differs from the optimal plan at s.
      differs: |envelope − reoptimised_fd| > AGREE_RTOL·max(|·|) + AGREE_ATOL.
      members: envelope elasticity of each ensemble member at its own best plan
        (shape (B,); empty without an ensemble).
      note: how the specification enters (or why the value is NaN).
    """

    spec: str
    value: float
    envelope: float
    fixed_plan_fd: float
    reoptimised_fd: float
    reoptimised_down: float
    reoptimised_up: float
    log_step: float
    plan_down: str
    plan_up: str
    plan_switch: bool
    differs: bool
    members: np.ndarray
    note: str

    def interval(self) -> tuple[float, float, float]:
        """(median, 5th, 95th percentile) of ``members`` (NaN without an ensemble)."""
        a = np.asarray(self.members, np.float64)
        a = a[np.isfinite(a)]
        if a.size == 0:
            return (math.nan,) * 3
        return (
            float(np.median(a)),
            float(np.percentile(a, 5)),
            float(np.percentile(a, 95)),
        )


@dataclasses.dataclass(frozen=True)
class ElasticityResult:
    """Elasticities of one (chip, count, workload) at its optimal plan.

    Attributes:
      chip: chip key.
      num_chips: chip count N.
      workload: model name.
      precision: precision of the linear layers' GEMMs.
      plan: optimal plan (point parameters).
      step_time_s: its step time, s.
      time_to_train_s: tokens / throughput, s (NaN when no token budget is given).
      specs: ``{spec name: SpecElasticity}`` in :data:`SPEC_NAMES` order.
      count_elasticity: d log T / d log N, re-optimised, between N / count_factor and
        N · count_factor (one-sided where only one admits a plan; NaN if neither).
      count_plans: best plans at N / count_factor and N · count_factor ("" if none).
      count_factor: the factor.
      tdp_fixed_power: d log T / d log tdp at a fixed power budget, −count_elasticity.
      member_plan_switches: ensemble members whose best plan is not ``plan``.
      power_binds: for a scenario, whether the best cluster uses ≥ 95 % of the power
        limit (None for a cluster).
    """

    chip: str
    num_chips: int
    workload: str
    precision: str
    plan: str
    step_time_s: float
    time_to_train_s: float
    specs: dict[str, SpecElasticity]
    count_elasticity: float
    count_plans: tuple[str, str]
    count_factor: float
    tdp_fixed_power: float
    member_plan_switches: int
    power_binds: bool | None = None


# ------------------------------------------------------------------ jitted pieces
def _present(chip: ChipSpec) -> np.ndarray:
    """Which specifications the chip has (finite and > 0): only those are scaled."""
    return np.asarray(
        [
            math.isfinite(float(getattr(chip, n))) and float(getattr(chip, n)) > 0
            for n in SPEC_NAMES
        ]
    )


def _scaled(chip: ChipSpec, present: jax.Array, logmult: jax.Array) -> ChipSpec:
    """The chip with each present specification multiplied by exp(logmult).

    Absent ones (NaN or 0) are left as they are, through a double ``where`` so that
    their (zero) derivative is never NaN.
    """
    changes = {}
    for i, name in enumerate(SPEC_NAMES):
        leaf = jnp.asarray(getattr(chip, name), dtype=logmult.dtype)
        safe = jnp.where(present[i], leaf, 1.0)
        changes[name] = jnp.where(present[i], safe * jnp.exp(logmult[i]), leaf)
    return chip.replace(**changes)


def _log_step_time(
    phys: PhysicalParams,
    chip: ChipSpec,
    present: jax.Array,
    logmult: jax.Array,
    workload: TransformerConfig,
    plan: ParallelPlan,
    precision: str,
) -> jax.Array:
    """log(step time / s) of one plan on the scaled chip (no feasibility test).

    The step time does not depend on ``ClusterSpec.num_chips`` (the plan's
    dp·tp·pp·cp is the chip count), so one batch may hold plans of several counts.
    """
    c = _scaled(chip, present, logmult)
    st = predict_step_time_physical(
        phys, ClusterSpec(chip=c, num_chips=1.0), workload, plan, precision=precision
    )
    return jnp.log(st.total_s)


def _times(phys, chip, present, logmult, workload, plans, precision):
    """(scorer time: inf where unfit, raw step time) of each plan, s ((P,) each)."""
    c = _scaled(chip, present, logmult)
    cl = ClusterSpec(chip=c, num_chips=1.0)

    def one(p):
        return (
            plan_time_s_physical(phys, cl, workload, p, precision=precision),
            predict_step_time_physical(
                phys, cl, workload, p, precision=precision
            ).total_s,
        )

    return jax.vmap(one)(plans)


def _evaluate(phys, chip, present, logmults, workload, plans, base, precision):
    """Everything one configuration needs, in one compiled call.

    Args:
      logmults: (K, S) log-multipliers; row 0 is the unperturbed chip.
      plans: (P,) plans (possibly of several chip counts).
      base: (P,) mask of the base set's rows (the scorer's own memory test applies).

    Returns:
      (scorer times (K, P), raw times (K, P), memory per plan (P,), index of the best
      base plan, ∂ log(step time)/∂ logmult at that plan (S,)).
    """
    # one row at a time (lax.map): the memory stays that of one batch of plans
    t, raw = jax.lax.map(
        lambda lm: _times(phys, chip, present, lm, workload, plans, precision), logmults
    )
    mem = jax.vmap(lambda p: memory_bytes(workload, p).total)(plans)
    i0 = jnp.argmin(jnp.where(base, t[0], jnp.inf))
    plan0 = jax.tree.map(lambda x: x[i0], plans)
    g = jax.grad(_log_step_time, argnums=3)(
        phys, chip, present, logmults[0], workload, plan0, precision
    )
    return t, raw, mem, i0, g


def _member_eval(phys, chip, present, logmult, workload, plans, valid, precision):
    """Each member's best plan among ``plans`` and its gradient ((B,) phys)."""

    def one(ph):
        t, _ = _times(ph, chip, present, logmult, workload, plans, precision)
        i = jnp.argmin(jnp.where(valid, t, jnp.inf))
        pl = jax.tree.map(lambda x: x[i], plans)
        return i, jax.grad(_log_step_time, argnums=3)(
            ph, chip, present, logmult, workload, pl, precision
        )

    return jax.vmap(one)(phys)


_jit_evaluate = jax.jit(_evaluate, static_argnames=("precision",))
_jit_member_eval = jax.jit(_member_eval, static_argnames=("precision",))
_jit_grad = jax.jit(jax.grad(_log_step_time, argnums=3), static_argnames=("precision",))


#: Plan sets of one configuration (``owner`` codes of the rows of the plan batch).
_BASE, _DOM_DOWN, _DOM_UP, _COUNT_DOWN, _COUNT_UP = range(5)


def _plan_sets(workload, n, chip, space, cap_mult, domain_factor, count_factor):
    """Every plan set one configuration needs, in one padded batch.

    Each set is an ``enumerate_plans`` call, so its rules (divisibility, tp and the
    scale-up domain, memory) are the plan search's own: the base set on N chips with
    the capacity times ``cap_mult`` (a superset for the capacity differences: their
    validity is the memory mask of ``_fits``), the sets with the domain divided and
    multiplied by ``domain_factor``, and the base chip on N / count_factor and
    N · count_factor chips (where integral). The batch is padded (repeating row 0,
    owner −1) to a power-of-two size so that compiled functions are reused.

    Returns:
      (plans or None, owner code per row, {owner code: chip count}).
    """
    cap = float(chip.hbm_capacity_bytes)
    dom = float(chip.scaleup_domain_size)
    sets = {
        _BASE: (n, chip.replace(hbm_capacity_bytes=cap * cap_mult)),
        _DOM_DOWN: (n, chip.replace(scaleup_domain_size=dom / domain_factor)),
        _DOM_UP: (n, chip.replace(scaleup_domain_size=dom * domain_factor)),
    }
    for code, m in ((_COUNT_DOWN, n / count_factor), (_COUNT_UP, n * count_factor)):
        if abs(m - round(m)) < 1e-9 and m >= 1:
            sets[code] = (int(round(m)), chip)
    parts, owner = [], []
    for code, (k, c) in sets.items():
        pl = enumerate_plans(workload, k, c, space)
        size = int(np.asarray(pl.tp).size)
        if size:
            parts.append(pl)
            owner.append(np.full(size, code, np.int64))
    counts = {code: k for code, (k, _) in sets.items()}
    if not parts:
        return None, np.zeros(0, np.int64), counts
    plans = jax.tree.map(lambda *x: np.concatenate(x), *parts)
    owner = np.concatenate(owner)
    rows = max(_MIN_BUCKET, 1 << (owner.size - 1).bit_length())
    idx = np.concatenate([np.arange(owner.size), np.zeros(rows - owner.size, np.int64)])
    plans = jax.tree.map(lambda x: np.asarray(x)[idx], plans)
    return plans, np.concatenate([owner, np.full(rows - owner.size, -1)]), counts


def _fits(mem: np.ndarray, space: PlanSpace, capacity: float) -> np.ndarray:
    """``enumerate_plans``' memory condition for a chip with this capacity."""
    return mem <= space.usable_hbm_frac * capacity


def _agree(a: float, b: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= AGREE_RTOL * max(abs(a), abs(b)) + AGREE_ATOL


def _resolve(params, hardware, workload, space, tokens):
    """(chip, N, workload, space, tokens, scenario power limit, power used)."""
    if isinstance(hardware, Scenario):
        sc = hardware
        w = sc.model if workload is None else workload
        res = chip_mix(params, w, sc, check_exhaustive=False)
        best = res.clusters[0]
        if len(best.counts) != 1:
            raise ValueError(
                f"scenario {sc.name!r}: the best cluster {best.label} "
                "mixes chip types; spec_elasticities needs a homogeneous "
                "cluster (one candidate, or mixed = false)"
            )
        key = next(iter(best.counts))
        chips = {
            (f"{c.chip.key}(owned)" if c.owned else c.chip.key): c.chip
            for c in sc.candidates
        }
        return (
            chips[key],
            int(best.counts[key]),
            w,
            sc.search.plan_space() if space is None else space,
            sc.tokens if tokens is None else tokens,
            sc.power_w,
            best.power_w,
        )
    if not isinstance(hardware, ClusterSpec):
        raise TypeError(
            "hardware must be a ClusterSpec or a Scenario, got "
            f"{type(hardware).__name__}"
        )
    if workload is None:
        raise ValueError("workload is required with a ClusterSpec")
    return (
        hardware.chip,
        int(round(float(hardware.num_chips))),
        workload,
        PlanSpace() if space is None else space,
        tokens,
        None,
        None,
    )


def envelope_elasticities(
    params: CostParams,
    cluster: ClusterSpec,
    workload: TransformerConfig,
    plan: ParallelPlan,
    *,
    precision: Precision | str = Precision.BF16,
) -> dict[str, float]:
    """∂ log(step time) / ∂ log s of one given plan, for every spec of SPEC_NAMES.

    One ``jax.grad`` of log(step time) with respect to log-multipliers on the chip's
    leaves, in the default float type (float32 unless x64 is on). At the optimal plan
    this is the envelope elasticity of :func:`spec_elasticities`.

    Args:
      params: ``CostParams``.
      cluster: the homogeneous cluster (its chip is differentiated).
      workload: the model.
      plan: one plan (scalar leaves).
      precision: "bf16" or "fp8".

    Returns:
      ``{spec name: elasticity}``; NaN for specifications the chip lacks (NaN or 0).
    """
    chip = cluster.chip
    present_np = _present(chip)
    achip, aw = blank_labels(chip, workload)
    g = np.asarray(
        _jit_grad(
            physical(params, chip),
            achip,
            jnp.asarray(present_np),
            jnp.zeros(_NUM_SPECS, jnp.result_type(float)),
            aw,
            plan,
            precision=str(Precision(precision).value),
        ),
        np.float64,
    )
    return {
        n: (float(g[j]) if present_np[j] else math.nan)
        for j, n in enumerate(SPEC_NAMES)
    }


def _best_log_time(t_row: np.ndarray, valid: np.ndarray) -> tuple[float, int]:
    """(log of the best scorer time among valid rows, its row); (nan, -1) if none."""
    tt = np.where(valid, t_row, np.inf)
    i = int(np.argmin(tt)) if tt.size else -1
    if i < 0 or not np.isfinite(tt[i]):
        return math.nan, -1
    return math.log(float(tt[i])), i


def spec_elasticities(
    params: CostParams,
    hardware: ClusterSpec | Scenario,
    workload: TransformerConfig | None = None,
    *,
    ensemble: CostParams | None = None,
    space: PlanSpace | None = None,
    precision: Precision | str = Precision.BF16,
    tokens: float | None = None,
    log_step: float = math.log(1.1),
    domain_factor: float = 2.0,
    count_factor: float = 2.0,
    member_top_k: int = 64,
) -> ElasticityResult:
    """Elasticities ∂ log T / ∂ log s of time-to-train for every chip specification.

    See the module docstring for the three estimates and how each specification
    enters. Time-to-train for a fixed token budget is proportional to the step time,
    so both have the same elasticities.

    Args:
      params: point ``CostParams``.
      hardware: a homogeneous ``ClusterSpec``, or a ``Scenario`` whose best cluster
        (``chip_mix``) is homogeneous (its plan space, token budget and power limit
        are used).
      workload: the model (default: the scenario's).
      ensemble: ``CostParams`` with ``(B,)`` leaves for intervals, or None.
      space: plan space searched (default ``PlanSpace()`` or the scenario's).
      precision: "bf16" or "fp8" (the linear layers' GEMMs; FP8 falls back to BF16 on
        chips without an FP8 peak).
      tokens: token budget for ``time_to_train_s`` (default: the scenario's, or none).
      log_step: half-width of the finite differences in log s (default log 1.1).
      domain_factor: factor of the scale-up domain's finite differences.
      count_factor: factor of the chip-count slope (N / f and N · f must be integers).
      member_top_k: ensemble members choose their plan among this many of the point
        estimate's best plans.

    Returns:
      :class:`ElasticityResult`.

    Raises:
      InfeasibleError: no plan of the workload fits on the cluster.
      ValueError: a scenario whose best cluster mixes chip types, or no workload.
      TypeError: ``hardware`` is neither a ``ClusterSpec`` nor a ``Scenario``.
    """
    chip, n, w, space, tokens, power_limit, power_used = _resolve(
        params, hardware, workload, space, tokens
    )
    prec = str(Precision(precision).value)
    dtype = jnp.result_type(float)
    present_np = _present(chip)
    present = jnp.asarray(present_np)
    phys = physical(params, chip)
    achip, aw = blank_labels(chip, w)
    cap0 = float(chip.hbm_capacity_bytes)
    plans, owner, set_counts = _plan_sets(
        w, n, chip, space, math.exp(log_step), domain_factor, count_factor
    )
    if plans is None or not np.any(owner == _BASE):
        raise InfeasibleError(f"no plan of {w.name} fits on {n} x {chip.key}")

    # rows: 0 the chip itself; 2j + 1 and 2j + 2 spec j scaled down and up
    steps = np.full(_NUM_SPECS, log_step)
    steps[_DOMAIN] = math.log(domain_factor)
    lm = np.zeros((2 * _NUM_SPECS + 1, _NUM_SPECS))
    for j in range(_NUM_SPECS):
        lm[2 * j + 1, j] = -steps[j]
        lm[2 * j + 2, j] = steps[j]
    # inside the compiled call the base plans are the base set's that the scorer finds
    # fitting (its memory test is enumerate_plans' at the default usable fraction); the
    # space's own memory test is applied afterwards
    t, raw, mem, i0, grad0 = _jit_evaluate(
        phys,
        achip,
        present,
        jnp.asarray(lm, dtype),
        aw,
        plans,
        owner == _BASE,
        precision=prec,
    )
    t, raw, mem = (np.asarray(x, np.float64) for x in (t, raw, mem))
    valid0 = (owner == _BASE) & _fits(mem, space, cap0)
    logt0, i_best = _best_log_time(t[0], valid0)
    if i_best < 0:
        raise InfeasibleError(f"no plan of {w.name} fits on {n} x {chip.key}")
    if int(i0) != i_best:  # the space's usable-HBM fraction is below the scorer's
        grad0 = _jit_grad(
            phys,
            achip,
            present,
            jnp.zeros(_NUM_SPECS, dtype),
            aw,
            plan_at(plans, i_best),
            precision=prec,
        )
    grad0 = np.asarray(grad0, np.float64)
    plan0 = plan_at(plans, i_best)
    plan0_str = plan_to_str(plan0)
    t0 = math.exp(logt0)

    reopt = np.full(2 * _NUM_SPECS + 1, math.nan)
    reopt_plans = [""] * (2 * _NUM_SPECS + 1)
    for r in range(1, 2 * _NUM_SPECS + 1):
        j = (r - 1) // 2
        if not present_np[j]:
            continue
        if j == _DOMAIN:
            valid = owner == (_DOM_DOWN if lm[r, j] < 0 else _DOM_UP)
        elif j == _CAPACITY:
            valid = (owner == _BASE) & _fits(mem, space, cap0 * math.exp(lm[r, j]))
        else:
            valid = valid0
        reopt[r], i = _best_log_time(t[r], valid)
        if i >= 0:
            reopt_plans[r] = plan_to_str(plan_at(plans, i))

    # ensemble: each member's best plan among the point estimate's top plans
    members = np.zeros((0, _NUM_SPECS))
    switches = 0
    if ensemble is not None:
        order = np.argsort(np.where(valid0, t[0], np.inf), kind="stable")
        top = order[
            : max(1, min(member_top_k, int(np.sum(np.isfinite(t[0]) & valid0))))
        ]
        idx = np.concatenate([top, np.full(member_top_k - top.size, top[0])])
        top_plans = jax.tree.map(lambda x: np.asarray(x)[idx], plans)
        ens_phys = jax.vmap(lambda p: physical(p, chip))(ensemble)
        pick, members = _jit_member_eval(
            ens_phys,
            achip,
            present,
            jnp.zeros(_NUM_SPECS, dtype),
            aw,
            top_plans,
            np.arange(member_top_k) < top.size,
            precision=prec,
        )
        switches = int(np.sum(idx[np.asarray(pick)] != i_best))
        members = np.asarray(members, np.float64)

    specs: dict[str, SpecElasticity] = {}
    for j, name in enumerate(SPEC_NAMES):
        value = float(getattr(chip, name))
        h = float(steps[j])
        dn, up = 2 * j + 1, 2 * j + 2
        fixed = (math.log(raw[up, i_best]) - math.log(raw[dn, i_best])) / (2 * h)
        re = (reopt[up] - reopt[dn]) / (2 * h)
        re_down = (logt0 - reopt[dn]) / h
        re_up = (reopt[up] - logt0) / h
        env = float(grad0[j])
        note = _NOTES[name]
        mem_j = members[:, j] if members.size else np.zeros(0)
        if not present_np[j]:
            env = fixed = re = re_down = re_up = math.nan
            note = f"absent on {chip.key} (value {value:g}): not scaled"
            mem_j = np.full(members.shape[0], math.nan)
        elif name == "peak_flop_per_s_fp8" and prec != Precision.FP8.value:
            note = "BF16 run: the FP8 peak is not used"
        pd, pu = reopt_plans[dn], reopt_plans[up]
        specs[name] = SpecElasticity(
            spec=name,
            value=value,
            envelope=env,
            fixed_plan_fd=float(fixed),
            reoptimised_fd=float(re),
            reoptimised_down=float(re_down),
            reoptimised_up=float(re_up),
            log_step=h,
            plan_down=pd,
            plan_up=pu,
            plan_switch=bool(present_np[j] and (pd != plan0_str or pu != plan0_str)),
            differs=bool(present_np[j] and not _agree(env, float(re))),
            members=mem_j,
            note=note,
        )

    # chip count (and TDP at fixed power): re-optimised slope between N/f and N·f
    pts = [(math.log(n), logt0)]
    cplans = []
    for code in (_COUNT_DOWN, _COUNT_UP):
        lt, i = _best_log_time(t[0], owner == code)
        if i < 0:
            cplans.append("")
            continue
        pts.append((math.log(set_counts[code]), lt))
        cplans.append(plan_to_str(plan_at(plans, i)))
    if len(pts) >= 2:
        (x_a, y_a), (x_b, y_b) = min(pts), max(pts)
        slope = (y_b - y_a) / (x_b - x_a)
    else:
        slope = math.nan
    ttt = float(tokens) * t0 / tokens_per_step(w) if tokens else math.nan
    binds = (
        None
        if power_limit is None
        else bool(math.isfinite(power_limit) and power_used >= 0.95 * power_limit)
    )
    return ElasticityResult(
        chip=chip.key,
        num_chips=n,
        workload=w.name,
        precision=prec,
        plan=plan0_str,
        step_time_s=t0,
        time_to_train_s=ttt,
        specs=specs,
        count_elasticity=slope,
        count_plans=(cplans[0], cplans[1]),
        count_factor=count_factor,
        tdp_fixed_power=-slope,
        member_plan_switches=switches,
        power_binds=binds,
    )


_NOTES = {
    "peak_flop_per_s_bf16": "GEMMs (BF16 runs), attention core, LM head",
    "peak_flop_per_s_fp8": "linear-layer GEMMs of FP8 runs",
    "hbm_bytes_per_s": "memory-bound ops, GEMM roofline, optimizer step",
    "hbm_capacity_bytes": "feasibility only: envelope 0; plan switches in the "
    "re-optimised difference",
    "scaleup_bytes_per_s": "collectives inside the scale-up domain",
    "scaleup_domain_size": "continuous ranks per domain (plan fixed); differences "
    "at half and double the domain",
    "scaleout_bytes_per_s": "collectives across domains",
    "tdp_w": "not in the step time: 0 at a fixed chip count (see tdp_fixed_power)",
}
