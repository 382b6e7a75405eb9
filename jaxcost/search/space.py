"""The plan space: which parallel plans the search considers, and their enumeration.

:class:`PlanSpace` is the one record of search options, shared by
:func:`jaxcost.search.plans.best_plan`, the throughput curves of the chip-mix search,
the re-planning of mixed clusters and the blank-plan search of ``jaxcost predict``.
:func:`enumerate_plans` turns it into every valid plan of a model on a number of chips,
as one batched :class:`jaxcost.model.plan.ParallelPlan` (numpy leaves), checked with the
conditions of :mod:`jaxcost.model.parallel` (divisibility, scale-up domain, memory).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ChipSpec, Precision, check_chip_count
from jaxcost.model.parallel import (
    USABLE_HBM_FRAC,
    memory_condition,
    plan_conditions,
    uneven_layer_split,
)
from jaxcost.model.plan import PLAN_FIELDS, ParallelPlan, Recompute, as_recompute
from jaxcost.model.workload import TransformerConfig

__all__ = ["PlanSpace", "enumerate_plans", "space_precisions"]


@dataclasses.dataclass(frozen=True)
class PlanSpace:
    """The options of the plan search (static; hashable).

    Attributes:
      tp, pp, dp: the degrees tried (None: every divisor of the chip count); a
        published partial plan fixes the ones it gives.
      max_tp: largest tp; None: the chip's scale-up domain size.
      allow_tp_beyond_scaleup: if True, no default tp limit.
      zero_stages: ZeRO stages tried.
      zero_groups: ZeRO/FSDP shard-group sizes tried (hybrid sharding); 0 = one group
        of all dp·cp ranks (the default, the only value unless listed); a size that
        does not divide dp·cp properly is skipped.
      recompute: activation recomputation modes tried.
      recompute_lite: cheap-module recompute settings tried (norms and activation
        functions recomputed, ``ParallelPlan.recompute_lite``; Megatron-Core
        ``--recompute-modules``, DeepSeek-V3): both by default. True is tried with
        recompute none and selective only (moot under full recompute).
      mbs: micro-batch sizes tried (sequences).
      vpp: interleave depths tried (virtual stages per pipeline rank); None: every
        depth v ≥ 1 with pp·v ≤ L that splits the L/pp layers of a stage evenly
        (each virtual stage at least one layer, as Megatron-Core's
        ``--num-layers-per-virtual-pipeline-stage`` allows), only v = 1 when pp = 1.
      cp: context-parallel degrees tried (None: every divisor of the chip count).
      ep: expert-parallel degrees tried (None: every divisor of the expert count).
      sp: sequence parallelism settings tried.
      flash_attn: attention kernel of every plan (fused by default).
      fused_a2a: expert dispatcher of every plan (NCCL all-to-all by default).
      tp_overlap: TP communication pipelined with the GEMMs in every plan.
      pp_balance: layer split over the pipeline stages: False, L/p layers per stage
        (pp·vpp must divide L); True, the embedding and head take one layer's place
        each (uneven whole numbers of layers, pp·vpp ≤ L); "auto", uniform where pp·vpp
        divides L and balanced where it does not, the uneven splits interleaved only
        where pp·vpp divides L + 2 (the embedding and head as one slot each).
      dp_overlap: gradient reduction overlapped with the backward pass in every plan.
      usable_hbm_frac: fraction of HBM a plan may use.
      precisions: number formats of the linear layers' GEMMs tried (a plan
        dimension scored at that format's peak): ``(Precision.BF16,)`` by default;
        with ``Precision.FP8`` listed, FP8 is tried only on chips whose FP8 peak is
        positive (``chips.csv``), see :func:`space_precisions`.
    """

    tp: tuple[int, ...] | None = None
    pp: tuple[int, ...] | None = None
    dp: tuple[int, ...] | None = None
    max_tp: float | None = None
    allow_tp_beyond_scaleup: bool = False
    zero_stages: tuple[int, ...] = (0, 1, 2, 3)
    zero_groups: tuple[int, ...] = (0,)
    recompute: tuple[Recompute, ...] = (
        Recompute.NONE,
        Recompute.SELECTIVE,
        Recompute.FULL,
    )
    recompute_lite: tuple[bool, ...] = (False, True)
    mbs: tuple[int, ...] = (1, 2, 4, 8)
    vpp: tuple[int, ...] | None = None
    cp: tuple[int, ...] | None = (1, 2, 4, 8)
    ep: tuple[int, ...] | None = None
    sp: tuple[bool, ...] = (True,)
    flash_attn: bool = True
    fused_a2a: bool = False
    tp_overlap: bool = False
    pp_balance: bool | str = False
    dp_overlap: bool = False
    usable_hbm_frac: float = USABLE_HBM_FRAC
    precisions: tuple[Precision, ...] = (Precision.BF16,)

    @classmethod
    def create(cls, **options) -> PlanSpace:
        """A space from keyword options (sequences become tuples).

        Raises:
          PlanError: an unknown option (the message lists the known ones).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise PlanError(
                f"unknown plan-space option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}",
                column=unknown[0],
            )
        fixed = {
            k: (tuple(v) if isinstance(v, list | tuple) else v)
            for k, v in options.items()
        }
        if "recompute" in fixed:
            fixed["recompute"] = tuple(as_recompute(r) for r in fixed["recompute"])
        if "precisions" in fixed:
            fixed["precisions"] = _as_precisions(fixed["precisions"])
        return cls(**fixed)

    def replace(self, **changes) -> PlanSpace:
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)


