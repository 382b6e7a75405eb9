"""The parallel plan record: how one training step is split over chips.

A plan splits ``num_chips = dp·tp·pp·cp`` chips (Megatron convention: expert
parallelism ``ep`` shards the experts *within* the dp·cp group, so ep divides dp·cp).

Symbols: d dp, t tp, p pp, c cp, e ep, v vpp (virtual stages per pipeline rank,
interleaved 1F1B), b mbs (micro-batch, sequences), z ZeRO stage (0-3), r recompute
(0 none, 1 selective, 2 full), sp sequence parallelism (1.0 on), flash_attn the
attention kernel (1.0 fused flash-style, 0.0 unfused: the T×T scores go through
HBM), fused_a2a the expert dispatcher (1.0 fused kernels, 0.0 NCCL all-to-all),
tp_overlap the TP communication (1.0 pipelined with the GEMMs, 0.0 not), pp_balance
the layer split over pipeline stages (1.0 balanced around the LM head, 0.0 uniform).
m = B/(d·b) is the number of micro-batches per step.

This module holds the record, its builder, batching helpers and the text form; it
imports no model so that :mod:`jaxcost.model.workload` can take plans without a cycle.
Validity lives in :mod:`jaxcost.model.parallel`, enumeration in
:mod:`jaxcost.search.space`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import PlanError

__all__ = [
    "Recompute",
    "PLAN_FIELDS",
    "ParallelPlan",
    "as_recompute",
    "num_chips",
    "stack_plans",
    "plan_at",
    "plan_to_str",
    "plan_from_str",
]


class Recompute(enum.Enum):
    """Activation recomputation: none, selective (attention core), full (per layer)."""

    NONE = 0
    SELECTIVE = 1
    FULL = 2


_RECOMPUTE_TAGS = {
    Recompute.NONE: "none",
    Recompute.SELECTIVE: "sel",
    Recompute.FULL: "full",
}
PLAN_FIELDS = (
    "dp",
    "tp",
    "pp",
    "cp",
    "ep",
    "vpp",
    "mbs",
    "zero",
    "recompute",
    "sp",
    "flash_attn",
    "fused_a2a",
    "tp_overlap",
    "pp_balance",
    "dp_overlap",
    "fp8",
    "zero_group",
    "recompute_lite",
)


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
      fp8: 1.0 when the linear layers' GEMMs run in FP8 (Transformer Engine recipes,
        DeepSeek-V3's fine-grained FP8); 0.0 at the run's precision (BF16 unless the
        caller passes ``precision="fp8"``). A plan dimension of the search (scored at
        the chip's FP8 peak, BF16 where the chip has none): the step time uses FP8
        where either this leaf or the caller's precision says so.
      zero_group: ZeRO/FSDP shard-group size g (hybrid sharding, PyTorch HSDP,
        DeepSpeed ZeRO++ hpZ, Megatron-FSDP's outer data-parallel groups): the sharded
        states are split over g ranks and replicated over the dp·cp/g groups, whose
        gradient shards are all-reduced once per step. 0 (default): one group of all
        dp·cp ranks.
      recompute_lite: 1.0 when the cheap modules are recomputed in the backward pass
        instead of stored: the norms (their outputs, the attention and MLP inputs)
        and the activation functions (their outputs, the inputs of the down
        projections) of the dense MLP and the experts. Megatron-Core
        ``--recompute-modules layernorm mlp_act moe_act``, DeepSeek-V3's recomputed
        RMSNorm and SwiGLU outputs (arXiv:2412.19437 §3.2.3, §3.3). Combines with
        ``recompute`` none or selective; moot under full recompute. 0.0: stored.
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
    fp8: jax.Array | float = 0.0
    zero_group: jax.Array | float = 0.0
    recompute_lite: jax.Array | float = 0.0

    @classmethod
    def create(
        cls,
        *,
        dp: int = 1,
        tp: int = 1,
        pp: int = 1,
        cp: int = 1,
        ep: int = 1,
        vpp: int = 1,
        mbs: int = 1,
        zero: int = 0,
        recompute: Recompute | int | str = Recompute.NONE,
        sp: bool = True,
        flash_attn: bool = True,
        fused_a2a: bool = False,
        tp_overlap: bool = False,
        pp_balance: bool = False,
        dp_overlap: bool = False,
        fp8: bool = False,
        zero_group: int = 0,
        recompute_lite: bool = False,
    ) -> ParallelPlan:
        """Validate concrete degrees and build a plan with float leaves.

        Raises:
          PlanError: a degree is not a positive integer, zero not in 0..3, or an
            unknown recompute value.
        """
        vals = {}
        for field, value in (
            ("dp", dp),
            ("tp", tp),
            ("pp", pp),
            ("cp", cp),
            ("ep", ep),
            ("vpp", vpp),
            ("mbs", mbs),
        ):
            vals[field] = _positive_int(field, value)
        try:
            z = float(zero)
        except (TypeError, ValueError):
            z = -1.0
        if z not in (0.0, 1.0, 2.0, 3.0):
            raise PlanError(f"zero={zero!r} must be 0, 1, 2 or 3", column="zero")
        rec = as_recompute(recompute)
        return cls(
            **{k: float(v) for k, v in vals.items()},
            zero=z,
            recompute=float(rec.value),
            sp=1.0 if sp else 0.0,
            flash_attn=1.0 if flash_attn else 0.0,
            fused_a2a=1.0 if fused_a2a else 0.0,
            tp_overlap=1.0 if tp_overlap else 0.0,
            pp_balance=1.0 if pp_balance else 0.0,
            dp_overlap=1.0 if dp_overlap else 0.0,
            fp8=1.0 if fp8 else 0.0,
            zero_group=float(_positive_int("zero_group", zero_group))
            if zero_group
            else 0.0,
            recompute_lite=1.0 if recompute_lite else 0.0,
        )


def _positive_int(field: str, value) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{field}={value!r} is not a number", column=field) from None
    if not math.isfinite(f) or f != round(f) or f < 1:
        raise PlanError(f"{field}={value!r} must be an integer >= 1", column=field)
    return int(round(f))


def as_recompute(value) -> Recompute:
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
    raise PlanError(
        f"recompute={value!r} is not one of none/selective/full (0/1/2)",
        column="recompute",
    )


def num_chips(plan: ParallelPlan) -> jax.Array:
    """Chips used by the plan: dp·tp·pp·cp."""
    return plan.dp * plan.tp * plan.pp * plan.cp


def stack_plans(plans: Sequence[ParallelPlan]) -> ParallelPlan:
    """Stack plans into one ``ParallelPlan`` with (P,) leaves."""
    if not plans:
        raise PlanError("stack_plans needs at least one plan", column="plans")
    return jax.tree.map(
        lambda *x: jnp.stack([jnp.asarray(v, dtype=float) for v in x]), *plans
    )


def plan_at(plans: ParallelPlan, i: int) -> ParallelPlan:
    """The i-th plan of a batched plan (scalar leaves)."""
    return jax.tree.map(lambda x: x[i], plans)


#: Plan-string suffixes of the on/off leaves: (field, suffix, whether the suffix means
#: on). A suffix is written only when the leaf differs from its default.
_SUFFIXES = (
    ("sp", "-nosp", False),
    ("flash_attn", "-unfused", False),
    ("fused_a2a", "-fa2a", True),
    ("tp_overlap", "-tpo", True),
    ("pp_balance", "-ppb", True),
    ("dp_overlap", "-dpo", True),
    ("fp8", "-fp8", True),
    ("recompute_lite", "-rlite", True),
)


def plan_to_str(plan: ParallelPlan) -> str:
    """Compact text form, e.g. ``"dp8-tp4-pp2-cp1-ep1-vpp1-mbs1-z1-rsel"`` (``-nosp``
    appended without sequence parallelism, ``-unfused`` with unfused attention,
    ``-fa2a`` with a fused expert dispatcher, ``-tpo`` with TP communication pipelined
    with the GEMMs, ``-ppb`` with pipeline stages balanced around the LM head, ``-dpo``
    with the gradient reduction overlapped bucket by bucket, ``-fp8`` with the linear
    layers' GEMMs in FP8, ``-rlite`` with norms and activation functions recomputed)."""
    v = {k: float(np.asarray(getattr(plan, k))) for k in PLAN_FIELDS}
    rec = _RECOMPUTE_TAGS[Recompute(int(round(v["recompute"])))]
    s = "-".join(
        f"{k}{int(round(v[k]))}" for k in ("dp", "tp", "pp", "cp", "ep", "vpp", "mbs")
    )
    s += f"-z{int(round(v['zero']))}-r{rec}"
    if v["zero_group"] > 0.5:
        s += f"-zg{int(round(v['zero_group']))}"
    return s + "".join(
        suffix for field, suffix, on in _SUFFIXES if (v[field] > 0.5) == on
    )


_PLAN_RE = re.compile(
    r"^dp(\d+)-tp(\d+)-pp(\d+)-cp(\d+)-ep(\d+)-vpp(\d+)-mbs(\d+)-z(\d)-r(none|sel|full)"
    r"(?:-zg(\d+))?"
    + "".join(f"({suffix})?" for _, suffix, _ in _SUFFIXES)
    + "$"
)


def plan_from_str(s: str) -> ParallelPlan:
    """Inverse of :func:`plan_to_str`.

    Raises:
      PlanError: the text does not match ``dpN-tpN-ppN-cpN-epN-vppN-mbsN-zN-rTAG``.
    """
    match = _PLAN_RE.match(s.strip())
    if not match:
        raise PlanError(
            f"'{s}' is not a plan string like 'dp8-tp4-pp2-cp1-ep1-vpp1-mbs1-z1-rsel'",
            column="plan",
        )
    dp, tp, pp, cp, ep, vpp, mbs, z = (int(x) for x in match.groups()[:8])
    rec = {tag: r for r, tag in _RECOMPUTE_TAGS.items()}[match.group(9)]
    flags = {
        field: (match.group(11 + j) is not None) == on
        for j, (field, _, on) in enumerate(_SUFFIXES)
    }
    zg = int(match.group(10)) if match.group(10) else 0
    return ParallelPlan.create(
        dp=dp,
        tp=tp,
        pp=pp,
        cp=cp,
        ep=ep,
        vpp=vpp,
        mbs=mbs,
        zero=z,
        recompute=rec,
        zero_group=zg,
        **flags,
    )
