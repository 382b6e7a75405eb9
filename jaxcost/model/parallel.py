"""Parallel plans: their record, validity checks, and enumeration of all valid plans.

A plan splits ``num_chips = dp·tp·pp·cp`` chips (Megatron convention: expert
parallelism ``ep`` shards the experts *within* the dp·cp group, so ep divides dp·cp).

Symbols: d dp, t tp, p pp, c cp, e ep, v vpp (virtual stages per pipeline rank,
interleaved 1F1B), b mbs (micro-batch, sequences), z ZeRO stage (0-3), r recompute
(0 none, 1 selective, 2 full), sp sequence parallelism (1.0 on), flash_attn the attention
kernel (1.0 fused flash-style, 0.0 unfused: the T×T scores go through HBM), fused_a2a
the expert dispatcher (1.0 fused kernels, 0.0 NCCL all-to-all), tp_overlap the TP
communication (1.0 pipelined with the GEMMs, 0.0 not), pp_balance the layer split over
pipeline stages (1.0 balanced around the LM head, 0.0 uniform). m = B/(d·b) is the
number of micro-batches per step.

Validity conditions live in one place (:func:`_conditions`), evaluated with numpy on
arrays of candidate plans: :func:`check_plan` reports the first violated one for a
single plan, :func:`enumerate_plans` keeps the plans that violate none.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ChipSpec
from jaxcost.units import GIB
from jaxcost.model.workload import TransformerConfig, memory_bytes

#: Default fraction of HBM capacity usable by the training job.
USABLE_HBM_FRAC = 0.95


class Recompute(enum.Enum):
    """Activation recomputation: none, selective (attention core), full (per layer)."""

    NONE = 0
    SELECTIVE = 1
    FULL = 2


_RECOMPUTE_TAGS = {Recompute.NONE: "none", Recompute.SELECTIVE: "sel",
                   Recompute.FULL: "full"}
_FIELDS = ("dp", "tp", "pp", "cp", "ep", "vpp", "mbs", "zero", "recompute", "sp",
           "flash_attn", "fused_a2a", "tp_overlap", "pp_balance", "dp_overlap")


@struct.dataclass
class ParallelPlan:
    """How one training step is split over chips. Every field is a float leaf.

    Attributes:
      dp: data-parallel degree.
      tp: tensor-parallel degree.
      pp: pipeline-parallel degree (stages).
      cp: context-parallel degree (sequence split for attention).
      ep: expert-parallel degree (within the dp·cp group).
      vpp: virtual pipeline stages per rank (1 = plain 1F1B).
      mbs: micro-batch size, sequences.
      zero: ZeRO stage 0, 1, 2 or 3 (sharding over dp·cp).
      recompute: ``Recompute`` value as a float (0, 1, 2).
      sp: 1.0 with sequence parallelism, 0.0 without.
      flash_attn: 1.0 for a fused (flash-style) attention kernel that never writes the
        T×T score matrix and skips the causally masked blocks; 0.0 for the unfused
        attention of frameworks before 2023 (batched GEMMs for Q·Kᵀ and A·V over the
        full square, scale/mask/softmax/dropout as separate passes over the scores in
        HBM, and the scores stored as activations). A software choice, like recompute.
      fused_a2a: 1.0 when the MoE dispatch and combine use fused kernels that drive
        the scale-up and scale-out links at once (DeepEP, HybridEP); 0.0 for the
        framework's NCCL all-to-all (links used one after the other).
      tp_overlap: 1.0 when the framework splits the TP all-gather / reduce-scatter into
        chunks pipelined with the GEMMs (Transformer Engine userbuffers
        ``--tp-comm-overlap``, MegaScale's overlap); 0.0 when they run between the
        GEMMs (overlap only incidental). Fitted overlap fractions for each.
      pp_balance: 1.0 when the layers are split over the pipeline stages with the
        embedding and the LM head each taking one layer's place, so their stages hold
        one layer fewer (Megatron ``--account-for-embedding/loss-in-pipeline-split``
        or ``--decoder-first/last-pipeline-num-layers``, DeepSpeed's partition method
        ``type:transformer|embedding``); 0.0 for L/p layers on every stage, the head
        on top of the last one's.
      dp_overlap: 1.0 when the framework reduces the gradients bucket by bucket while
        the backward pass still runs and gathers the parameters during the next
        forward (Megatron-Core ``--overlap-grad-reduce --overlap-param-gather``, the
        NeMo / Megatron-Bridge recipe default, MegaScale, FSDP); 0.0 when the
        reduction mostly follows the backward pass. Fitted overlap fractions for each.
    """

    dp: jax.Array | float
    tp: jax.Array | float
    pp: jax.Array | float
    cp: jax.Array | float
    ep: jax.Array | float
    vpp: jax.Array | float
    mbs: jax.Array | float
    zero: jax.Array | float
    recompute: jax.Array | float
    sp: jax.Array | float
    flash_attn: jax.Array | float = 1.0
    fused_a2a: jax.Array | float = 0.0
    tp_overlap: jax.Array | float = 0.0
    pp_balance: jax.Array | float = 0.0
    dp_overlap: jax.Array | float = 0.0

    @classmethod
    def create(cls, *, dp: int = 1, tp: int = 1, pp: int = 1, cp: int = 1,
               ep: int = 1, vpp: int = 1, mbs: int = 1, zero: int = 0,
               recompute: Recompute | int | str = Recompute.NONE,
               sp: bool = True, flash_attn: bool = True,
               fused_a2a: bool = False, tp_overlap: bool = False,
               pp_balance: bool = False, dp_overlap: bool = False) -> ParallelPlan:
        """Validate concrete degrees and build a plan with float leaves.

        Raises:
          PlanError: a degree is not a positive integer, zero not in 0..3, or an
            unknown recompute value.
        """
        vals = {}
        for field, value in (("dp", dp), ("tp", tp), ("pp", pp), ("cp", cp),
                             ("ep", ep), ("vpp", vpp), ("mbs", mbs)):
            vals[field] = _positive_int(field, value)
        try:
            z = float(zero)
        except (TypeError, ValueError):
            z = -1.0
        if z not in (0.0, 1.0, 2.0, 3.0):
            raise PlanError(f"zero={zero!r} must be 0, 1, 2 or 3", column="zero")
        rec = _as_recompute(recompute)
        return cls(**{k: float(v) for k, v in vals.items()}, zero=z,
                   recompute=float(rec.value), sp=1.0 if sp else 0.0,
                   flash_attn=1.0 if flash_attn else 0.0,
                   fused_a2a=1.0 if fused_a2a else 0.0,
                   tp_overlap=1.0 if tp_overlap else 0.0,
                   pp_balance=1.0 if pp_balance else 0.0,
                   dp_overlap=1.0 if dp_overlap else 0.0)


def _positive_int(field: str, value) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{field}={value!r} is not a number", column=field) from None
    if not math.isfinite(f) or f != round(f) or f < 1:
        raise PlanError(f"{field}={value!r} must be an integer >= 1", column=field)
    return int(round(f))


def _as_recompute(value) -> Recompute:
    if isinstance(value, Recompute):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        for rec, tag in _RECOMPUTE_TAGS.items():
            if low in (tag, rec.name.lower()):
                return rec
    else:
        try:
            return Recompute(int(value))
        except (TypeError, ValueError):
            pass
    raise PlanError(f"recompute={value!r} is not one of none/selective/full (0/1/2)",
                    column="recompute")


def num_chips(plan: ParallelPlan) -> jax.Array:
    """Chips used by the plan: dp·tp·pp·cp."""
    return plan.dp * plan.tp * plan.pp * plan.cp


def num_microbatches(w: TransformerConfig, plan: ParallelPlan) -> jax.Array:
    """Micro-batches per step per pipeline: m = B/(dp·mbs)."""
    return w.global_batch_seqs / (plan.dp * plan.mbs)


# ------------------------------------------------------------------- conditions

def _divides(a, b):
    """Elementwise: integer a divides integer b (numpy float arrays)."""
    return np.mod(b, a) == 0


def _conditions(w: TransformerConfig, p: dict, n_chips: float, *,
                max_tp: float | None):
    """Validity conditions as (name, mask, message(i)) triples over numpy arrays.

    ``p`` maps plan field -> numpy float array (P,). Masks are True where valid.
    """
    N = float(w.num_heads)
    K = float(w.num_kv_heads)
    L = float(w.num_layers)
    T = float(w.seq_len)
    B = float(w.global_batch_seqs)
    E = float(w.num_experts)
    dp, tp, pp, cp, ep, vpp, mbs = (p[k] for k in ("dp", "tp", "pp", "cp", "ep",
                                                    "vpp", "mbs"))
    chips = dp * tp * pp * cp
    m = B / (dp * mbs)
    g = lambda a, i: f"{a[i]:g}"  # noqa: E731
    conds = [
        ("chips", chips == n_chips,
         lambda i: f"dp·tp·pp·cp = {g(dp, i)}·{g(tp, i)}·{g(pp, i)}·{g(cp, i)} = "
                   f"{g(chips, i)} != num_chips={n_chips:g}"),
        ("tp_heads", _divides(tp, N),
         lambda i: f"tp={g(tp, i)} does not divide num_heads={N:g}"),
        ("tp_kv_heads", _divides(tp, K) | _divides(K, tp),
         lambda i: f"tp={g(tp, i)} and num_kv_heads={K:g}: neither divides the other"),
    ]
    if max_tp is not None:
        conds.append(("tp_domain", tp <= max_tp,
                      lambda i: f"tp={g(tp, i)} exceeds max_tp={max_tp:g} "
                                f"(scale-up domain)"))
    # a balanced split (pp_balance) gives stages unequal whole numbers of layers: it
    # needs only one layer per virtual stage
    bal_ok = ((np.asarray(p.get("pp_balance", np.zeros_like(pp))) > 0.5)
              & (pp * vpp <= L))
    conds += [
        ("pp_layers", _divides(pp, L) | bal_ok,
         lambda i: f"pp={g(pp, i)} does not divide num_layers={L:g}"),
        ("vpp_pp", (vpp == 1) | (pp > 1),
         lambda i: f"vpp={g(vpp, i)} > 1 needs pp > 1 (pp={g(pp, i)})"),
        ("vpp_layers", (vpp == 1) | _divides(vpp, L / pp) | bal_ok,
         lambda i: f"vpp={g(vpp, i)} does not divide layers per stage "
                   f"num_layers/pp={L / pp[i]:g}"),
        ("cp_seq", _divides(cp, T),
         lambda i: f"cp={g(cp, i)} does not divide seq_len={T:g}"),
        ("ep_experts", _divides(ep, E),
         lambda i: f"ep={g(ep, i)} does not divide num_experts={E:g}"),
        ("ep_dpcp", _divides(ep, dp * cp),
         lambda i: f"ep={g(ep, i)} does not divide dp·cp={g(dp * cp, i)}"),
        ("batch", _divides(dp * mbs, B),
         lambda i: f"dp·mbs={g(dp * mbs, i)} does not divide "
                   f"global_batch_seqs={B:g}"),
        ("vpp_microbatches", (vpp == 1) | _divides(pp, m),
         lambda i: f"vpp={g(vpp, i)} > 1 needs num_microbatches={m[i]:g} divisible "
                   f"by pp={g(pp, i)}"),
    ]
    return conds


def _memory_condition(w, p: dict, chip: ChipSpec, usable_hbm_frac: float):
    plan = ParallelPlan(**{k: jnp.asarray(v) for k, v in p.items()})
    total = np.asarray(memory_bytes(w, plan).total)
    cap = float(chip.hbm_capacity_bytes) * usable_hbm_frac
    return ("memory", total <= cap,
            lambda i: f"memory {total[i] / GIB:.1f} GiB per chip exceeds "
                      f"{usable_hbm_frac:g} × hbm {float(chip.hbm_capacity_bytes) / GIB:.1f}"
                      f" GiB of {chip.key}")


def check_plan(w: TransformerConfig, plan: ParallelPlan, num_chips: int,
               chip: ChipSpec | None = None, *, max_tp: float | None = None,
               usable_hbm_frac: float = USABLE_HBM_FRAC) -> None:
    """Raise ``PlanError`` if ``plan`` is invalid for model ``w`` on ``num_chips``.

    Conditions (in this order): dp·tp·pp·cp = num_chips; tp | N; tp | K or K | tp (KV
    heads replicated); tp ≤ max_tp (if given); pp | L; vpp > 1 needs pp > 1,
    vpp | L/pp (with ``pp_balance``: only pp·vpp ≤ L) and pp | m; cp | T; ep | E;
    ep | dp·cp; dp·mbs | B; and, when ``chip`` is given, peak memory
    (``workload.memory_bytes``) ≤ usable_hbm_frac × HBM.

    Raises:
      PlanError: one line naming the violated condition and the values.
    """
    p = {k: np.atleast_1d(np.asarray(getattr(plan, k), dtype=float)) for k in _FIELDS}
    if any(v.shape != (1,) for v in p.values()):
        raise PlanError("check_plan takes one plan (scalar leaves); "
                        "use enumerate_plans for batches", column="plan")
    conds = _conditions(w, p, float(num_chips), max_tp=max_tp)
    for name, ok, msg in conds:
        if not ok[0]:
            raise PlanError(msg(0), row=f"model '{w.name}'", column=name)
    if chip is not None:
        name, ok, msg = _memory_condition(w, p, chip, usable_hbm_frac)
        if not ok[0]:
            raise PlanError(msg(0), row=f"model '{w.name}'", column=name)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def enumerate_plans(
    w: TransformerConfig,
    num_chips: int,
    chip: ChipSpec | None,
    *,
    max_tp: float | None = None,
    allow_tp_beyond_scaleup: bool = False,
    zero_stages: Sequence[int] = (0, 1, 2, 3),
    recompute: Sequence[Recompute] = (Recompute.NONE, Recompute.SELECTIVE,
                                      Recompute.FULL),
    mbs: Sequence[int] = (1, 2, 4, 8),
    vpp: Sequence[int] = (1, 2, 4),
    cp: Sequence[int] | None = (1, 2, 4, 8),
    ep: Sequence[int] | None = None,
    sp: Sequence[bool] = (True,),
    flash_attn: bool = True,
    fused_a2a: bool = False,
    tp_overlap: bool = False,
    pp_balance: bool | str = False,
    dp_overlap: bool = False,
    usable_hbm_frac: float = USABLE_HBM_FRAC,
) -> ParallelPlan:
    """Every valid plan of model ``w`` on ``num_chips`` chips, as one batched plan.

    The candidates are the product of tp, pp, cp over divisors of ``num_chips``
    (dp = num_chips/(tp·pp·cp)), ep over divisors of E, and the option lists; the
    conditions of :func:`check_plan` are evaluated as numpy masks (memory with
    ``workload.memory_bytes`` on the whole batch at once, when ``chip`` is given).

    Args:
      w: the model (concrete leaves).
      num_chips: number of chips.
      chip: the chip (HBM capacity, scale-up domain size) or None (no memory check,
        no scale-up limit unless ``max_tp``).
      max_tp: largest tp; default the chip's scale-up domain size.
      allow_tp_beyond_scaleup: if True, no default tp limit.
      zero_stages, recompute, mbs, vpp, cp, ep, sp: options (cp None: all divisors;
        ep None: all divisors of E).
      flash_attn: attention kernel of every plan (fused by default).
      fused_a2a: expert dispatcher of every plan (NCCL all-to-all by default).
      tp_overlap: TP communication pipelined with the GEMMs in every plan (off by
        default).
      pp_balance: layer split over the pipeline stages: False (default), L/p layers
        per stage (pp·vpp must divide L); True, the embedding and head take one
        layer's place each (uneven whole numbers of layers, pp·vpp ≤ L); "auto",
        uniform where pp·vpp divides L and balanced where it does not, the uneven
        splits without interleaving (vpp = 1; a 61-, 94- or 126-layer model gets its
        pp 8 or 16 plans, as the frameworks run them, at 5–8 times the plans of a
        prime layer count: mind ``max_plans`` budgets).
      dp_overlap: gradient reduction overlapped with the backward pass bucket by
        bucket in every plan (off by default).
      usable_hbm_frac: fraction of HBM the plan may use.

    Returns:
      ``ParallelPlan`` with (P,) numpy float64 leaves, P ≥ 0, in a deterministic order.
    """
    n = int(num_chips)
    if n < 1:
        raise PlanError(f"num_chips={num_chips!r} must be >= 1", column="num_chips")
    if max_tp is None and chip is not None and not allow_tp_beyond_scaleup:
        max_tp = float(chip.scaleup_domain_size)
    divs = _divisors(n)
    E = int(round(float(w.num_experts)))
    cp_opts = divs if cp is None else [c for c in cp if n % c == 0]
    ep_opts = _divisors(E) if ep is None else list(ep)
    rec_opts = [float(_as_recompute(r).value) for r in recompute]
    # structural degrees first (small), then the cheap options
    combos = [(t, p, c) for t, p, c in itertools.product(divs, divs, cp_opts)
              if n % (t * p * c) == 0]
    if not combos:
        combos = [(1, 1, 1)]
    tpc = np.asarray(combos, dtype=float)
    grids = np.meshgrid(np.arange(len(combos)), np.asarray(ep_opts, float),
                        np.asarray(vpp, float), np.asarray(mbs, float),
                        np.asarray(zero_stages, float), np.asarray(rec_opts, float),
                        np.asarray([1.0 if s else 0.0 for s in sp]), indexing="ij")
    idx, e_, v_, b_, z_, r_, s_ = (g.ravel() for g in grids)
    t_, p_, c_ = tpc[idx, 0], tpc[idx, 1], tpc[idx, 2]
    p = {"dp": n / (t_ * p_ * c_), "tp": t_, "pp": p_, "cp": c_, "ep": e_,
         "vpp": v_, "mbs": b_, "zero": z_, "recompute": r_, "sp": s_,
         "flash_attn": np.full(idx.shape, 1.0 if flash_attn else 0.0),
         "fused_a2a": np.full(idx.shape, 1.0 if fused_a2a else 0.0),
         "tp_overlap": np.full(idx.shape, 1.0 if tp_overlap else 0.0),
         "pp_balance": _balance_leaf(pp_balance, float(w.num_layers), p_, v_),
         "dp_overlap": np.full(idx.shape, 1.0 if dp_overlap else 0.0)}
    keep = np.ones(idx.shape, dtype=bool)
    if isinstance(pp_balance, str):  # "auto": uneven splits only without interleaving
        keep &= (p["pp_balance"] < 0.5) | (v_ < 1.5)
    for _, ok, _ in _conditions(w, p, float(n), max_tp=max_tp):
        keep &= ok
    p = {k: v[keep] for k, v in p.items()}
    if chip is not None and keep.any():
        _, ok, _ = _memory_condition(w, p, chip, usable_hbm_frac)
        p = {k: v[ok] for k, v in p.items()}
    return ParallelPlan(**{k: np.ascontiguousarray(v) for k, v in p.items()})


def _balance_leaf(option: bool | str, layers: float, pp: np.ndarray, vpp: np.ndarray
                  ) -> np.ndarray:
    """``pp_balance`` leaf of enumerated plans for the ``enumerate_plans`` option."""
    if isinstance(option, str):
        if option != "auto":
            raise PlanError(f"pp_balance={option!r}: expected True, False or 'auto'",
                            column="pp_balance")
        return uneven_layer_split(layers, pp, vpp).astype(float)
    return np.full(pp.shape, 1.0 if option else 0.0)


def uneven_layer_split(layers, pp, vpp) -> np.ndarray:
    """Whether ``layers`` cannot be split evenly over pp > 1 stages of vpp chunks each
    (numpy, broadcasting): such a run must give its stages unequal numbers of layers."""
    pp = np.asarray(pp, dtype=float)
    return (np.mod(np.asarray(layers, dtype=float), pp * np.asarray(vpp, dtype=float))
            != 0) & (pp > 1)


def stack_plans(plans: Sequence[ParallelPlan]) -> ParallelPlan:
    """Stack plans into one ``ParallelPlan`` with (P,) leaves."""
    if not plans:
        raise PlanError("stack_plans needs at least one plan", column="plans")
    return jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v, dtype=float) for v in x]),
                        *plans)


def plan_at(plans: ParallelPlan, i: int) -> ParallelPlan:
    """The i-th plan of a batched plan (scalar leaves)."""
    return jax.tree.map(lambda x: x[i], plans)


#: Plan-string suffixes of the on/off leaves: (field, suffix, whether the suffix means
#: on). A suffix is written only when the leaf differs from its default.
_SUFFIXES = (("sp", "-nosp", False), ("flash_attn", "-unfused", False),
             ("fused_a2a", "-fa2a", True), ("tp_overlap", "-tpo", True),
             ("pp_balance", "-ppb", True), ("dp_overlap", "-dpo", True))


def plan_to_str(plan: ParallelPlan) -> str:
    """Compact text form, e.g. ``"dp8-tp4-pp2-cp1-ep1-vpp1-mbs1-z1-rsel"`` (``-nosp``
    appended without sequence parallelism, ``-unfused`` with unfused attention,
    ``-fa2a`` with a fused expert dispatcher, ``-tpo`` with TP communication pipelined
    with the GEMMs, ``-ppb`` with pipeline stages balanced around the LM head, ``-dpo``
    with the gradient reduction overlapped bucket by bucket)."""
    v = {k: float(np.asarray(getattr(plan, k))) for k in _FIELDS}
    rec = _RECOMPUTE_TAGS[Recompute(int(round(v["recompute"])))]
    s = "-".join(f"{k}{int(round(v[k]))}" for k in ("dp", "tp", "pp", "cp", "ep",
                                                     "vpp", "mbs"))
    s += f"-z{int(round(v['zero']))}-r{rec}"
    return s + "".join(suffix for field, suffix, on in _SUFFIXES
                       if (v[field] > 0.5) == on)


_PLAN_RE = re.compile(
    r"^dp(\d+)-tp(\d+)-pp(\d+)-cp(\d+)-ep(\d+)-vpp(\d+)-mbs(\d+)-z(\d)-r(none|sel|full)"
    + "".join(f"({suffix})?" for _, suffix, _ in _SUFFIXES) + "$")


def plan_from_str(s: str) -> ParallelPlan:
    """Inverse of :func:`plan_to_str`.

    Raises:
      PlanError: the text does not match ``dpN-tpN-ppN-cpN-epN-vppN-mbsN-zN-rTAG``.
    """
    match = _PLAN_RE.match(s.strip())
    if not match:
        raise PlanError(f"'{s}' is not a plan string like "
                        "'dp8-tp4-pp2-cp1-ep1-vpp1-mbs1-z1-rsel'", column="plan")
    dp, tp, pp, cp, ep, vpp, mbs, z = (int(x) for x in match.groups()[:8])
    rec = {tag: r for r, tag in _RECOMPUTE_TAGS.items()}[match.group(9)]
    flags = {field: (match.group(10 + j) is not None) == on
             for j, (field, _, on) in enumerate(_SUFFIXES)}
    return ParallelPlan.create(dp=dp, tp=tp, pp=pp, cp=cp, ep=ep, vpp=vpp, mbs=mbs,
                               zero=z, recompute=rec, **flags)
