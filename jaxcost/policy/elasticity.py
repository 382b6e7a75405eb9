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
from jaxcost.search.score import plan_time_s_physical
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
        return (float(np.median(a)), float(np.percentile(a, 5)),
                float(np.percentile(a, 95)))


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
    return np.asarray([math.isfinite(float(getattr(chip, n)))
                       and float(getattr(chip, n)) > 0 for n in SPEC_NAMES])


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


def _log_step_time(phys: PhysicalParams, chip: ChipSpec, present: jax.Array,
                   logmult: jax.Array, num_chips: jax.Array,
                   workload: TransformerConfig, plan: ParallelPlan,
                   precision: str) -> jax.Array:
    """log(step time / s) of one plan on the scaled chip (no feasibility test)."""
    c = _scaled(chip, present, logmult)
    st = predict_step_time_physical(phys, ClusterSpec(chip=c, num_chips=num_chips),
                                    workload, plan, precision=precision)
    return jnp.log(st.total_s)


def _plan_times(phys, chip, present, logmult, num_chips, workload, plans, valid,
                precision):
    """Step time (s) of each plan on the scaled chip; inf where invalid or unfit."""
    c = _scaled(chip, present, logmult)
    cl = ClusterSpec(chip=c, num_chips=num_chips)
    t = jax.vmap(lambda p: plan_time_s_physical(phys, cl, workload, p,
                                                precision=precision))(plans)
    return jnp.where(valid, t, jnp.inf)


def _log_times(phys, chip, present, logmults, num_chips, workload, plan, precision):
    """log(step time) of one plan at each row of ``logmults`` ((K, S) -> (K,))."""
    return jax.vmap(lambda lm: _log_step_time(phys, chip, present, lm, num_chips,
                                              workload, plan, precision))(logmults)


def _member_grads(phys, chip, present, logmult, num_chips, workload, plans, precision):
    """∂ log(step time)/∂ logmult for each member's phys and plan ((B,) -> (B, S))."""
    g = jax.grad(_log_step_time, argnums=3)
    return jax.vmap(lambda ph, pl: g(ph, chip, present, logmult, num_chips, workload,
                                     pl, precision))(phys, plans)


def _member_times(phys, chip, present, logmult, num_chips, workload, plans, valid,
                  precision):
    """Step times of the plans under each member's phys ((B,) -> (B, P))."""
    return jax.vmap(lambda ph: _plan_times(ph, chip, present, logmult, num_chips,
                                           workload, plans, valid, precision))(phys)


_jit_plan_times = jax.jit(_plan_times, static_argnames=("precision",))
_jit_log_times = jax.jit(_log_times, static_argnames=("precision",))
_jit_grad = jax.jit(jax.grad(_log_step_time, argnums=3), static_argnames=("precision",))
_jit_member_grad = jax.jit(_member_grads, static_argnames=("precision",))
_jit_member_times = jax.jit(_member_times, static_argnames=("precision",))
_jit_memory = jax.jit(jax.vmap(lambda w, p: memory_bytes(w, p).total,
                               in_axes=(None, 0)))


def _anonymous(chip: ChipSpec, workload: TransformerConfig):
    """Chip and workload with blank labels, so that compiled scorers are shared.

    The labels are static pytree fields; the cost model reads none of them once the
    physical parameters are resolved (``physical`` uses ``chip.key``/``family``).
    """
    c = chip.replace(name="", key="", vendor="", family="", datacenter=False,
                     memory_type="")
    return c, workload.replace(name="")


def _pad(plans: ParallelPlan, size: int | None = None
         ) -> tuple[ParallelPlan, np.ndarray]:
    """Plans padded (repeating row 0) to ``size`` rows (default: a power-of-two
    bucket, so that compiled scorers are reused), and the mask of the real rows."""
    n = int(np.asarray(plans.tp).size)
    if size is None:
        size = max(_MIN_BUCKET, 1 << max(n - 1, 0).bit_length())
    idx = np.concatenate([np.arange(n), np.zeros(size - n, np.int64)])
    padded = jax.tree.map(lambda x: np.asarray(x)[idx], plans)
    return padded, np.arange(size) < n