def _as_precisions(values) -> tuple[Precision, ...]:
    out = []
    for v in (values,) if isinstance(values, str) else values:
        try:
            out.append(Precision(str(v).lower()))
        except ValueError:
            raise PlanError(
                f"precision {v!r}: expected one of "
                f"{', '.join(x.value for x in Precision)}",
                column="precisions",
            ) from None
    if not out:
        raise PlanError("precisions is empty", column="precisions")
    return tuple(dict.fromkeys(out))


def space_precisions(space: PlanSpace, chip: ChipSpec | None) -> tuple[Precision, ...]:
    """The precisions of ``space`` that ``chip`` runs: FP8 only where the chip's dense
    FP8 peak is positive (0 or NaN in ``chips.csv``: no FP8 tensor cores). BF16 is
    kept when it is the only one listed."""
    precs = _as_precisions(space.precisions)
    if chip is None:
        return precs
    f8 = float(np.asarray(chip.peak_flop_per_s_fp8))
    keep = tuple(
        p for p in precs if p != Precision.FP8 or (math.isfinite(f8) and f8 > 0)
    )
    return keep or (Precision.BF16,)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _vpp_options(space: PlanSpace, layers: int, pp: int) -> list[int]:
    """Interleave depths tried with ``pp`` stages (see ``PlanSpace.vpp``): the
    divisors of L/pp, and where the split may be balanced around the embedding and
    the head (``pp_balance`` True or "auto"), those of (L + 2)/pp, each virtual
    stage then holding (L + 2)/(pp·v) slots (Megatron's
    ``--account-for-embedding/loss-in-pipeline-split``; e.g. 94 layers on pp = 8,
    vpp = 6)."""
    if space.vpp is not None:
        return list(space.vpp)
    if pp <= 1:
        return [1]
    opts = {1}
    if layers % pp == 0:
        opts.update(_divisors(layers // pp))
    if space.pp_balance is not False and (layers + 2) % pp == 0:
        opts.update(v for v in _divisors((layers + 2) // pp) if pp * v <= layers)
    return sorted(opts)


def enumerate_plans(
    workload: TransformerConfig,
    num_chips: int,
    chip: ChipSpec | None,
    space: PlanSpace | None = None,
) -> ParallelPlan:
    """Every valid plan of ``workload`` on ``num_chips`` chips, as one batched plan.

    The candidates are the product of tp, pp, cp over divisors of ``num_chips``
    (dp = num_chips/(tp·pp·cp)), the interleave depths of each pp
    (``PlanSpace.vpp``), ep over divisors of E, and the option lists of ``space``;
    the conditions of :func:`jaxcost.model.parallel.check_plan` are evaluated as numpy
    masks (memory with ``workload.memory_bytes`` on the whole batch at once,
    when ``chip`` is given).

    Args:
      workload: the model (concrete leaves).
      num_chips: number of chips.
      chip: the chip (HBM capacity, scale-up domain size) or None (no memory check,
        no scale-up limit unless ``space.max_tp``).
      space: the options (default ``PlanSpace()``).

    Returns:
      ``ParallelPlan`` with (P,) numpy float64 leaves, P ≥ 0, in a deterministic order.

    Raises:
      PlanError: ``num_chips`` < 1 or an invalid option.
    """
    s = PlanSpace() if space is None else space
    if not isinstance(s, PlanSpace):
        raise PlanError(
            f"space must be a PlanSpace, got {type(s).__name__}", column="space"
        )
    w = workload
    check_chip_count(num_chips)
    n = int(num_chips)
    if n != float(num_chips):
        raise PlanError(
            f"num_chips={num_chips!r}: expected a whole number", column="num_chips"
        )
    if n < 1:
        raise PlanError(f"num_chips={num_chips!r} must be >= 1", column="num_chips")
    max_tp = s.max_tp
    if max_tp is None and chip is not None and not s.allow_tp_beyond_scaleup:
        max_tp = float(chip.scaleup_domain_size)
    divs = _divisors(n)
    num_experts = int(round(float(w.num_experts)))
    cp_opts = divs if s.cp is None else [c for c in s.cp if n % c == 0]
    ep_opts = _divisors(num_experts) if s.ep is None else list(s.ep)
    rec_opts = [float(as_recompute(r).value) for r in s.recompute]
    # structural degrees first (small), then the cheap options
    layers = int(round(float(w.num_layers)))
    combos = [
        (t, p, c, v)
        for t, p, c in itertools.product(divs, divs, cp_opts)
        if n % (t * p * c) == 0
        and (s.tp is None or t in s.tp)
        and (s.pp is None or p in s.pp)
        and (s.dp is None or n // (t * p * c) in s.dp)
        for v in _vpp_options(s, layers, p)
    ]
    if not combos:
        return ParallelPlan(**{k: np.zeros((0,)) for k in PLAN_FIELDS})
    tpc = np.asarray(combos, dtype=float)
    grids = np.meshgrid(
        np.arange(len(combos)),
        np.asarray(ep_opts, float),
        np.asarray(s.mbs, float),
        np.asarray(s.zero_stages, float),
        np.asarray(rec_opts, float),
        np.asarray([1.0 if x else 0.0 for x in s.sp]),
        np.asarray(s.zero_groups, float),
        np.asarray([1.0 if x else 0.0 for x in s.recompute_lite]),
        indexing="ij",
    )
    idx, e_, b_, z_, r_, s_, zg_, rl_ = (g.ravel() for g in grids)
    t_, p_, c_, v_ = tpc[idx, 0], tpc[idx, 1], tpc[idx, 2], tpc[idx, 3]

    def const(flag: bool) -> np.ndarray:
        return np.full(idx.shape, 1.0 if flag else 0.0)

    p = {
        "dp": n / (t_ * p_ * c_),
        "tp": t_,
        "pp": p_,
        "cp": c_,
        "ep": e_,
        "vpp": v_,
        "mbs": b_,
        "zero": z_,
        "recompute": r_,
        "sp": s_,
        "flash_attn": const(s.flash_attn),
        "fused_a2a": const(s.fused_a2a),
        "tp_overlap": const(s.tp_overlap),
        "pp_balance": _balance_leaf(s.pp_balance, float(w.num_layers), p_, v_),
        "dp_overlap": const(s.dp_overlap),
        "fp8": const(False),  # the precision axis is added by the scorers
        # hybrid sharding only where something is sharded (ZeRO >= 1)
        "zero_group": np.where(z_ > 0.5, zg_, 0.0),
        "recompute_lite": rl_,
    }
    keep = np.ones(idx.shape, dtype=bool)
    keep &= (r_ < 1.5) | (rl_ < 0.5)  # cheap modules are moot under full recompute
    keep &= (z_ > 0.5) | (zg_ < 0.5)  # no shard group without ZeRO (no duplicates)
    if isinstance(s.pp_balance, str):
        # "auto": an uneven split is interleaved only where the embedding and head
        # slots make it even, (L + 2) = pp·vpp·slots
        keep &= (
            (p["pp_balance"] < 0.5)
            | (v_ < 1.5)
            | (np.mod(float(w.num_layers) + 2.0, p_ * v_) == 0)
        )
    # context parallelism splits the attention over the sequence with a fused
    # (flash-style) ring or all-gather kernel (Megatron-Core CP runs on Transformer
    # Engine's fused attention; Llama 3's CP on flash attention): an unfused attention
    # that materialises the T×T scores has no CP implementation
    keep &= (c_ < 1.5) | (p["flash_attn"] > 0.5)
    if chip is not None:
        # a TP group lies inside one scale-up domain or spans whole domains: a group
        # straddling a node boundary (tp = 3 on 8-chip nodes) would run at the
        # scale-out link, and frameworks place TP ranks node-aligned
        dom = max(float(chip.scaleup_domain_size), 1.0)
        keep &= (np.mod(dom, p["tp"]) == 0) | (np.mod(p["tp"], dom) == 0)
    for _, ok, _ in plan_conditions(w, p, float(n), max_tp=max_tp):
        keep &= ok
    p = {k: v[keep] for k, v in p.items()}
    if chip is not None and keep.any():
        _, ok, _ = memory_condition(w, p, chip, s.usable_hbm_frac)
        p = {k: v[ok] for k, v in p.items()}
    return ParallelPlan(**{k: np.ascontiguousarray(v) for k, v in p.items()})


def _balance_leaf(
    option: bool | str, layers: float, pp: np.ndarray, vpp: np.ndarray
) -> np.ndarray:
    """``pp_balance`` leaf of enumerated plans for the ``enumerate_plans`` option."""
    if isinstance(option, str):
        if option != "auto":
            raise PlanError(
                f"pp_balance={option!r}: expected True, False or 'auto'",
                column="pp_balance",
            )
        return uneven_layer_split(layers, pp, vpp).astype(float)
    return np.full(pp.shape, 1.0 if option else 0.0)
