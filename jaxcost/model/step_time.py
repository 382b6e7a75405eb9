"""One training step: compute, exposed communication per axis, bubble, optimizer.

For a homogeneous cluster and one plan (d dp, t tp, p pp, c cp, e ep, v vpp, b mbs):

  per layer, per micro-batch, per chip (ops of ``workload.layer_ops``, times of
  ``roofline.op_time``):
    t_fwd   = sum_k op_time_k + t_fix            t_bwd = 2 sum_k op_time_k + t_fix
    (t_fix = layer_overhead_s + moe_layer_overhead_s · share of MoE layers)
    t_rec   = t_fwd (full), attention-core ops + t_fix (selective), 0 (none)
    t_layer = t_fwd + t_bwd + t_rec
  the attention core executes half of its full-count FLOP with a causal flash-style
  kernel (the full square as batched GEMMs, plus the score passes through HBM, when
  unfused) and runs at the BF16 peak; the other GEMMs run at the peak of ``precision``;
  expert GEMMs are grouped: n_g = E/e + E_s GEMMs of 1/n_g the size each
  exposed communication per layer (1 - overlap) * t_comm, with
    TP: 4 collectives of X = tp_bytes/4 (AG/RS, or AR = RS + AG) forward, again in the
        backward and in a full recompute: (2 + [full]) * 4 * AG(X, t)
    CP: AG of K, V forward, RS + AG backward, AG again when recomputing: (3 + [rec])
    EP: dispatch + combine all-to-all forward, the same backward, again in a full
        recompute: (2 + [full]) * A2A(ep_bytes, e)
  stage time per micro-batch: t_stage = (L/p)(t_layer + exposed) + t_head (last stage)
    + exposed PP send/recv 2 v * P2P(pp_bytes)  (only when p > 1); with stages
    balanced around the head (``plan.pp_balance``: embedding and head take one layer's
    place each, (L + 2)/p places per stage, x = t_layer + exposed) the head term is
    (2/p - 1) x + max(x [p > 2], t_head)
  pipeline (1F1B, interleaved): (m + (p - 1)/v) * t_stage, m = B / (d b);
    bubble = (p - 1)/v * t_stage
  DP: gradients all-reduced over the d*c ranks that replicate them (ZeRO 1/2:
    reduce-scatter + all-gather, the same cost); ZeRO-3: for each of the m micro-batches
    a reduce-scatter of its gradients + the all-gathers of ``zero3_param_bytes`` (the
    chip holds only its shards, so DeepSpeed ZeRO-3 and FSDP gather the weights for
    every micro-batch's forward and backward); exposed (1 - overlap_dp), overlap_dp the
    bucketed fraction when ``plan.dp_overlap`` (reduction launched bucket by bucket
    during the backward pass), the plain one otherwise. Routed-expert
    gradients are reduced over d*c/e ranks. When d = 1 the reduction over the cp ranks
    is reported in ``cp_comm_s`` (so ``dp_comm_s`` is exactly 0).
  optimizer: 2 (weights + grads + optimizer states) bytes / (W_hbm e_opt)
  total = (pipeline + DP + optimizer) (1 + overhead_frac), and never below the ideal
  time model FLOP / (chips C) — so MFU <= 1 by construction.

Group placement follows the Megatron rank order (tp innermost, then cp, dp, pp
outermost): a group whose members are ``stride`` ranks apart has
clip(domain/stride, 1, n) members per scale-up domain
(``collectives.ranks_per_domain``).

Symbols: L layers, B global batch (sequences), T seq len, X one activation tensor of a
micro-batch on a chip (bytes), C peak FLOP/s, W_hbm HBM bytes/s.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import PlanError
from jaxcost.model.collectives import (
    all_gather_time,
    all_reduce_time,
    all_to_all_time,
    ranks_per_domain,
    reduce_scatter_time,
    send_recv_time,
)
from jaxcost.model.hardware import (
    ChipSpec,
    ClusterSpec,
    Precision,
    check_chip_count,
)
from jaxcost.model.numerics import pow2_scale
from jaxcost.model.parallel import USABLE_HBM_FRAC
from jaxcost.model.params import CostParams, PhysicalParams, physical
from jaxcost.model.plan import ParallelPlan
from jaxcost.model.roofline import OpKind, op_time, peak_flop_per_s, smooth_max
from jaxcost.model.workload import (
    ATTN_CORE_MASK,
    LAYER_OP_NAMES,
    TransformerConfig,
    comm_volumes,
    head_ops,
    layer_ops,
    lite_recompute_mask,
    memory_bytes,
    model_flop_per_token,
    moe_layer_fraction,
    param_count,
    recompute_flop_frac,
    shard_group,
)

#: Rebalancing iterations of the batch shares of heterogeneous data-parallel groups.
_HETERO_BALANCE_ITERS = 3
#: Sharpness of the logistic ``fits_in_hbm`` indicator (per unit of memory / capacity).
_FIT_SHARPNESS = 50.0
#: Share of the full-count attention-core FLOP that a causal flash-attention kernel
#: executes (blocks above the diagonal are skipped; structural, not fitted).
CAUSAL_ATTN_WORK_FRAC = 0.5
#: Ops of ``workload.LAYER_OP_NAMES`` that are grouped expert GEMMs.
_EXPERT_GEMM_MASK = np.asarray([n in ("moe_up", "moe_down") for n in LAYER_OP_NAMES])
#: p-norm sharpness of the balanced pipeline's critical stage (a middle stage vs the
#: head's stage; 2^(1/16) - 1 = 4 % above the max where the two are equal).
_BALANCE_SHARPNESS = 16.0
#: Sharpness of the softmax-weighted maximum over heterogeneous groups (relative).
_GROUP_MAX_SHARPNESS = 20.0


@struct.dataclass
class StepTime:
    """Predicted time of one training step and its parts (per step, seconds).

    Attributes:
      compute_s: forward + backward + recompute of all micro-batches on the slowest
        stage (no communication, no bubble).
      tp_comm_s, cp_comm_s, ep_comm_s, pp_comm_s, dp_comm_s: exposed communication.
      bubble_s: pipeline fill and drain, (p - 1)/v stage times.
      optimizer_s: optimizer step.
      overhead_s: non-modelled overhead (``overhead_frac`` of the rest).
      total_s: step time, s.
      memory_bytes: peak memory per chip (first stage), bytes.
      fits_in_hbm: smooth indicator (logistic) that memory fits the usable HBM.
      tokens_per_s_per_chip: trained tokens per second per chip.
      mfu: model FLOP utilisation (model FLOP without recompute / peak).
      hfu: hardware FLOP utilisation (recompute counted).
    """

    compute_s: jax.Array
    tp_comm_s: jax.Array
    cp_comm_s: jax.Array
    ep_comm_s: jax.Array
    pp_comm_s: jax.Array
    dp_comm_s: jax.Array
    bubble_s: jax.Array
    optimizer_s: jax.Array
    overhead_s: jax.Array
    total_s: jax.Array
    memory_bytes: jax.Array
    fits_in_hbm: jax.Array
    tokens_per_s_per_chip: jax.Array
    mfu: jax.Array
    hfu: jax.Array


class _Parts(NamedTuple):
    """Per-chip-type pieces of a step (internal)."""

    t_layer: jax.Array  # compute per layer per micro-batch (fwd + bwd + recompute)
    tp_layer: jax.Array  # exposed TP comm per layer per micro-batch
    cp_layer: jax.Array
    ep_layer: jax.Array
    t_head: jax.Array  # head ops fwd + bwd per micro-batch
    pp_mb: jax.Array  # exposed PP send/recv per micro-batch per stage
    dp_s: jax.Array  # exposed gradient reduction per step, dp axis
    cpgrad_s: jax.Array  # exposed gradient reduction per step when dp == 1
    opt_s: jax.Array
    mem: jax.Array
    cap: jax.Array


def gemm_peak_flop_per_s(chip: ChipSpec, precision) -> jax.Array:
    """Peak FLOP/s of the linear layers' GEMMs at the run's ``precision``.

    ``precision`` is "bf16", "fp8" (static), or a numeric flag (traced; > 0.5 means
    FP8), so that rows of different precision can share one vmapped evaluation. FP8
    falls back to BF16 on chips without an FP8 peak.
    """
    if isinstance(precision, str):
        return peak_flop_per_s(chip, precision=precision)
    f8 = peak_flop_per_s(chip, precision="fp8")
    return jnp.where(jnp.asarray(precision) > 0.5, f8,
                     jnp.asarray(chip.peak_flop_per_s_bf16))


def run_precision(precision, plan: ParallelPlan):
    """The GEMM precision a plan runs at: FP8 where the caller's ``precision`` says
    so ("fp8", or a numeric flag > 0.5) or the plan's ``fp8`` leaf is set, else BF16.

    Returns "fp8" (static) when the caller's precision is the text "fp8", otherwise a
    numeric flag (1 = FP8) for :func:`gemm_peak_flop_per_s`.
    """
    if isinstance(precision, str):
        if Precision(precision.lower()) == Precision.FP8:
            return Precision.FP8.value
        precision = 0.0
    return jnp.maximum(jnp.asarray(precision, dtype=jnp.result_type(float)),
                       jnp.asarray(plan.fp8))


def _parts(phys: PhysicalParams, chip: ChipSpec, workload: TransformerConfig,
           plan: ParallelPlan, precision) -> _Parts:
    ops = layer_ops(workload, plan)
    is_flash = ops.kind == OpKind.ATTENTION
    # The attention core runs in BF16 in FP8 training recipes (only the linear layers'
    # GEMMs are FP8), and a causal flash-attention kernel skips the masked upper
    # triangle, so it executes CAUSAL_ATTN_WORK_FRAC of the full-count FLOP of
    # ``layer_ops`` (the MFU convention counts them in full). An unfused attention
    # (``plan.flash_attn`` = 0) computes the full square with batched GEMMs.
    run = run_precision(precision, plan)
    peak_mm = gemm_peak_flop_per_s(chip, run)
    peak_ops = jnp.where(ATTN_CORE_MASK, jnp.asarray(chip.peak_flop_per_s_bf16),
                         peak_mm)
    flop_exec = jnp.where(is_flash, CAUSAL_ATTN_WORK_FRAC * ops.flop, ops.flop)
    # Expert GEMMs are grouped GEMMs: with balanced routing each of the E/e + E_s local
    # experts multiplies its own share of the token copies, so the op is n_g GEMMs of
    # 1/n_g the size, each on the size-dependent efficiency curve.
    local_experts = workload.num_experts / plan.ep + workload.num_shared_experts
    n_g = jnp.where(_EXPERT_GEMM_MASK, jnp.maximum(local_experts, 1.0), 1.0)
    t_ops = n_g * op_time(phys, chip.replace(peak_flop_per_s_bf16=peak_ops),
                          flop_exec / n_g, ops.bytes / n_g, ops.kind, precision="bf16")
    t_sum = jnp.sum(t_ops, axis=-1)
    t_attn = jnp.sum(jnp.where(ATTN_CORE_MASK, t_ops, 0.0), axis=-1)
    r = jnp.asarray(plan.recompute)
    full = r > 1.5
    sel = (r > 0.5) & ~full
    fix = (phys.layer_overhead_s
           + moe_layer_fraction(workload) * phys.moe_layer_overhead_s)
    t_fwd = t_sum + fix
    t_cheap = jnp.sum(jnp.where(lite_recompute_mask(workload), t_ops, 0.0), axis=-1)
    t_lite = jnp.where(jnp.asarray(plan.recompute_lite) > 0.5, t_cheap, 0.0)
    t_rec = jnp.where(full, t_fwd, jnp.where(sel, t_attn + fix, 0.0) + t_lite)
    t_layer = t_fwd + (2.0 * t_sum + fix) + t_rec

    dom = jnp.maximum(jnp.asarray(chip.scaleup_domain_size), 1.0)
    vol = comm_volumes(workload, plan)
    t, c, d, e = plan.tp, plan.cp, plan.dp, plan.ep
    full_f = jnp.where(full, 1.0, 0.0)
    rec_f = jnp.where(r > 0.5, 1.0, 0.0)
    tp_one = all_gather_time(phys, chip, vol.tp_bytes_per_layer / 4.0, t,
                             ranks_per_domain=ranks_per_domain(t, 1.0, dom))
    tpo = jnp.asarray(plan.tp_overlap)
    tp_hidden = ((1.0 - tpo) * phys.tp_overlap_frac
                 + tpo * phys.tp_pipelined_overlap_frac)
    tp_layer = (1.0 - tp_hidden) * (2.0 + full_f) * 4.0 * tp_one
    cp_one = all_gather_time(phys, chip, vol.cp_bytes_per_layer, c,
                             ranks_per_domain=ranks_per_domain(c, t, dom))
    cp_layer = (1.0 - phys.cp_overlap_frac) * (3.0 + rec_f) * cp_one
    ep_one = all_to_all_time(phys, chip, vol.ep_bytes_per_layer, e,
                             ranks_per_domain=ranks_per_domain(e, t, dom),
                             fused=plan.fused_a2a, copies_per_row=workload.top_k)
    ep_layer = (1.0 - phys.ep_overlap_frac) * (2.0 + full_f) * ep_one

    h = head_ops(workload, plan)
    t_head = 3.0 * jnp.sum(op_time(phys, chip.replace(peak_flop_per_s_bf16=peak_mm),
                                   h.flop, h.bytes, h.kind, precision="bf16"),
                           axis=-1)

    p, v = plan.pp, plan.vpp
    stride_pp = t * c * d
    cross = jnp.where(stride_pp * p > dom, 1.0, 0.0)
    pp_one = send_recv_time(phys, chip, vol.pp_bytes_per_microbatch, cross_domain=cross)
    pp_mb = jnp.where(p > 1.5, (1.0 - phys.pp_overlap_frac) * 2.0 * v * pp_one, 0.0)

    n_rep = d * c
    dense_grad = vol.dp_grad_bytes - vol.dp_expert_grad_bytes
    rpd = ranks_per_domain(n_rep, t, dom)
    zero3 = jnp.asarray(plan.zero) > 2.5
    # ZeRO-3 keeps only a shard of the weights and gradients: every micro-batch
    # gathers the weights (forward and backward) and reduce-scatters its gradients
    m_mb = workload.global_batch_seqs / (d * plan.mbs)
    # hybrid sharding: gathers and reduce-scatters run inside a shard group of g
    # ranks (consecutive data-parallel ranks); the g-th gradient shards are then
    # all-reduced once per step across the n/g replicas (a group of one costs 0)
    g_d = shard_group(plan)
    rpd_g = ranks_per_domain(g_d, t, dom)
    rep_d = n_rep / g_d
    t_dense = jnp.where(
        zero3,
        m_mb * (reduce_scatter_time(phys, chip, dense_grad, g_d, ranks_per_domain=rpd_g)
                + all_gather_time(phys, chip, vol.zero3_param_bytes * dense_grad
                                  / jnp.maximum(vol.dp_grad_bytes, 1.0), g_d,
                                  ranks_per_domain=rpd_g))
        + all_reduce_time(phys, chip, dense_grad / g_d, rep_d,
                          ranks_per_domain=ranks_per_domain(rep_d, t * g_d, dom)),
        all_reduce_time(phys, chip, dense_grad, n_rep, ranks_per_domain=rpd))
    n_exp = n_rep / e
    rpd_e = ranks_per_domain(n_exp, t * e, dom)
    g_e = jnp.minimum(jnp.maximum(g_d / e, 1.0), n_exp)
    rep_e = n_exp / g_e
    t_exp = jnp.where(
        zero3,
        m_mb * (reduce_scatter_time(phys, chip, vol.dp_expert_grad_bytes, g_e,
                                    ranks_per_domain=ranks_per_domain(g_e, t * e, dom))
                + all_gather_time(phys, chip,
                                  vol.zero3_param_bytes * vol.dp_expert_grad_bytes
                                  / jnp.maximum(vol.dp_grad_bytes, 1.0), g_e,
                                  ranks_per_domain=ranks_per_domain(g_e, t * e, dom)))
        + all_reduce_time(phys, chip, vol.dp_expert_grad_bytes / g_e, rep_e,
                          ranks_per_domain=ranks_per_domain(rep_e, t * e * g_e, dom)),
        all_reduce_time(phys, chip, vol.dp_expert_grad_bytes, n_exp,
                        ranks_per_domain=rpd_e))
    dpo = jnp.asarray(plan.dp_overlap)
    dp_hidden = (1.0 - dpo) * phys.dp_overlap_frac + dpo * phys.dp_bucketed_overlap_frac
    t_grad = (1.0 - dp_hidden) * (t_dense + t_exp)
    has_dp = d > 1.5
    dp_s = jnp.where(has_dp, t_grad, 0.0)
    cpgrad_s = jnp.where(has_dp, 0.0, t_grad)

    # the memory of the run's precision: FP8 caches and weight copies where the GEMMs
    # run in FP8 (the plan's leaf or the caller's precision, on a chip with FP8)
    f8 = 1.0 if isinstance(run, str) else jnp.asarray(run)
    on = (jnp.asarray(f8) > 0.5) & (jnp.asarray(chip.peak_flop_per_s_fp8) > 0.0)
    mem = memory_bytes(workload, plan.replace(fp8=jnp.where(on, 1.0, 0.0)))
    state_bytes = mem.weights + mem.grads + mem.optimizer
    opt_s = 2.0 * state_bytes / (chip.hbm_bytes_per_s * phys.optimizer_eff)
    cap = USABLE_HBM_FRAC * jnp.asarray(chip.hbm_capacity_bytes)
    return _Parts(t_layer, tp_layer, cp_layer, ep_layer, t_head, pp_mb, dp_s,
                  cpgrad_s, opt_s, mem.total, cap)


def _fits(mem, cap):
    return jax.nn.sigmoid(_FIT_SHARPNESS * (1.0 - mem / cap))


def _finish(phys, workload, plan, *, compute_s, tp_s, cp_s, ep_s, pp_s, dp_s, bubble_s,
            opt_s, mem, fits, chips, peak_total, hfu_factor) -> StepTime:
    raw = compute_s + tp_s + cp_s + ep_s + pp_s + dp_s + bubble_s + opt_s
    overhead_s = phys.overhead_frac * raw
    tokens = workload.global_batch_seqs * workload.seq_len
    model_flop = model_flop_per_token(workload) * tokens
    ideal_s = model_flop / peak_total
    total_s = jnp.maximum(raw + overhead_s, ideal_s)
    tps_chip = tokens / (total_s * chips)
    mfu = model_flop / (total_s * peak_total)
    return StepTime(compute_s=compute_s, tp_comm_s=tp_s, cp_comm_s=cp_s,
                    ep_comm_s=ep_s, pp_comm_s=pp_s, dp_comm_s=dp_s,
                    bubble_s=bubble_s, optimizer_s=opt_s, overhead_s=overhead_s,
                    total_s=total_s, memory_bytes=mem, fits_in_hbm=fits,
                    tokens_per_s_per_chip=tps_chip, mfu=mfu,
                    hfu=mfu * hfu_factor)


def _critical_head_s(t_head, t_per_layer, p, balance):
    """Head time charged to the critical pipeline stage per micro-batch, s.

    Uniform split (``balance`` 0): every stage runs L/p layers and the last one the
    head on top, so the head adds ``t_head``. Balanced split (``balance`` 1): the
    embedding and the head each take one layer's place (Megatron
    ``--account-for-embedding/loss-in-pipeline-split``, DeepSpeed
    ``type:transformer|embedding``), so each stage holds S = (L + 2)/p slots; the
    middle stages run S layers, the last S - 1 layers and the head. The critical stage
    is S·x - x + max(x·[p > 2], t_head) (x: time of one layer), of which the head's
    part is that minus (L/p)·x = (2/p - 1)·x + max(x·[p > 2], t_head). With p ≤ 2 this
    is the uniform split (with one or two stages nothing can move).
    """
    x = t_per_layer
    mid = jnp.where(p > 2.5, x, 0.0)
    bal = (2.0 / p - 1.0) * x + smooth_max(mid, t_head, _BALANCE_SHARPNESS)
    b = jnp.where(p > 1.5, jnp.asarray(balance), 0.0)
    return b * bal + (1.0 - b) * t_head


def _hfu_factor(workload, plan):
    # hardware FLOP / model FLOP: the recomputed share of the forward pass (1/3 of
    # fwd + bwd) is executed once more.
    return 1.0 + recompute_flop_frac(workload, plan) / 3.0


def predict_step_time_physical(phys: PhysicalParams, hardware: ClusterSpec,
                               workload: TransformerConfig, plan: ParallelPlan, *,
                               precision="bf16") -> StepTime:
    """As :func:`predict_step_time`, with physical parameters already resolved.

    Useful under ``vmap`` over plans or workloads, where ``phys`` is shared.
    ``precision`` may also be a numeric flag (1 = FP8; see
    :func:`gemm_peak_flop_per_s`), e.g. vmapped over rows of mixed precision.
    """
    chip = hardware.chip
    parts = _parts(phys, chip, workload, plan, precision)
    p, v = plan.pp, plan.vpp
    m = workload.global_batch_seqs / (plan.dp * plan.mbs)
    lps = workload.num_layers / p
    per_layer = parts.t_layer + parts.tp_layer + parts.cp_layer + parts.ep_layer
    head = _critical_head_s(parts.t_head, per_layer, p, plan.pp_balance)
    t_stage = lps * per_layer + head + parts.pp_mb
    bubble_s = (p - 1.0) / v * t_stage
    chips = plan.dp * plan.tp * plan.pp * plan.cp
    peak = gemm_peak_flop_per_s(chip, run_precision(precision, plan))
    return _finish(
        phys, workload, plan,
        compute_s=m * (lps * parts.t_layer + head),
        tp_s=m * lps * parts.tp_layer,
        cp_s=m * lps * parts.cp_layer + parts.cpgrad_s,
        ep_s=m * lps * parts.ep_layer,
        pp_s=m * parts.pp_mb,
        dp_s=parts.dp_s, bubble_s=bubble_s, opt_s=parts.opt_s,
        mem=parts.mem, fits=_fits(parts.mem, parts.cap), chips=chips,
        peak_total=chips * peak, hfu_factor=_hfu_factor(workload, plan))


def predict_step_time(params: CostParams,
                      hardware: ClusterSpec | tuple[ClusterSpec, ...],
                      workload: TransformerConfig, plan: ParallelPlan | tuple, *,
                      precision: str = "bf16", mode: str = "pipeline") -> StepTime:
    """Predicted step time of ``workload`` run with ``plan`` on ``hardware``.

    Args:
      params: fitted (or default) cost parameters.
      hardware: a homogeneous ``ClusterSpec`` (its chip count is the plan's
        dp*tp*pp*cp); a tuple of them dispatches to :func:`predict_step_time_hetero`
        with ``plan`` a tuple of per-group plans.
      workload: the model and batch.
      plan: the parallel plan (float leaves; vmap over batches of plans).
      precision: "bf16" or "fp8" (static).
      mode: heterogeneous mode, "pipeline" or "data" (ignored for one group).

    Returns:
      ``StepTime`` (seconds, bytes, fractions).
    """
    if isinstance(hardware, tuple):
        return predict_step_time_hetero(params, hardware, workload, plan, mode=mode,
                                        precision=precision)
    check_chip_count(hardware.num_chips, name="hardware.num_chips")
    return predict_step_time_physical(physical(params, hardware.chip), hardware,
                                      workload, plan, precision=precision)


def _group_weights(x: jax.Array) -> jax.Array:
    """softmax(k x / mean(x)) of non-negative x (uniform when all are 0).

    x is first scaled by a power of two (exact: the same weights and gradients bit for
    bit) so that x / mean(x) has a finite derivative in float32 at any scale; the
    double where keeps all-zero x (dp = 1, cp = 1) finite.
    """
    xs = x * pow2_scale(jnp.mean(x))
    mean = jnp.mean(xs)
    return jax.nn.softmax(_GROUP_MAX_SHARPNESS * xs / jnp.where(mean > 0, mean, 1.0))


def _soft_group_max(x: jax.Array) -> jax.Array:
    """Softmax-weighted mean of non-negative x: between mean and max, exact when all
    equal (0 when all are 0)."""
    return jnp.sum(_group_weights(x) * x)


def predict_step_time_hetero(params: CostParams, clusters: tuple[ClusterSpec, ...],
                             workload: TransformerConfig,
                             plan_per_group: tuple[ParallelPlan, ...], *,
                             mode: str = "pipeline",
                             precision: str = "bf16") -> StepTime:
    """Step time on groups of different chip types.

    ``mode="pipeline"``: group g runs ``pp_g`` consecutive pipeline stages (in the
    order given; all groups share dp, mbs, vpp). Layers are assigned in proportion to
    each group's speed, L_g = L (p_g / tau_g) / sum_h (p_h / tau_h) with tau_g the
    per-layer time (compute + exposed comm) of group g, so every stage takes about
    L / sum_h(p_h / tau_h) per micro-batch; the head runs on the last group. The
    pipeline has sum_g p_g stages; the stage time is a smooth (softmax-weighted)
    maximum over groups. Gradient reduction and optimizer of the groups run
    concurrently (smooth maximum).

    ``mode="data"``: group g is a set of data-parallel replicas with its own plan.
    The global batch is first shared in proportion to each group's throughput on the
    full batch, B_g = B thr_g / sum_h thr_h, then rebalanced a few times
    (B_g ∝ B_g / t_g) towards equal group step times, since a group's time is not
    proportional to its share (pipeline bubble); each group's step is predicted on
    B_g (its own gradient reduction included), and the groups' gradients are then
    all-reduced across groups (one rank per group per shard, ring over the groups).
    Groups must may split the model differently (tp, pp): the cross-group exchange
    moves the whole gradient over the links of the smallest group.

    Assumption (both modes): links between chips of different types run at the
    slower of the two scale-out networks, with that chip's fitted efficiency.

    Returns:
      ``StepTime``; memory is the largest group's, ``fits_in_hbm`` the product,
      MFU relative to the sum of the groups' peaks.
    """
    if len(clusters) != len(plan_per_group) or not clusters:
        raise PlanError(f"{len(clusters)} cluster groups but {len(plan_per_group)} "
                        "plans: give one plan per group", column="plan_per_group")
    if mode not in ("pipeline", "data"):
        raise PlanError(f"mode={mode!r} must be 'pipeline' or 'data'", column="mode")
    for g, cl in enumerate(clusters):
        check_chip_count(cl.num_chips, name=f"clusters[{g}].num_chips")
    group_phys = [physical(params, cl.chip) for cl in clusters]
    if mode == "pipeline":
        return _hetero_pipeline(group_phys, clusters, workload, plan_per_group,
                                precision)
    return hetero_data_parallel(group_phys, clusters, workload, plan_per_group,
                                precision)[0]


def _hetero_pipeline(group_phys, clusters, workload, plans, precision) -> StepTime:
    parts = [_parts(phys, cl.chip, workload, pl, precision)
             for phys, cl, pl in zip(group_phys, clusters, plans, strict=True)]
    tau = jnp.stack([pt.t_layer + pt.tp_layer + pt.cp_layer + pt.ep_layer
                     for pt in parts])
    comp = jnp.stack([pt.t_layer for pt in parts])
    pgs = jnp.stack([jnp.asarray(pl.pp, dtype=float) for pl in plans])
    speed = pgs / tau
    layers = workload.num_layers * speed / jnp.sum(speed)
    lps = layers / pgs
    # memory, gradients and optimizer of each group hold its share of L_g layers (for
    # an MoE model with leading dense layers the MoE fraction is taken at L_g: an
    # approximation)
    parts_g = [_parts(phys, cl.chip, workload.replace(num_layers=layers[i]), pl,
                      precision)
               for i, (phys, cl, pl)
               in enumerate(zip(group_phys, clusters, plans, strict=True))]
    # cross-type boundary: send over the slower scale-out link
    last = plans[-1]
    vol = comm_volumes(workload, last)
    cross_t = jnp.stack([send_recv_time(phys, cl.chip, vol.pp_bytes_per_microbatch,
                                        cross_domain=1.0)
                         for phys, cl in zip(group_phys, clusters, strict=True)])
    ov = jnp.stack([phys.pp_overlap_frac for phys in group_phys])
    v = jnp.asarray(plans[0].vpp, dtype=float)
    cross_mb = 2.0 * v * jnp.max((1.0 - ov) * cross_t)
    n_groups = len(clusters)
    pp_mb = jnp.stack([jnp.maximum(pt.pp_mb, cross_mb) if n_groups > 1 else pt.pp_mb
                       for pt in parts])
    head = jnp.stack([pt.t_head if i == n_groups - 1 else 0.0 * pt.t_head
                      for i, pt in enumerate(parts)])
    stage = lps * tau + head + pp_mb
    t_stage = _soft_group_max(stage)
    p_total = jnp.sum(pgs)
    m = workload.global_batch_seqs / (plans[0].dp * plans[0].mbs)
    bubble_s = (p_total - 1.0) / v * t_stage
    idx_weights = _group_weights(stage)

    def wsum(x):
        return jnp.sum(idx_weights * x)

    tp_l = jnp.stack([pt.tp_layer for pt in parts])
    cp_l = jnp.stack([pt.cp_layer for pt in parts])
    ep_l = jnp.stack([pt.ep_layer for pt in parts])
    dp_s = _soft_group_max(jnp.stack([pt.dp_s for pt in parts_g]))
    cpg = _soft_group_max(jnp.stack([pt.cpgrad_s for pt in parts_g]))
    opt_s = _soft_group_max(jnp.stack([pt.opt_s for pt in parts_g]))
    mems = jnp.stack([pt.mem for pt in parts_g])
    fits = jnp.prod(jnp.stack([_fits(pt.mem, pt.cap) for pt in parts_g]))
    chips = sum(pl.dp * pl.tp * pl.pp * pl.cp for pl in plans)
    peak_total = sum(pl.dp * pl.tp * pl.pp * pl.cp
                     * gemm_peak_flop_per_s(cl.chip, run_precision(precision, pl))
                     for pl, cl in zip(plans, clusters, strict=True))
    return _finish(
        group_phys[-1], workload, plans[-1],
        compute_s=m * wsum(lps * comp + head), tp_s=m * wsum(lps * tp_l),
        cp_s=m * wsum(lps * cp_l) + cpg, ep_s=m * wsum(lps * ep_l),
        pp_s=m * wsum(pp_mb), dp_s=dp_s, bubble_s=bubble_s, opt_s=opt_s,
        mem=jnp.max(mems), fits=fits, chips=chips, peak_total=peak_total,
        hfu_factor=_hfu_factor(workload, plans[-1]))


def hetero_batch_shares(params: CostParams, clusters: tuple[ClusterSpec, ...],
                        workload: TransformerConfig,
                        plan_per_group: tuple[ParallelPlan, ...], *,
                        precision: str = "bf16") -> jax.Array:
    """Sequences of the global batch each group runs in ``predict_step_time_hetero``
    with ``mode="data"`` (the balanced shares, summing to the global batch)."""
    group_phys = [physical(params, cl.chip) for cl in clusters]
    share, _ = _balanced_shares(group_phys, clusters, workload, plan_per_group,
                                precision)
    return share


def _balanced_shares(group_phys, clusters, workload, plans, precision):
    full = [predict_step_time_physical(phys, cl, workload, pl, precision=precision)
            for phys, cl, pl in zip(group_phys, clusters, plans, strict=True)]
    thr = jnp.stack([workload.global_batch_seqs / st.total_s for st in full])
    share = workload.global_batch_seqs * thr / jnp.sum(thr)

    def on_share(share):
        return [predict_step_time_physical(phys, cl,
                                           workload.replace(global_batch_seqs=share[i]),
                                           pl, precision=precision)
                for i, (phys, cl, pl)
                in enumerate(zip(group_phys, clusters, plans, strict=True))]

    # A group's time is not proportional to its share (fewer micro-batches mean a
    # larger pipeline bubble), so rebalance a few times: share ∝ share / time, the
    # fixed point of equal group step times.
    own = on_share(share)
    for _ in range(_HETERO_BALANCE_ITERS):
        rate = share / jnp.stack([st.total_s for st in own])
        share = workload.global_batch_seqs * rate / jnp.sum(rate)
        own = on_share(share)
    return share, own


def hetero_data_parallel(phys: list[PhysicalParams], clusters: tuple[ClusterSpec, ...],
                         workload: TransformerConfig, plans: tuple[ParallelPlan, ...],
                         precision: Precision | str = Precision.BF16
                         ) -> tuple[StepTime, jax.Array]:
    """Step time of data-parallel groups, and the balanced batch share of each.

    One evaluation gives both (``predict_step_time_hetero(mode="data")`` and
    ``hetero_batch_shares`` each balance the shares).

    Returns:
      (``StepTime`` of the cluster, batch share of each group in sequences).
    """
    group_phys = phys
    share, own = _balanced_shares(group_phys, clusters, workload, plans, precision)
    n_groups = float(len(clusters))
    # cross-group gradient all-reduce over the slower scale-out network. Each group
    # first reduces its gradient internally (its own dp reduction, in ``own``); the
    # groups then exchange the whole gradient, 2 bytes per parameter, spread over the
    # chips of the smallest group (every chip of it pairs with a chip of each other
    # group), so the volume per chip is 2·P / min_g N_g. This holds whatever tp/pp
    # each group uses: only the total gradient and the number of links matter.
    n_min = jnp.min(jnp.stack([jnp.asarray(pl.dp * pl.tp * pl.pp * pl.cp, dtype=float)
                               for pl in plans]))
    cross_bytes = 2.0 * param_count(workload) / n_min
    cross = jnp.stack([
        (1.0 - phys.dp_overlap_frac)
        * all_reduce_time(phys, cl.chip, cross_bytes, n_groups, ranks_per_domain=1.0)
        for phys, cl in zip(group_phys, clusters, strict=True)])
    cross_s = jnp.max(cross)
    totals = jnp.stack([st.total_s for st in own])
    wts = _group_weights(totals)

    def wsum(name):
        return jnp.sum(wts * jnp.stack([getattr(st, name) for st in own]))

    overhead_frac = sum(phys.overhead_frac for phys in group_phys) / n_groups
    chips = sum(pl.dp * pl.tp * pl.pp * pl.cp for pl in plans)
    peak_total = sum(pl.dp * pl.tp * pl.pp * pl.cp
                     * gemm_peak_flop_per_s(cl.chip, run_precision(precision, pl))
                     for pl, cl in zip(plans, clusters, strict=True))
    # groups' totals already hold their own overhead; remove it and re-apply once
    st = _finish(
        group_phys[0].replace(overhead_frac=overhead_frac), workload, plans[0],
        compute_s=wsum("compute_s"), tp_s=wsum("tp_comm_s"), cp_s=wsum("cp_comm_s"),
        ep_s=wsum("ep_comm_s"), pp_s=wsum("pp_comm_s"),
        dp_s=wsum("dp_comm_s") + cross_s, bubble_s=wsum("bubble_s"),
        opt_s=wsum("optimizer_s"),
        mem=jnp.max(jnp.stack([st.memory_bytes for st in own])),
        fits=jnp.prod(jnp.stack([st.fits_in_hbm for st in own])), chips=chips,
        peak_total=peak_total, hfu_factor=_hfu_factor(workload, plans[0]))
    return st, share


__all__ = [
    "hetero_data_parallel",
    "StepTime",
    "predict_step_time",
    "predict_step_time_physical",
    "predict_step_time_hetero",
]