def _max_tp(space: PlanSpace, domain: float) -> float:
    """The tp limit ``enumerate_plans`` applies for a chip with this domain size."""
    if space.max_tp is not None:
        return float(space.max_tp)
    if space.allow_tp_beyond_scaleup:
        return math.inf
    return float(domain)


@dataclasses.dataclass(frozen=True)
class _Plans:
    """A superset of plans on N chips, with what the per-chip validity masks need."""

    plans: ParallelPlan
    real: np.ndarray
    tp: np.ndarray
    mem: np.ndarray

    def valid(self, space: PlanSpace, capacity: float, domain: float) -> np.ndarray:
        """The rows ``enumerate_plans`` would return for a chip with these values."""
        return (self.real & (self.tp <= _max_tp(space, domain))
                & (self.mem <= space.usable_hbm_frac * capacity))


def _superset(workload, n: int, chip: ChipSpec, space: PlanSpace, cap_mult: float,
              dom_mult: float) -> _Plans:
    """Every plan valid for some chip with capacity ≤ cap·cap_mult and domain ≤
    domain·dom_mult (one enumeration instead of one per perturbation)."""
    big = chip.replace(
        hbm_capacity_bytes=float(chip.hbm_capacity_bytes) * cap_mult,
        scaleup_domain_size=float(chip.scaleup_domain_size) * dom_mult)
    plans = enumerate_plans(workload, n, big, space)
    if np.asarray(plans.tp).size == 0:
        return _Plans(plans, np.zeros(0, bool), np.zeros(0), np.zeros(0))
    padded, real = _pad(plans)
    mem = np.asarray(_jit_memory(workload, padded), np.float64)
    return _Plans(padded, real, np.asarray(padded.tp, np.float64), mem)


def _best(phys, chip, present, logmult, n, workload, sup: _Plans, valid, precision
          ) -> tuple[float, int]:
    """(best step time, row) among the valid rows; (inf, -1) when none fits."""
    if not valid.any():
        return math.inf, -1
    t = np.asarray(_jit_plan_times(phys, chip, present, logmult, float(n), workload,
                                   sup.plans, valid, precision=precision))
    i = int(np.argmin(t))
    return float(t[i]), (i if np.isfinite(t[i]) else -1)


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
            raise ValueError(f"scenario {sc.name!r}: the best cluster {best.label} "
                             "mixes chip types; spec_elasticities needs a homogeneous "
                             "cluster (one candidate, or mixed = false)")
        key = next(iter(best.counts))
        chips = {(f"{c.chip.key}(owned)" if c.owned else c.chip.key): c.chip
                 for c in sc.candidates}
        return (chips[key], int(best.counts[key]), w,
                sc.search.plan_space() if space is None else space,
                sc.tokens if tokens is None else tokens, sc.power_w, best.power_w)
    if not isinstance(hardware, ClusterSpec):
        raise TypeError("hardware must be a ClusterSpec or a Scenario, got "
                        f"{type(hardware).__name__}")
    if workload is None:
        raise ValueError("workload is required with a ClusterSpec")
    return (hardware.chip, int(round(float(hardware.num_chips))), workload,
            PlanSpace() if space is None else space, tokens, None, None)


def envelope_elasticities(params: CostParams, cluster: ClusterSpec,
                          workload: TransformerConfig, plan: ParallelPlan, *,
                          precision: Precision | str = Precision.BF16
                          ) -> dict[str, float]:
    """∂ log(step time) / ∂ log s of one given plan, for every spec of SPEC_NAMES.

    One ``jax.grad`` of log(step time) with respect to log-multipliers on the chip's
    leaves, in the default float type (float32 unless x64 is on). At the optimal plan
    this is the envelope elasticity of :func:`spec_elasticities`.

    Returns:
      ``{spec name: elasticity}``; NaN for specifications the chip lacks (NaN or 0).
    """
    chip = cluster.chip
    present_np = _present(chip)
    achip, aw = _anonymous(chip, workload)
    g = np.asarray(_jit_grad(physical(params, chip), achip, jnp.asarray(present_np),
                             jnp.zeros(_NUM_SPECS, jnp.result_type(float)),
                             float(cluster.num_chips), aw, plan,
                             precision=str(Precision(precision).value)), np.float64)
    return {n: (float(g[j]) if present_np[j] else math.nan)
            for j, n in enumerate(SPEC_NAMES)}


def _count_slope(phys, chip, present, zero, workload, n, space, factor, precision):
    """((log N', log T') at N/factor and N·factor where a plan fits, their plans)."""
    achip, aw = _anonymous(chip, workload)
    pts, plans = [], []
    for m in (n / factor, n * factor):
        k = int(round(m))
        if abs(k - m) > 1e-9 or k < 1:
            plans.append("")
            continue
        sup = _superset(workload, k, chip, space, 1.0, 1.0)
        if sup.real.size == 0:
            plans.append("")
            continue
        valid = sup.valid(space, float(chip.hbm_capacity_bytes),
                          float(chip.scaleup_domain_size))
        t, i = _best(phys, achip, present, zero, k, aw, sup, valid, precision)
        if i < 0:
            plans.append("")
            continue
        pts.append((math.log(k), math.log(t)))
        plans.append(plan_to_str(plan_at(sup.plans, i)))
    return pts, (plans[0], plans[1])


def spec_elasticities(params: CostParams, hardware: ClusterSpec | Scenario,
                      workload: TransformerConfig | None = None, *,
                      ensemble: CostParams | None = None,
                      space: PlanSpace | None = None,
                      precision: Precision | str = Precision.BF16,
                      tokens: float | None = None, log_step: float = math.log(1.1),
                      domain_factor: float = 2.0, count_factor: float = 2.0,
                      member_top_k: int = 64) -> ElasticityResult:
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
        params, hardware, workload, space, tokens)
    prec = str(Precision(precision).value)
    dtype = jnp.result_type(float)
    present_np = _present(chip)
    present = jnp.asarray(present_np)
    zero = jnp.zeros(_NUM_SPECS, dtype)
    phys = physical(params, chip)
    achip, aw = _anonymous(chip, w)
    cap0 = float(chip.hbm_capacity_bytes)
    dom0 = float(chip.scaleup_domain_size)
    up = math.exp(log_step)
    sup = _superset(w, n, chip, space, up, domain_factor)
    valid0 = sup.valid(space, cap0, dom0) if sup.real.size else sup.real
    t0, i0 = _best(phys, achip, present, zero, n, aw, sup, valid0, prec)
    if i0 < 0:
        raise InfeasibleError(f"no plan of {w.name} fits on {n} x {chip.key}")
    plan0 = plan_at(sup.plans, i0)
    plan0_str = plan_to_str(plan0)

    # envelope (point), fixed-plan and re-optimised differences
    grad0 = np.asarray(_jit_grad(phys, achip, present, zero, float(n), aw, plan0,
                                 precision=prec), np.float64)
    steps = np.full(_NUM_SPECS, log_step)
    steps[_DOMAIN] = math.log(domain_factor)
    lm = np.zeros((2 * _NUM_SPECS, _NUM_SPECS))
    for j in range(_NUM_SPECS):
        lm[2 * j, j] = -steps[j]
        lm[2 * j + 1, j] = steps[j]
    lm = jnp.asarray(lm, dtype)
    fixed_log = np.asarray(_jit_log_times(phys, achip, present, lm, float(n), aw,
                                          plan0, precision=prec), np.float64)
    reopt = np.full(2 * _NUM_SPECS, math.nan)
    reopt_plans = [""] * (2 * _NUM_SPECS)
    for r in range(2 * _NUM_SPECS):
        j = r // 2
        if not present_np[j]:
            continue
        mult = float(np.exp(np.asarray(lm[r, j])))
        cap = cap0 * (mult if j == _CAPACITY else 1.0)
        dom = dom0 * (mult if j == _DOMAIN else 1.0)
        valid = sup.valid(space, cap, dom)
        t, i = _best(phys, achip, present, lm[r], n, aw, sup, valid, prec)
        if i >= 0:
            reopt[r] = math.log(t)
            reopt_plans[r] = plan_to_str(plan_at(sup.plans, i))

    # ensemble: each member's best plan among the point estimate's top plans
    members = np.zeros((0, _NUM_SPECS))
    switches = 0
    if ensemble is not None:
        t_all = np.asarray(_jit_plan_times(phys, achip, present, zero, float(n), aw,
                                           sup.plans, valid0, precision=prec))
        order = np.argsort(t_all, kind="stable")
        top = order[:min(member_top_k, int(np.isfinite(t_all).sum()))]
        top_plans, top_real = _pad(jax.tree.map(lambda x: np.asarray(x)[top],
                                                sup.plans), max(member_top_k, 1))
        ens_phys = jax.vmap(lambda p: physical(p, chip))(ensemble)
        tm = np.asarray(_jit_member_times(ens_phys, achip, present, zero, float(n), aw,
                                          top_plans, top_real, precision=prec))
        pick = np.argmin(tm, axis=1)
        switches = int(np.sum(top[pick] != i0))
        mplans = jax.tree.map(lambda x: np.asarray(x)[pick], top_plans)
        members = np.asarray(_jit_member_grad(ens_phys, achip, present, zero, float(n),
                                              aw, mplans, precision=prec), np.float64)

    specs: dict[str, SpecElasticity] = {}
    for j, name in enumerate(SPEC_NAMES):
        value = float(getattr(chip, name))
        h = float(steps[j])
        fixed = (fixed_log[2 * j + 1] - fixed_log[2 * j]) / (2 * h)
        re = (reopt[2 * j + 1] - reopt[2 * j]) / (2 * h)
        re_down = (math.log(t0) - reopt[2 * j]) / h
        re_up = (reopt[2 * j + 1] - math.log(t0)) / h
        env = float(grad0[j])
        note = _NOTES[name]
        if not present_np[j]:
            env = fixed = re = re_down = re_up = math.nan
            note = f"absent on {chip.key} (value {value:g}): not scaled"
        elif name == "peak_flop_per_s_fp8" and prec != Precision.FP8.value:
            note = "BF16 run: the FP8 peak is not used"
        pd, pu = reopt_plans[2 * j], reopt_plans[2 * j + 1]
        mem = members[:, j] if members.size else np.zeros(0)
        if not present_np[j]:
            mem = np.full(members.shape[0], math.nan)
        specs[name] = SpecElasticity(
            spec=name, value=value, envelope=env, fixed_plan_fd=float(fixed),
            reoptimised_fd=float(re), reoptimised_down=float(re_down),
            reoptimised_up=float(re_up), log_step=h, plan_down=pd, plan_up=pu,
            plan_switch=bool(present_np[j] and (pd != plan0_str or pu != plan0_str)),
            differs=bool(present_np[j] and not _agree(env, float(re))),
            members=mem, note=note)

    pts, cplans = _count_slope(phys, chip, present, zero, w, n, space, count_factor,
                               prec)
    pts = [(math.log(n), math.log(t0))] + pts
    if len(pts) >= 2:
        xs = sorted(pts)
        (x_a, y_a), (x_b, y_b) = xs[0], xs[-1]
        slope = (y_b - y_a) / (x_b - x_a)
    else:
        slope = math.nan
    tps = tokens_per_step(w)
    ttt = float(tokens) * t0 / tps if tokens else math.nan
    binds = (None if power_limit is None else
             bool(math.isfinite(power_limit) and power_used >= 0.95 * power_limit))
    return ElasticityResult(
        chip=chip.key, num_chips=n, workload=w.name, precision=prec, plan=plan0_str,
        step_time_s=t0, time_to_train_s=ttt, specs=specs, count_elasticity=slope,
        count_plans=cplans, count_factor=count_factor, tdp_fixed_power=-slope,
        member_plan_switches=switches, power_binds=binds)


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
