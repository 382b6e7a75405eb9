"""Transformer accounting: parameters, FLOPs, bytes moved, memory, communication
volumes.

This module owns what a training step *computes and stores*, for dense and
mixture-of-experts (MoE) decoder-only transformers with multi-head or grouped-query
attention. It says nothing about how long anything takes (that is ``roofline``,
``collectives`` and ``step_time``).

Symbols (scaling-book notation, with the Megatron papers' names in brackets):
  L  num_layers            [l]
  D  d_model               [h]
  F  d_ff (dense MLP)      (MoE experts: F_e = moe_d_ff)
  N  num_heads             [a]        K  num_kv_heads     H  head_dim
  V  vocab_size            T  seq_len [s]
  b  micro-batch size in sequences (``plan.mbs``)        B  global batch in sequences
  E  num_experts           k  top_k   E_s  num_shared_experts
  t  tp    p  pp    c  cp    e  ep    d  dp   (see :mod:`jaxcost.parallel`)

Architecture conventions (static, chosen by ``mlp``):
  * ``Mlp.GELU`` models follow GPT-2/3: biases on every projection, LayerNorm with
    weight and bias, learned position embeddings (T·D parameters), MLP ``D→F→D``.
  * ``Mlp.SWIGLU`` models follow Llama: no biases, RMSNorm (weight only), rotary
    position embeddings (no parameters), MLP with gate and up ``D→2F`` then ``F→D``.

Every function takes concrete or traced floats and is pure, so it can be passed to
``jax.jit``, ``jax.vmap`` (over models and over plans) and ``jax.grad``. Discrete plan
choices that are leaves (recompute code, ZeRO stage, sequence parallelism) are
selected with ``jnp.where``. Activations and weights are 2-byte (bf16) values.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import DataError, PlanError
from jaxcost.io import schema
from jaxcost.io.paths import data_dir
from jaxcost.model.plan import ParallelPlan

__all__ = [
    "BF16_BYTES",
    "ADAM_STATE_BYTES",
    "FP8_WEIGHT_COPY_BYTES",
    "LAYER_OP_NAMES",
    "ATTN_CORE_OPS",
    "ATTN_CORE_MASK",
    "LITE_RECOMPUTE_MASK",
    "LITE_RECOMPUTE_OPS",
    "MLA_FIELDS",
    "MLA_UP_PROJ_MASK",
    "lite_recompute_mask",
    "HEAD_OP_NAMES",
    "KIND_MATMUL",
    "KIND_ATTENTION",
    "KIND_MEMORY",
    "UNFUSED_SCORE_BYTES_PER_ELEM",
    "Mlp",
    "TransformerConfig",
    "LayerOps",
    "CommVolumes",
    "MemoryBreakdown",
    "moe_layer_fraction",
    "param_count",
    "active_param_count",
    "tokens_per_step",
    "model_flop_per_token",
    "narayanan_flop_per_step",
    "layer_ops",
    "recompute_flop_frac",
    "head_ops",
    "activation_bytes_per_layer",
    "stage_layers",
    "in_flight_microbatches",
    "memory_bytes",
    "shard_group",
    "comm_volumes",
    "MODEL_COLUMNS",
    "models_csv_path",
    "stack_models",
    "load_models",
    "get_model",
]

#: bytes of one bf16 value (activations, weights in compute, communicated tensors).
BF16_BYTES = 2.0
#: Mixed-precision Adam optimizer state per parameter: fp32 master weight, momentum,
#: variance (4 + 4 + 4 bytes; ZeRO paper's K = 12).
ADAM_STATE_BYTES = 12.0

#: Bytes per layer parameter of the FP8 weight copies kept with FP8 GEMMs: the FP8
#: weight and its transpose (Transformer Engine, Hopper tensor-wise recipes). Measured:
#: the Megatron-LM CI FP8/BF16 pair M0048/M0047 of data/benchmarks/memory.csv differs
#: only in FP8, and its steady memory grows by 0.684e9 B, about 2 B per FP8-GEMM
#: parameter of the logged rank.
FP8_WEIGHT_COPY_BYTES = 2.0

#: Order of the operations in :func:`layer_ops` (static).
LAYER_OP_NAMES = (
    "norm_attn",  # 0  pre-attention norm (memory-bound)
    "qkv_proj",  # 1  Q, K, V projections (matmul)
    "attn_core",  # 2  scores + softmax + weighted values (flash-style, attention)
    "attn_out_proj",  # 3  output projection (matmul)
    "attn_residual",  # 4  dropout + residual add (memory-bound)
    "norm_mlp",  # 5  pre-MLP norm (memory-bound)
    "mlp_up",  # 6  dense MLP up (+ gate for SwiGLU) (matmul)
    "mlp_act",  # 7  GELU / SiLU·gate (memory-bound)
    "mlp_down",  # 8  dense MLP down (matmul)
    "moe_router",  # 9  router logits (matmul)
    "moe_up",  # 10 routed + shared experts up (+ gate) (matmul)
    "moe_act",  # 11 expert activation (memory-bound)
    "moe_down",  # 12 routed + shared experts down (matmul)
    "mlp_residual",  # 13 dropout + residual add (memory-bound)
    "attn_scores",  # 14 scale/mask/softmax/dropout passes over the T×T scores in HBM
    #                  (unfused attention only; zero with a flash-style kernel)
    "moe_permute",  # 15 token permutation to expert order and back (memory-bound)
)
#: Ops that make up the attention core (recomputed by selective recompute).
ATTN_CORE_OPS = ("attn_core", "attn_scores")
#: Mask of ``ATTN_CORE_OPS`` over ``LAYER_OP_NAMES``.
ATTN_CORE_MASK = np.asarray([n in ATTN_CORE_OPS for n in LAYER_OP_NAMES])
#: Ops recomputed by the cheap-module recompute (``plan.recompute_lite``): the norms
#: and the activation functions.
LITE_RECOMPUTE_OPS = ("norm_attn", "norm_mlp", "mlp_act", "moe_act")
#: Mask of ``LITE_RECOMPUTE_OPS`` over ``LAYER_OP_NAMES``.
LITE_RECOMPUTE_MASK = np.asarray([n in LITE_RECOMPUTE_OPS for n in LAYER_OP_NAMES])
#: Mask of the Q/K/V projection, recomputed as well by the cheap-module recompute of a
#: multi-latent attention (its up-projections; the whole projection is charged, an
#: upper bound, since the GQA-equivalent has no separate up-projection op).
MLA_UP_PROJ_MASK = np.asarray([n == "qkv_proj" for n in LAYER_OP_NAMES])
#: The multi-latent-attention widths of a ``TransformerConfig`` (0: not MLA / head_dim);
#: optional columns of ``data/models.csv``.
MLA_FIELDS = ("q_latent_dim", "kv_latent_dim", "qk_head_dim", "v_head_dim")
#: Mask of the ``attn_core`` op alone (its kind depends on ``plan.flash_attn``).
_ATTN_CORE_OP_MASK = np.asarray([n == "attn_core" for n in LAYER_OP_NAMES])
#: Order of the operations in :func:`head_ops` (static).
HEAD_OP_NAMES = ("embedding", "final_norm", "lm_head", "loss")

KIND_MATMUL = 0
KIND_ATTENTION = 1
KIND_MEMORY = 2

#: FLOP per element of a norm (mean, variance, normalise, scale, shift); a nominal
#: count: these ops are memory-bound and their FLOP barely matter.
_NORM_FLOP_PER_ELEM = 5.0
#: FLOP per element of an activation function / residual / dropout (nominal).
_ELEMENTWISE_FLOP_PER_ELEM = 4.0
#: Bytes moved through HBM per element of the T×T score matrix by an unfused attention,
#: forward + backward (structural count of the Megatron-LM kernels with bf16 scores and
#: a 1-byte dropout mask): forward Q·Kᵀ writes S (2), fused scale-mask-softmax reads S
#: and writes P (4), dropout reads P, writes P' and the mask (5), A·V reads P' (2) = 13;
#: backward: dP' written by the A·V grad (2), P' read for the V grad (2), dropout grad
#: reads dP' and the mask and writes dP (5), softmax grad reads P and dP and writes dS
#: (6), Q/K grads read dS twice (4) = 19. Total 32 bytes: the step model books 1/3 in
#: the forward op and 2/3 in the backward (its 1:2 convention).
UNFUSED_SCORE_BYTES_PER_ELEM = 32.0
#: FLOP per score element of the unfused elementwise passes (nominal, forward).
_SCORE_FLOP_PER_ELEM = 5.0


class Mlp(enum.Enum):
    """Kind of feed-forward block (and, with it, the architecture conventions)."""

    SWIGLU = "swiglu"
    GELU = "gelu"


@struct.dataclass
class TransformerConfig:
    """A decoder-only transformer and its training batch.

    Every dimension is a float leaf, so a batch of models is one record with ``(n,)``
    leaves and functions vmap over it. Build with :meth:`create`, which validates.

    Attributes:
      name: model name (static).
      mlp: MLP kind (static); also selects GPT-style or Llama-style conventions.
      tied_embeddings: input embedding and LM head share weights (static).
      num_layers: L, transformer layers.
      d_model: D, hidden size.
      d_ff: F, dense MLP inner size (per branch for SwiGLU).
      num_heads: N, query heads.
      num_kv_heads: K, key/value heads (N for multi-head attention).
      head_dim: H, dimension of one head.
      vocab_size: V.
      seq_len: T, tokens per sequence.
      global_batch_seqs: B, sequences per optimizer step.
      num_experts: E, routed experts per MoE layer (1 for a dense model).
      top_k: k, routed experts per token (1 for a dense model).
      moe_d_ff: F_e, inner size of one expert (equals d_ff for a dense model).
      num_dense_layers: leading layers of an MoE model with a dense MLP.
      num_shared_experts: E_s, experts of size F_e every token passes through.
      q_latent_dim: multi-latent attention (MLA): rank of the compressed query
        (DeepSeek-V3 q_lora_rank 1536); 0 for other attention.
      kv_latent_dim: MLA: width of the compressed key/value latent plus the decoupled
        RoPE key (DeepSeek-V3 kv_lora_rank 512 + 64 = 576); 0 for other attention.
        With MLA the model's heads and ``head_dim`` are a GQA-equivalent for the
        FLOP and parameter counts; the activation memory counts MLA's own tensors:
        N heads of ``qk_head_dim`` for Q and K and of ``v_head_dim`` for V.
      qk_head_dim: width of one query/key head as stored (MLA 128 + 64 = 192);
        0: ``head_dim``.
      v_head_dim: width of one value head as stored (MLA 128); 0: ``head_dim``.
      gated_mlp: 1.0 for a gated (SwiGLU) MLP with three D×F matrices and Llama-style
        conventions, 0.0 for GELU/GPT-style. This leaf, not the static ``mlp`` label,
        drives the formulas, so models of both kinds stack and vmap together.
      tied_frac: 1.0 if the embedding and LM head share weights, else 0.0 (the leaf
        behind the static ``tied_embeddings`` label).
    """

    name: str = struct.field(pytree_node=False)
    mlp: Mlp = struct.field(pytree_node=False)
    tied_embeddings: bool = struct.field(pytree_node=False)
    num_layers: jax.Array | float
    d_model: jax.Array | float
    d_ff: jax.Array | float
    num_heads: jax.Array | float
    num_kv_heads: jax.Array | float
    head_dim: jax.Array | float
    vocab_size: jax.Array | float
    seq_len: jax.Array | float
    global_batch_seqs: jax.Array | float
    num_experts: jax.Array | float
    top_k: jax.Array | float
    moe_d_ff: jax.Array | float
    num_dense_layers: jax.Array | float
    num_shared_experts: jax.Array | float
    gated_mlp: jax.Array | float = 0.0
    tied_frac: jax.Array | float = 0.0
    q_latent_dim: jax.Array | float = 0.0
    kv_latent_dim: jax.Array | float = 0.0
    qk_head_dim: jax.Array | float = 0.0
    v_head_dim: jax.Array | float = 0.0

    @classmethod
    def create(
        cls,
        *,
        name: str,
        num_layers: int,
        d_model: int,
        num_heads: int,
        seq_len: int,
        global_batch_seqs: int,
        vocab_size: int,
        d_ff: int | None = None,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        num_experts: int = 1,
        top_k: int = 1,
        moe_d_ff: int | None = None,
        num_dense_layers: int = 0,
        num_shared_experts: int = 0,
        mlp: Mlp | str = Mlp.GELU,
        tied_embeddings: bool = False,
        q_latent_dim: int = 0,
        kv_latent_dim: int = 0,
        qk_head_dim: int | None = None,
        v_head_dim: int | None = None,
    ) -> TransformerConfig:
        """Validate concrete dimensions and build a config with float leaves.

        Defaults: ``d_ff`` = 4·D (GELU) or 8/3·D rounded up to a multiple of 256
        (SwiGLU); ``num_kv_heads`` = N; ``head_dim`` = D / N; ``moe_d_ff`` = ``d_ff``.

        Raises:
          PlanError: a dimension is not a positive integer, or the dimensions are
            inconsistent (N not a multiple of K, k > E, dense layers > L, ...).
        """
        where = f"model '{name}'"
        try:
            mlp = Mlp(mlp) if not isinstance(mlp, Mlp) else mlp
        except ValueError:
            raise PlanError(
                f"mlp={mlp!r} is not one of {[m.value for m in Mlp]}",
                row=where,
                column="mlp",
            ) from None

        def _int(field: str, value, minimum: int = 1) -> int:
            try:
                f = float(value)
            except (TypeError, ValueError):
                raise PlanError(
                    f"{field}={value!r} is not a number", row=where, column=field
                ) from None
            if not math.isfinite(f) or f != round(f) or f < minimum:
                raise PlanError(
                    f"{field}={value!r} must be an integer >= {minimum}",
                    row=where,
                    column=field,
                )
            return int(round(f))

        num_layers = _int("num_layers", num_layers)
        d_model = _int("d_model", d_model)
        num_heads = _int("num_heads", num_heads)
        seq_len = _int("seq_len", seq_len)
        global_batch_seqs = _int("global_batch_seqs", global_batch_seqs)
        vocab_size = _int("vocab_size", vocab_size)
        if d_ff is None:
            d_ff = (
                4 * d_model
                if mlp is Mlp.GELU
                else 256 * math.ceil(8 * d_model / 3 / 256)
            )
        d_ff = _int("d_ff", d_ff)
        num_kv_heads = _int(
            "num_kv_heads", num_heads if num_kv_heads is None else num_kv_heads
        )
        if head_dim is None:
            if d_model % num_heads:
                raise PlanError(
                    f"num_heads={num_heads} does not divide "
                    f"d_model={d_model}; give head_dim",
                    row=where,
                    column="head_dim",
                )
            head_dim = d_model // num_heads
        head_dim = _int("head_dim", head_dim)
        num_experts = _int("num_experts", num_experts)
        top_k = _int("top_k", top_k)
        moe_d_ff = _int("moe_d_ff", d_ff if moe_d_ff is None else moe_d_ff)
        num_dense_layers = _int("num_dense_layers", num_dense_layers, minimum=0)
        num_shared_experts = _int("num_shared_experts", num_shared_experts, minimum=0)
        q_latent_dim = _int("q_latent_dim", q_latent_dim or 0, minimum=0)
        kv_latent_dim = _int("kv_latent_dim", kv_latent_dim or 0, minimum=0)
        qk_head_dim = _int("qk_head_dim", qk_head_dim or 0, minimum=0)
        v_head_dim = _int("v_head_dim", v_head_dim or 0, minimum=0)
        if num_heads % num_kv_heads:
            raise PlanError(
                f"num_kv_heads={num_kv_heads} does not divide num_heads={num_heads}",
                row=where,
                column="num_kv_heads",
            )
        if top_k > num_experts:
            raise PlanError(
                f"top_k={top_k} exceeds num_experts={num_experts}",
                row=where,
                column="top_k",
            )
        if num_dense_layers > num_layers:
            raise PlanError(
                f"num_dense_layers={num_dense_layers} exceeds num_layers={num_layers}",
                row=where,
                column="num_dense_layers",
            )
        if num_experts == 1 and (num_dense_layers or num_shared_experts):
            raise PlanError(
                "a dense model (num_experts=1) takes num_dense_layers=0 "
                "and num_shared_experts=0",
                row=where,
                column="num_experts",
            )
        return cls(
            name=str(name),
            mlp=mlp,
            tied_embeddings=bool(tied_embeddings),
            num_layers=float(num_layers),
            d_model=float(d_model),
            d_ff=float(d_ff),
            num_heads=float(num_heads),
            num_kv_heads=float(num_kv_heads),
            head_dim=float(head_dim),
            vocab_size=float(vocab_size),
            seq_len=float(seq_len),
            global_batch_seqs=float(global_batch_seqs),
            num_experts=float(num_experts),
            top_k=float(top_k),
            moe_d_ff=float(moe_d_ff),
            num_dense_layers=float(num_dense_layers),
            num_shared_experts=float(num_shared_experts),
            gated_mlp=0.0 if mlp is Mlp.GELU else 1.0,
            tied_frac=1.0 if tied_embeddings else 0.0,
            q_latent_dim=float(q_latent_dim),
            kv_latent_dim=float(kv_latent_dim),
            qk_head_dim=float(qk_head_dim),
            v_head_dim=float(v_head_dim),
        )


@struct.dataclass
class LayerOps:
    """Operations of one layer (or of the head) for one micro-batch on one chip.

    Attributes:
      flop: (K,) forward FLOP of each operation.
      bytes: (K,) bytes each operation reads and writes (operands + result, bf16).
      kind: (K,) int, 0 matmul, 1 attention core, 2 memory-bound.
    """

    flop: jax.Array
    bytes: jax.Array
    kind: jax.Array


@struct.dataclass
class CommVolumes:
    """Communication volumes per chip, bytes (see :func:`comm_volumes`)."""

    tp_bytes_per_layer: jax.Array | float
    cp_bytes_per_layer: jax.Array | float
    ep_bytes_per_layer: jax.Array | float
    pp_bytes_per_microbatch: jax.Array | float
    dp_grad_bytes: jax.Array | float
    zero3_param_bytes: jax.Array | float
    dp_expert_grad_bytes: jax.Array | float


@struct.dataclass
class MemoryBreakdown:
    """Peak memory per chip, bytes (see :func:`memory_bytes`)."""

    weights: jax.Array | float
    grads: jax.Array | float
    optimizer: jax.Array | float
    activations: jax.Array | float
    total: jax.Array | float


# --------------------------------------------------------------------------- params


def _is_gelu(workload: TransformerConfig) -> jax.Array | float:
    return 1.0 - workload.gated_mlp


def _mlp_mats(workload: TransformerConfig) -> float:
    """Weight matrices of size D×F in one MLP: 2 (GELU) or 3 (SwiGLU)."""
    return 2.0 + workload.gated_mlp


def moe_layer_fraction(workload: TransformerConfig) -> jax.Array:
    """Fraction of layers with an MoE block (0 for a dense model)."""
    is_moe = jnp.asarray(workload.num_experts) > 1
    return jnp.where(
        is_moe,
        (workload.num_layers - workload.num_dense_layers) / workload.num_layers,
        0.0,
    )


def _attn_params(workload: TransformerConfig) -> jax.Array:
    """Attention weights (+ biases for GELU models) of one layer."""
    q_o = 2.0 * workload.d_model * workload.num_heads * workload.head_dim
    kv = 2.0 * workload.d_model * workload.num_kv_heads * workload.head_dim
    bias = _is_gelu(workload) * (
        (workload.num_heads + 2.0 * workload.num_kv_heads) * workload.head_dim
        + workload.d_model
    )
    return q_o + kv + bias


def _norm_params(workload: TransformerConfig) -> jax.Array:
    """Parameters of one norm: weight (+ bias for GELU models' LayerNorm)."""
    return (1.0 + _is_gelu(workload)) * workload.d_model


def _dense_mlp_params(workload: TransformerConfig, d_ff) -> jax.Array:
    bias = _is_gelu(workload) * (d_ff + workload.d_model)
    return _mlp_mats(workload) * workload.d_model * d_ff + bias


def _embedding_params(workload: TransformerConfig) -> jax.Array:
    """Token embedding + LM head (once if tied) + learned positions (GELU models)."""
    mats = 2.0 - workload.tied_frac
    return (
        mats * workload.vocab_size * workload.d_model
        + _is_gelu(workload) * workload.seq_len * workload.d_model
    )


def _layer_params(workload: TransformerConfig, *, active: bool) -> jax.Array:
    """Parameters of all L layers (total or active per token)."""
    attn_norm = _attn_params(workload) + 2.0 * _norm_params(workload)
    dense = _dense_mlp_params(workload, workload.d_ff)
    expert = _dense_mlp_params(workload, workload.moe_d_ff)
    routed = workload.top_k if active else workload.num_experts
    moe = (
        routed + workload.num_shared_experts
    ) * expert + workload.d_model * workload.num_experts
    f_moe = moe_layer_fraction(workload)
    return workload.num_layers * (attn_norm + (1.0 - f_moe) * dense + f_moe * moe)


def param_count(workload: TransformerConfig) -> jax.Array:
    """Total parameter count.

    P = L·(attention + 2 norms) + L_dense·MLP(F) + L_moe·((E + E_s)·MLP(F_e) + D·E)
        + V·D·(1 if tied else 2) + [GELU: T·D positions] + final norm,
    attention = 2·D·N·H + 2·D·K·H (+ biases for GELU models). For a GELU model with
    F = 4D and N·H = D this is Megatron's 12·L·D²·(1 + 13/(12D)) + (V + T)·D (untied
    head counted once more) + final norm.

    Returns:
      Parameter count (float).
    """
    return (
        _layer_params(workload, active=False)
        + _embedding_params(workload)
        + _norm_params(workload)
    )


def active_param_count(workload: TransformerConfig) -> jax.Array:
    """Parameters a token passes through: as :func:`param_count` with k routed experts
    instead of E in MoE layers (embedding and router counted). Equals
    :func:`param_count` for a dense model."""
    return (
        _layer_params(workload, active=True)
        + _embedding_params(workload)
        + _norm_params(workload)
    )


def _matmul_params_per_token(workload: TransformerConfig) -> jax.Array:
    """Weight-matrix parameters a token is multiplied with: attention projections,
    active MLP/expert matrices, router, LM head (no embedding lookup, biases, norms)."""
    attn = (
        2.0
        * workload.d_model
        * (workload.num_heads + workload.num_kv_heads)
        * workload.head_dim
    )
    dense = _mlp_mats(workload) * workload.d_model * workload.d_ff
    moe = (
        _mlp_mats(workload)
        * workload.d_model
        * workload.moe_d_ff
        * (workload.top_k + workload.num_shared_experts)
        + workload.d_model * workload.num_experts
    )
    f_moe = moe_layer_fraction(workload)
    return (
        workload.num_layers * (attn + (1.0 - f_moe) * dense + f_moe * moe)
        + workload.vocab_size * workload.d_model
    )


def tokens_per_step(workload: TransformerConfig) -> float:
    """Tokens trained per step, B·T (static: concrete leaves)."""
    return float(workload.global_batch_seqs) * float(workload.seq_len)


def model_flop_per_token(workload: TransformerConfig) -> jax.Array:
    """Model FLOP per trained token, forward + backward, without recompute (MFU).

    F_tok = 6·N_mm + 12·L·T·N·H,
    where N_mm is the number of weight-matrix parameters a token is multiplied with
    (attention projections, active dense/expert MLP matrices, router, LM head; the
    embedding lookup, biases and norms do no matmul work) and 12·L·T·N·H is the
    attention core (Q·Kᵀ and A·V, 2·2·T·N·H FLOP per token per layer forward, times 3
    for forward + backward). Causal attention is counted in full, as in Megatron-LM /
    Narayanan et al. (2021) and PaLM's 6N + 12·L·H·Q·T (Chowdhery et al. 2022, App. B).

    Returns:
      FLOP per token.
    """
    return (
        6.0 * _matmul_params_per_token(workload)
        + 12.0
        * workload.num_layers
        * workload.seq_len
        * workload.num_heads
        * workload.head_dim
    )


def narayanan_flop_per_step(workload: TransformerConfig) -> jax.Array:
    """FLOP of one training step with full recompute, Narayanan et al. (2021) eq. 3.

    F = 96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)), with B global batch in sequences,
    s = T, l = L, h = D. It assumes a GPT model (F = 4h, N·H = h, dense) and includes
    the recompute forward pass (hence 96 = 4·24); the MFU numerator without recompute
    is 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)).

    References:
      Narayanan et al., Efficient Large-Scale Language Model Training on GPU Clusters
      Using Megatron-LM, SC21, arXiv:2104.04473, section 5.1, eq. (3).
    """
    B, s, n_layers, h, V = (
        workload.global_batch_seqs,
        workload.seq_len,
        workload.num_layers,
        workload.d_model,
        workload.vocab_size,
    )
    return (
        96.0
        * B
        * s
        * n_layers
        * h**2
        * (1.0 + s / (6.0 * h) + V / (16.0 * n_layers * h))
    )


# --------------------------------------------------------------------- per-chip ops


def _sp_div(plan: ParallelPlan) -> jax.Array:
    """Divisor of the sequence for norm/elementwise ops: t with SP, else 1."""
    return jnp.where(jnp.asarray(plan.sp) > 0.5, plan.tp, 1.0)


def _kv_heads_per_chip(workload: TransformerConfig, plan: ParallelPlan) -> jax.Array:
    """K/V heads held per chip: K/t, or 1 (replicated) when t > K (Megatron)."""
    return jnp.maximum(workload.num_kv_heads, plan.tp) / plan.tp


def layer_ops(workload: TransformerConfig, plan: ParallelPlan) -> LayerOps:
    """Forward operations of one (mean) layer, one micro-batch, one chip.

    With b = mbs, t = tp, c = cp, tokens per chip T_c = b·T/c (context parallelism
    splits the sequence), the matmuls see all T_c tokens and 1/t of the heads / F
    (Megatron TP; under SP the norms and elementwise ops see T_c/t tokens):
      qkv_proj:   2·T_c·D·(N + 2·K_c)·H/t  (K_c·t = max(K, t): KV heads replicated
                  when t > K)
      attn_core:  4·b·T²·N·H/(t·c) (Q·Kᵀ and A·V, causal counted full); bytes of Q, O
                  (T_c·N·H/t each) and K, V over the full sequence. Kind attention
                  with a flash-style kernel (``plan.flash_attn`` = 1), matmul
                  (batched GEMMs) without
      attn_scores: unfused attention only: the b·(N/t)·T·T/c score elements pass
                  through HBM, UNFUSED_SCORE_BYTES_PER_ELEM / 3 bytes each forward;
                  zero with a flash-style kernel
      out_proj:   2·T_c·N·H·D/t
      mlp_up:     2·T_c·D·F·m/t (m = 1 GELU, 2 SwiGLU: gate and up); mlp_down
                  2·T_c·F·D/t
      moe_router: 2·(T_c/t_sp)·D·E (router replicated; SP-sharded tokens)
      moe_up/down: as the MLP with F_e and (k + E_s) experts per token (capacity
                  factor 1: each chip processes T_c·k routed token copies after the
                  all-to-all); weight bytes of the E/e local + E_s shared experts.
      moe_permute: the routed copies gathered into expert order (read k rows, write k
                  per token) and combined back (read k, write 1): (3k + 1)·D elements
                  per token of the chip's T_c/t_sp, no FLOP
    Bytes are 2·(elements of the operands + result). For an MoE model the dense-MLP ops
    and the MoE ops are weighted by their fraction of layers (flop and bytes scaled),
    so that the sum over ops is the mean layer; a dense model has zero MoE ops.

    Args:
      workload: the model.
      plan: the parallel plan (``mbs``, ``tp``, ``cp``, ``ep``, ``sp`` are used).

    Returns:
      ``LayerOps`` with (len(LAYER_OP_NAMES),) leaves in ``LAYER_OP_NAMES`` order.
    """
    b, t, c, e = plan.mbs, plan.tp, plan.cp, plan.ep
    D, N, H, T = (
        workload.d_model,
        workload.num_heads,
        workload.head_dim,
        workload.seq_len,
    )
    y = BF16_BYTES
    tok = b * T / c  # tokens per chip (sequence split by cp)
    tok_sp = tok / _sp_div(plan)  # tokens per chip for norms / elementwise ops
    kv_c = _kv_heads_per_chip(workload, plan)
    q_c = N / t
    m = _mlp_mats(workload) - 1.0  # up-projection matrices: 1 GELU, 2 SwiGLU
    f_moe = moe_layer_fraction(workload)
    f_dense = 1.0 - f_moe
    per_tok_experts = workload.top_k + workload.num_shared_experts
    local_experts = workload.num_experts / e + workload.num_shared_experts

    def norm(n_tok):
        return _NORM_FLOP_PER_ELEM * n_tok * D, y * 2.0 * n_tok * D

    def resid(n_tok):  # dropout + residual add: read 2, write 1
        return _ELEMENTWISE_FLOP_PER_ELEM * n_tok * D, y * 3.0 * n_tok * D

    qkv_out = (q_c + 2.0 * kv_c) * H
    ops = [
        norm(tok_sp),
        (2.0 * tok * D * qkv_out, y * (tok * D + D * qkv_out + tok * qkv_out)),
        (
            4.0 * b * T * T * q_c * H / c,
            y * (2.0 * tok * q_c * H + 2.0 * b * T * kv_c * H),
        ),
        (2.0 * tok * q_c * H * D, y * (tok * q_c * H + q_c * H * D + tok * D)),
        resid(tok_sp),
        norm(tok_sp),
    ]
    F = workload.d_ff
    ops += [
        (
            f_dense * 2.0 * tok * D * m * F / t,
            f_dense * y * (tok * D + D * m * F / t + tok * m * F / t),
        ),
        (
            f_dense * _ELEMENTWISE_FLOP_PER_ELEM * tok * F / t,
            f_dense * y * (m + 1.0) * tok * F / t,
        ),
        (
            f_dense * 2.0 * tok * F * D / t,
            f_dense * y * (tok * F / t + F * D / t + tok * D),
        ),
    ]
    Fe = workload.moe_d_ff
    Ex = workload.num_experts
    tok_e = tok * per_tok_experts  # token copies through experts on this chip
    ops += [
        (
            f_moe * 2.0 * tok_sp * D * Ex,
            f_moe * y * (tok_sp * D + D * Ex + tok_sp * Ex),
        ),
        (
            f_moe * 2.0 * tok_e * D * m * Fe / t,
            f_moe
            * y
            * (tok_e * D + local_experts * D * m * Fe / t + tok_e * m * Fe / t),
        ),
        (
            f_moe * _ELEMENTWISE_FLOP_PER_ELEM * tok_e * Fe / t,
            f_moe * y * (m + 1.0) * tok_e * Fe / t,
        ),
        (
            f_moe * 2.0 * tok_e * Fe * D / t,
            f_moe * y * (tok_e * Fe / t + local_experts * Fe * D / t + tok_e * D),
        ),
        resid(tok_sp),
    ]
    unfused = 1.0 - jnp.asarray(plan.flash_attn)
    n_scores = b * q_c * T * T / c
    ops += [
        (
            unfused * _SCORE_FLOP_PER_ELEM * n_scores,
            unfused * UNFUSED_SCORE_BYTES_PER_ELEM / 3.0 * n_scores,
        )
    ]
    ops += [(0.0 * tok_sp, f_moe * y * (3.0 * workload.top_k + 1.0) * tok_sp * D)]
    flop = jnp.stack([jnp.asarray(f, dtype=float) for f, _ in ops], axis=-1)
    nbytes = jnp.stack([jnp.asarray(bb, dtype=float) for _, bb in ops], axis=-1)
    kind = jnp.asarray(
        [
            KIND_MEMORY,
            KIND_MATMUL,
            KIND_ATTENTION,
            KIND_MATMUL,
            KIND_MEMORY,
            KIND_MEMORY,
            KIND_MATMUL,
            KIND_MEMORY,
            KIND_MATMUL,
            KIND_MATMUL,
            KIND_MATMUL,
            KIND_MEMORY,
            KIND_MATMUL,
            KIND_MEMORY,
            KIND_MEMORY,
            KIND_MEMORY,
        ],
        dtype=jnp.int32,
    )
    kind = jnp.broadcast_to(kind, flop.shape)
    unfused_core = _ATTN_CORE_OP_MASK & (jnp.asarray(plan.flash_attn) < 0.5)[..., None]
    kind = jnp.where(unfused_core, KIND_MATMUL, kind).astype(jnp.int32)
    return LayerOps(flop=flop, bytes=nbytes, kind=kind)


def lite_recompute_mask(workload: TransformerConfig) -> jax.Array:
    """Mask over ``LAYER_OP_NAMES`` of the ops the cheap-module recompute
    (``plan.recompute_lite``) repeats: ``LITE_RECOMPUTE_OPS``, and the Q/K/V projection
    of a multi-latent attention (``MLA_UP_PROJ_MASK``)."""
    mla = jnp.asarray(workload.kv_latent_dim) > 0.5
    return LITE_RECOMPUTE_MASK | (MLA_UP_PROJ_MASK & mla[..., None])


def recompute_flop_frac(workload: TransformerConfig, plan: ParallelPlan) -> jax.Array:
    """Fraction of a layer's forward FLOP recomputed during the backward pass.

    0 without recompute; attention-core FLOP (``ATTN_CORE_OPS``) / layer FLOP with
    selective recompute (Korthikanti et al. 2022 recompute the attention core only); 1
    with full recompute. The cheap-module recompute (``plan.recompute_lite``) adds the
    norms' and activation functions' FLOP (``LITE_RECOMPUTE_OPS``), and a multi-latent
    attention's Q/K/V projection (``MLA_UP_PROJ_MASK``), below full.
    """
    ops = layer_ops(workload, plan)
    total = jnp.sum(ops.flop, axis=-1)
    sel = jnp.sum(jnp.where(ATTN_CORE_MASK, ops.flop, 0.0), axis=-1) / total
    mask = lite_recompute_mask(workload)
    lite = jnp.sum(jnp.where(mask, ops.flop, 0.0), axis=-1) / total
    r = jnp.asarray(plan.recompute)
    lite_on = jnp.where(jnp.asarray(plan.recompute_lite) > 0.5, lite, 0.0)
    return jnp.where(r > 1.5, 1.0, jnp.where(r > 0.5, sel, 0.0) + lite_on)


def head_ops(workload: TransformerConfig, plan: ParallelPlan) -> LayerOps:
    """Embedding, final norm, LM head and loss for one micro-batch on one chip.

    With T_c = b·T/c tokens and vocabulary-parallel embedding and head (V/t per chip):
      embedding:  gather of T_c rows + write, 2·2·T_c·D bytes (no FLOP)
      final_norm: as a layer norm on T_c/t_sp tokens
      lm_head:    2·T_c·D·V/t FLOP; bytes of input, V·D/t weights, T_c·V/t logits
      loss:       softmax + cross-entropy over T_c·V/t logits (read, write)
    The embedding runs on the first pipeline stage, the rest on the last.

    Returns:
      ``LayerOps`` with (len(HEAD_OP_NAMES),) leaves.
    """
    b, t, c = plan.mbs, plan.tp, plan.cp
    D, V = workload.d_model, workload.vocab_size
    y = BF16_BYTES
    tok = b * workload.seq_len / c
    tok_sp = tok / _sp_div(plan)
    ops = [
        (0.0 * tok, y * 2.0 * tok * D),
        (_NORM_FLOP_PER_ELEM * tok_sp * D, y * 2.0 * tok_sp * D),
        (2.0 * tok * D * V / t, y * (tok * D + D * V / t + tok * V / t)),
        (_NORM_FLOP_PER_ELEM * tok * V / t, y * 2.0 * tok * V / t),
    ]
    flop = jnp.stack([jnp.asarray(f, dtype=float) for f, _ in ops], axis=-1)
    nbytes = jnp.stack([jnp.asarray(bb, dtype=float) for _, bb in ops], axis=-1)
    kind = jnp.broadcast_to(
        jnp.asarray(
            [KIND_MEMORY, KIND_MEMORY, KIND_MATMUL, KIND_MEMORY], dtype=jnp.int32
        ),
        flop.shape,
    )
    return LayerOps(flop=flop, bytes=nbytes, kind=kind)


# ------------------------------------------------------------ memory and comm


def _params_per_chip(workload: TransformerConfig, plan: ParallelPlan):
    """(dense, expert) parameters held by one chip of the largest pipeline stage,
    before any ZeRO sharding.

    Layers are split evenly over p stages (L/p layers, MoE share at the mean); TP
    shards every matrix by t; routed experts are further sharded by e. The first stage
    holds the embedding; with p = 1 it also holds the LM head (and positions / norms).
    """
    t, p, e = plan.tp, plan.pp, plan.ep
    f_moe = moe_layer_fraction(workload)
    expert = _dense_mlp_params(workload, workload.moe_d_ff)
    routed_total = workload.num_layers * f_moe * workload.num_experts * expert
    layer_dense = _layer_params(workload, active=False) - routed_total
    emb_mats = jnp.where(jnp.asarray(p) > 1.5, 1.0, 2.0 - workload.tied_frac)
    emb = (
        emb_mats * workload.vocab_size * workload.d_model
        + _is_gelu(workload) * workload.seq_len * workload.d_model
    )
    dense = (layer_dense / p + emb + _norm_params(workload)) / t
    experts = routed_total / (p * t * e)
    return dense, experts


def activation_bytes_per_layer(
    workload: TransformerConfig, plan: ParallelPlan
) -> jax.Array:
    """Activation bytes stored by one layer for one micro-batch on one chip.

    Korthikanti et al. (2022), with s = T/c (context parallelism splits the sequence),
    b = mbs, h = D, a = N, t = tp, for their GPT layer (F = 4h, multi-head attention,
    dropout, 2-byte activations, 1-byte dropout masks):
      no recompute, SP:        s·b·h/t·(34 + 5·a·s/h)          (eq. for TP+SP, §4.2.2)
      no recompute, no SP:     s·b·h·(10 + 24/t + 5·a·s/(h·t)) (TP only, eq. 2)
      selective, SP:           34·s·b·h/t                      (§5)
      selective, no SP:        s·b·h·(10 + 24/t)
      full recompute:          2·s·b·h/t with SP, 2·s·b·h without (layer input only)
    The 34 is counted tensor by tensor (bytes per s·b·h), so that other architectures
    get their own constant: two norm inputs 4; attention input 2, Q 2·q, K and V
    4·k, core output (the output projection's input) 2·q, with q = N·H/D and
    k = K·H/D (grouped-query attention stores K/N of the keys and values); MLP input
    2 and 4·F/D (GELU: its input and output) or 6·F/D (gated: gate, up and their
    product); one dropout mask each after attention and MLP, 1 byte. The GPT layer
    gives 4 + 11 + 19 = 34. Of these, the norm inputs, the attention and MLP inputs
    and the masks (10 of 34) are replicated over the TP ranks without SP.
    Llama-style models (``gated_mlp`` = 1, the package's convention switch) train
    without dropout: no masks, and an unfused attention stores only its softmax
    output (2·a·s/h instead of 5·a·s/h). An MoE layer stores, per routed copy of a
    token (k per token), the dispatched input (2), the expert's intermediates
    (6·F_e/D gated, 4·F_e/D GELU) and the expert output kept for the weighted
    combine's backward (2), plus each shared expert's intermediates (Mixtral 8x7B:
    2·(2 + 21 + 2) = 50 where a fixed GPT MLP count gave 16; checked against Megatron-LM
    CI memory readings, ``data/benchmarks/memory.csv`` M0037-M0046).
    Two framework savings change the count per tensor:
      FP8 (``plan.fp8``): the tensors whose only consumer is a linear layer are cached
        in FP8, 1 byte instead of 2 (Transformer Engine saves the FP8 cast of a GEMM
        input for the weight gradient; DeepSeek-V3 arXiv:2412.19437 §3.3): the
        attention and MLP inputs, the core output, the down projections' inputs and
        the experts' dispatched inputs. Norm inputs, Q/K/V, the activation
        functions' inputs and the expert outputs stay in BF16.
      cheap-module recompute (``plan.recompute_lite``): the norms' outputs (the
        attention and MLP inputs) and the activation functions' outputs (the down
        projections' inputs) are recomputed, not stored (Megatron-Core
        ``--recompute-modules layernorm mlp_act moe_act``; DeepSeek-V3 §3.2.3).
    With both, the experts' activation inputs are cached in FP8 too (DeepSeek-V3
    §3.3: the SwiGLU inputs of the MoE in FP8, its output recomputed). A model
    with multi-latent attention (``kv_latent_dim`` > 0) stores Q, K and V of all N
    heads at their MLA widths, or, with the cheap-module recompute, the latents
    they are up-projected from (the recomputed MLA up-projections of DeepSeek-V3
    §3.2.3 and Megatron-Core's ``mla_up_proj`` module). The a·s/h terms are
    the stored T×T scores of an unfused attention (``plan.flash_attn`` = 0); a
    flash-style kernel keeps no score matrix,
    so without recompute it stores what selective recompute stores (its per-row
    softmax statistics, 4·a·s·b bytes, are neglected).

    References:
      Korthikanti et al., Reducing Activation Recomputation in Large Transformer
      Models, MLSys 2023, arXiv:2205.05198, sections 4.1-5, Table 2 (the per-tensor
      count of §4.1 generalised to GQA, gated MLPs and dropout-free training).
    """
    s = workload.seq_len / plan.cp
    b, h, a, t = plan.mbs, workload.d_model, workload.num_heads, plan.tp
    sbh = s * b * h
    sp = jnp.asarray(plan.sp) > 0.5
    drop = 1.0 - workload.gated_mlp  # 1-byte dropout masks (GPT-style conventions only)
    # stored attention tensors per s·b·h, in elements: Q, K and V (MLA up-projects
    # all N heads of K and V), the core output; MLA's latents
    mla = jnp.asarray(workload.kv_latent_dim) > 0.5
    kv_heads = jnp.where(mla, workload.num_heads, workload.num_kv_heads)
    hd = workload.head_dim
    qk_w = jnp.where(workload.qk_head_dim > 0.5, workload.qk_head_dim, hd)
    v_w = jnp.where(workload.v_head_dim > 0.5, workload.v_head_dim, hd)
    q = workload.num_heads * qk_w / h
    k = kv_heads * qk_w / h
    v = kv_heads * v_w / h
    o = workload.num_heads * v_w / h
    latent = (workload.q_latent_dim + workload.kv_latent_dim) / h
    f = workload.d_ff / h
    f_moe = moe_layer_fraction(workload)
    # bytes per element of a cached linear input (FP8 caches them in 1 byte), and of
    # the tensors the cheap-module recompute drops (norm and activation outputs)
    lin = jnp.where(jnp.asarray(plan.fp8) > 0.5, 1.0, 2.0)
    lite = jnp.asarray(plan.recompute_lite) > 0.5
    dropped = jnp.where(lite, 0.0, lin)
    # an MLP stores its activation function's input (gate and up, 4·F/D, or the GELU
    # input, 2·F/D) and output (the down projection's input)
    act_in = workload.gated_mlp * 4.0 + (1.0 - workload.gated_mlp) * 2.0
    mlp_per = act_in + dropped
    mlp_dense = mlp_per * f
    # an MoE layer: every routed copy of a token stores its dispatched input, its
    # expert's intermediates (mlp_per·F_e/h) and the expert output the weighted
    # combine needs for its backward (2); every shared expert its intermediates
    f_e = workload.moe_d_ff / h
    # with FP8 and the experts' activation recomputed, its input is cached in FP8 as
    # well (DeepSeek-V3 §3.3, "inputs of the SwiGLU operator in MoE")
    expert_per = jnp.where(lite, act_in * lin / 2.0, mlp_per)
    mlp_moe = workload.top_k * (lin + 2.0 + expert_per * f_e) + (
        workload.num_shared_experts * expert_per * f_e
    )
    mlp_sharded = (1.0 - f_moe) * mlp_dense + f_moe * mlp_moe
    # norm inputs 4, attention and MLP inputs, dropout masks
    replicated = 4.0 + 2.0 * dropped + 2.0 * drop
    # Q, K, V in BF16 (for the attention's backward), or, with the cheap-module
    # recompute of an MLA layer, the latents they are up-projected from
    qkv = jnp.where(lite & mla, 2.0 * latent, 2.0 * (q + k + v))
    sharded = qkv + lin * o + mlp_sharded
    scores = (1.0 - jnp.asarray(plan.flash_attn)) * (2.0 + 3.0 * drop) * a * s / h
    selective = jnp.where(
        sp, sbh / t * (replicated + sharded), sbh * (replicated + sharded / t)
    )
    none = selective + sbh / t * scores
    full = jnp.where(sp, 2.0 * sbh / t, 2.0 * sbh)
    r = jnp.asarray(plan.recompute)
    return jnp.where(r > 1.5, full, jnp.where(r > 0.5, selective, none))


def stage_layers(workload: TransformerConfig, plan: ParallelPlan):
    """Transformer layers held by the first and by the second pipeline stage.

    Uniform split (``plan.pp_balance`` = 0): L/p on every stage. Balanced split with
    p > 1: the embedding and the LM head each take one layer's place, (L + 2)/p places
    per stage, so the first (and last) stage holds (L + 2)/p − 1 layers and the
    middle stages (L + 2)/p (e.g. Llama 3 405B: 126 layers on 16 stages, 7 on the
    first and last, 8 on the others; arXiv:2407.21783 §3.3.2). With p ≤ 2 the second
    stage is the last one and holds as many layers as the first.

    Returns:
      ``(n_first, n_second)``, layer counts (the mean when (L + 2)/p is fractional).
    """
    L, p = workload.num_layers, plan.pp
    p_arr = jnp.asarray(p)
    bal = (jnp.asarray(plan.pp_balance) > 0.5) & (p_arr > 1.5)
    places = (L + 2.0) / p
    n_first = jnp.where(bal, places - 1.0, L / p)
    n_second = jnp.where(bal & (p_arr > 2.5), places, n_first)
    return n_first, n_second


def in_flight_microbatches(
    workload: TransformerConfig, plan: ParallelPlan, *, stage: int = 0
) -> jax.Array:
    """Micro-batches whose activations pipeline stage ``stage`` holds at its peak.

    1F1B (v = 1): min(p − k, m) for stage k (k micro-batches fewer than the first
    stage's p). Interleaved 1F1B (v > 1): rank k runs w_k = 2(p − k − 1) + (v − 1)p
    warm-up chunk forwards before its first backward, and holds w_k + 1 chunks of
    L_k/v layers, but never more than all m·v chunks of the step; in units of whole
    micro-batches of the stage, min(m·v, w_k + 1)/v. For k = 0 and m large this is
    p·(1 + (p − 1)/(p·v)), Korthikanti's interleaving factor; with m ≤ p the schedule
    runs every forward first and the stage holds all m micro-batches (not more).

    Args:
      stage: k, 0 for the first stage, 1 for the second.

    Returns:
      micro-batches (may be fractional), dimensionless.

    References:
      Narayanan et al., Efficient Large-Scale Language Model Training on GPU Clusters
      Using Megatron-LM, SC21, arXiv:2104.04473, §2.2 (1F1B holds p micro-batches,
      interleaved schedule); Megatron-LM ``pipeline_parallel/schedules.py``
      (warm-up count (p − rank − 1)·2 + (v − 1)·p, capped at m·v);
      Korthikanti et al. 2022, arXiv:2205.05198, §4.2.3.
    """
    p, v = plan.pp, plan.vpp
    m = workload.global_batch_seqs / (plan.dp * plan.mbs)
    plain = jnp.minimum(p - stage, m)
    chunks = jnp.minimum(m * v, 2.0 * (p - stage - 1.0) + (v - 1.0) * p + 1.0)
    return jnp.where(jnp.asarray(v) > 1.5, chunks / v, plain)


def _stage_params(workload: TransformerConfig, plan: ParallelPlan, n_layers):
    """(dense, expert, embedding) parameters of one chip of a stage holding
    ``n_layers`` layers, before ZeRO sharding: the layers' dense matrices and norms,
    their routed experts, and the embedding (and the LM head when p = 1) that the
    first stage holds besides; same conventions as :func:`_params_per_chip`."""
    t, e = plan.tp, plan.ep
    f_moe = moe_layer_fraction(workload)
    expert = _dense_mlp_params(workload, workload.moe_d_ff)
    routed_total = workload.num_layers * f_moe * workload.num_experts * expert
    layer_dense = _layer_params(workload, active=False) - routed_total
    frac = n_layers / workload.num_layers
    emb_mats = jnp.where(jnp.asarray(plan.pp) > 1.5, 1.0, 2.0 - workload.tied_frac)
    emb = (
        emb_mats * workload.vocab_size * workload.d_model
        + _is_gelu(workload) * workload.seq_len * workload.d_model
    )
    dense = (layer_dense * frac + _norm_params(workload)) / t
    experts = routed_total * frac / (t * e)
    return dense, experts, emb / t


def shard_group(plan: ParallelPlan) -> jax.Array:
    """Ranks the ZeRO/FSDP states are sharded over: ``plan.zero_group`` (hybrid
    sharding) when set, else all dp·cp data-parallel ranks."""
    zg = jnp.asarray(plan.zero_group)
    return jnp.where(zg > 0.5, zg, plan.dp * plan.cp)


def memory_bytes(
    workload: TransformerConfig,
    plan: ParallelPlan,
    *,
    grad_bytes_per_param: float = BF16_BYTES,
) -> MemoryBreakdown:
    """Peak memory of one chip (the fuller of the first two pipeline stages), bytes.

    For a stage holding n_k layers (:func:`stage_layers`), with P_c the chip's
    parameters of those layers (plus the embedding on the first stage):
    weights = 2·P_c, grads = g·P_c, optimizer = 12·P_c (mixed-precision Adam); ZeRO
    stage z shards over the d·c data-parallel ranks, or over the shard group g of
    hybrid sharding (:func:`shard_group`; g/e for routed experts, at least 1): z ≥ 1
    the optimizer state, z ≥ 2 also the gradients, z ≥ 3 also the weights. With FP8
    GEMMs (``plan.fp8``) and z ≤ 2 the weights add the cached FP8 copies of the
    layers' matrices, ``FP8_WEIGHT_COPY_BYTES`` per layer parameter.
    activations = n_k·A_layer·n_flight,k (+ the LM head's 4·s·b·h/t·(1 + V/h) when
    p = 1, Korthikanti §4.3), with n_flight,k from :func:`in_flight_microbatches`
    (under 1F1B with uniform stages the first stage holds p micro-batches of L/p
    layers: L·A_layer in total, independent of p). The first stage is the peak under
    a uniform split; under a balanced split (``plan.pp_balance``, p > 2) the second
    stage holds one layer more and one micro-batch fewer, and the larger of the two
    is returned.

    Args:
      grad_bytes_per_param: 2 (bf16 gradients, the ZeRO paper's 16 B/param) or 4.

    Returns:
      ``MemoryBreakdown`` in bytes (the parts of the peak stage).
    """
    z = jnp.asarray(plan.zero)
    shard_dense = shard_group(plan)
    shard_exp = jnp.maximum(shard_dense / plan.ep, 1.0)
    s = workload.seq_len / plan.cp
    sbh = s * plan.mbs * workload.d_model
    a_layer = activation_bytes_per_layer(workload, plan)
    # full recompute: the layer being recomputed holds its whole activation set until
    # its backward is done (Chen et al. 2016: checkpoints + one segment)
    a_none = activation_bytes_per_layer(
        workload, plan.replace(recompute=0.0 * plan.recompute)
    )
    recompute_working = jnp.where(
        jnp.asarray(plan.recompute) > 1.5, a_none - a_layer, 0.0
    )
    head_act = jnp.where(
        jnp.asarray(plan.pp) < 1.5,
        4.0 * sbh / plan.tp * (1.0 + workload.vocab_size / workload.d_model),
        0.0,
    )

    def stage(k: int, n_layers):
        layer_dense, experts, emb = _stage_params(workload, plan, n_layers)
        dense = layer_dense + emb if k == 0 else layer_dense

        def sharded(zstage):
            on = z > zstage - 0.5
            return jnp.where(on, dense / shard_dense, dense) + jnp.where(
                on, experts / shard_exp, experts
            )

        # FP8 GEMMs: the cached FP8 weight and its transpose of every layer matrix
        # (Transformer Engine reuses them across the micro-batches of a step); with
        # ZeRO-3 the weights are gathered layer by layer and so are their copies
        fp8_copies = jnp.where(
            (jnp.asarray(plan.fp8) > 0.5) & (z < 2.5),
            FP8_WEIGHT_COPY_BYTES * (layer_dense + experts),
            0.0,
        )
        weights = BF16_BYTES * sharded(3) + fp8_copies
        grads = grad_bytes_per_param * sharded(2)
        optimizer = ADAM_STATE_BYTES * sharded(1)
        acts = (
            n_layers * a_layer * in_flight_microbatches(workload, plan, stage=k)
            + recompute_working
        )
        if k == 0:
            acts = acts + head_act
        return dict(
            weights=weights,
            grads=grads,
            optimizer=optimizer,
            activations=acts,
            total=weights + grads + optimizer + acts,
        )

    n_first, n_second = stage_layers(workload, plan)
    first = stage(0, n_first)
    second = stage(1, n_second)
    use_second = (
        (jnp.asarray(plan.pp_balance) > 0.5)
        & (jnp.asarray(plan.pp) > 2.5)
        & (second["total"] > first["total"])
    )
    parts = {k: jnp.where(use_second, second[k], first[k]) for k in first}
    return MemoryBreakdown(**{k: jnp.asarray(v, dtype=float) for k, v in parts.items()})


def comm_volumes(
    workload: TransformerConfig,
    plan: ParallelPlan,
    *,
    grad_bytes_per_param: float = BF16_BYTES,
) -> CommVolumes:
    """Communication volumes per chip, bytes (Megatron conventions).

    X = b·(T/c)·D·2 bytes is one full activation tensor of a micro-batch on a chip.
      tp_bytes_per_layer: 4·X. With SP: 2 all-gathers + 2 reduce-scatters of X each
          (forward); without SP: 2 all-reduces of X, each counted as 2·X (= RS + AG).
          So an all-reduce of X costs like an AG of X plus an RS of X.
      cp_bytes_per_layer: all-gather of K and V over the full sequence,
          2·b·T·K_c·H·2 (K_c = max(K, t)/t heads per chip).
      ep_bytes_per_layer: dispatch + combine all-to-alls, 2·k·X/t_sp (t_sp = t with SP:
          each TP rank dispatches its sequence shard), times the MoE-layer fraction.
      pp_bytes_per_microbatch: X/t_sp sent across one stage boundary (forward).
      dp_grad_bytes: g·P_c gradient bytes per chip reduced each step (dense and expert
          parameters; defined for d = 1 too — a group of one moves nothing, which is
          the collectives' business).
      dp_expert_grad_bytes: the routed-expert part of dp_grad_bytes (reduced over
          d·c/e ranks instead of d·c).
      zero3_param_bytes: under ZeRO-3 (0 otherwise), 2·(2·P_c): the chip's full
          weights all-gathered once for the forward and once for the backward pass of
          a micro-batch (``step_time`` charges it, and the gradient reduce-scatter, per
          micro-batch).
    Collectives over a group of one cost nothing; the volumes are kept.
    """
    c = plan.cp
    X = plan.mbs * workload.seq_len / c * workload.d_model * BF16_BYTES
    sp_div = _sp_div(plan)
    tp_bytes = 4.0 * X
    cp_bytes = (
        2.0
        * plan.mbs
        * workload.seq_len
        * _kv_heads_per_chip(workload, plan)
        * workload.head_dim
        * BF16_BYTES
    )
    ep_bytes = moe_layer_fraction(workload) * 2.0 * workload.top_k * X / sp_div
    pp_bytes = X / sp_div
    dense, experts = _params_per_chip(workload, plan)
    dp_grad = grad_bytes_per_param * (dense + experts)
    zero3 = jnp.where(
        jnp.asarray(plan.zero) > 2.5, 2.0 * BF16_BYTES * (dense + experts), 0.0
    )
    vols = dict(
        tp_bytes_per_layer=tp_bytes,
        cp_bytes_per_layer=cp_bytes,
        ep_bytes_per_layer=ep_bytes,
        pp_bytes_per_microbatch=pp_bytes,
        dp_grad_bytes=dp_grad,
        zero3_param_bytes=zero3,
        dp_expert_grad_bytes=grad_bytes_per_param * experts,
    )
    return CommVolumes(**{k: jnp.asarray(v, dtype=float) for k, v in vols.items()})


# ------------------------------------------------------------------ model table


_whole = schema.number(nonnegative=True, whole=True)


def _dim(cell: str) -> int:
    """A non-negative whole number of the model table."""
    return int(_whole(cell))


_MODEL_INT_DOCS = (
    ("num_layers", "L, transformer layers"),
    ("d_model", "D, hidden size"),
    ("num_heads", "N, query heads"),
    ("num_kv_heads", "K, key/value heads (N for multi-head attention)"),
    ("head_dim", "H, dimension of one head"),
    ("d_ff", "F, dense MLP inner size (per branch for SwiGLU)"),
    ("vocab_size", "V, vocabulary"),
    ("seq_len", "T, tokens per sequence"),
    ("global_batch_seqs", "B, sequences per optimizer step"),
    ("num_experts", "E, routed experts per MoE layer (1: dense)"),
    ("top_k", "k, routed experts per token (1: dense)"),
    ("moe_d_ff", "F_e, inner size of one expert (d_ff for a dense model)"),
    ("num_dense_layers", "leading layers of an MoE model with a dense MLP"),
    ("num_shared_experts", "E_s, experts every token passes through"),
)
_MODEL_INT_COLUMNS = tuple(name for name, _ in _MODEL_INT_DOCS)
#: Optional dimensions of multi-latent attention (blank or absent: not MLA).
_MODEL_MLA_DOCS = dict(
    zip(
        MLA_FIELDS,
        (
            "MLA query rank (q_lora_rank); blank: not MLA",
            "MLA key/value latent + RoPE key width; blank: not MLA",
            "stored query/key head width (MLA nope + rope); blank: head_dim",
            "stored value head width; blank: head_dim",
        ),
        strict=True,
    )
)
_KINDS = ("vendor_spec", "measured", "estimated")

#: The schema of ``data/models.csv``: every column must be in the header and filled
#: (``notes`` may be blank); dimensions are non-negative whole numbers (counts).
#: Other columns (``reported_params``, ...) are kept by the file for tests.
MODEL_COLUMNS: tuple[schema.Column, ...] = (
    schema.Column(
        "name", schema.text, required=True, present=True, doc="model name (unique)"
    ),
    *(
        schema.Column(name, _dim, required=True, present=True, doc=doc)
        for name, doc in _MODEL_INT_DOCS
    ),
    *(schema.Column(name, _dim, doc=doc) for name, doc in _MODEL_MLA_DOCS.items()),
    schema.Column(
        "mlp",
        schema.one_of(*(m.value for m in Mlp), fold=True),
        required=True,
        present=True,
        doc="MLP kind: swiglu (Llama-style) or gelu (GPT-style)",
    ),
    schema.Column(
        "tied_embeddings",
        schema.boolean(true=("true",), false=("false",)),
        required=True,
        present=True,
        doc="input embedding and LM head share weights: true or false",
    ),
    *schema.provenance_columns(
        _KINDS,
        locator_doc="table, section or page of the source",
        kind_doc="vendor_spec, measured or estimated",
    ),
    schema.Column("notes", schema.text, present=True, doc="free text"),
)


def models_csv_path() -> Path:
    """Path of the shipped model table, ``data/models.csv``."""
    return data_dir() / "models.csv"


def stack_models(models: list[TransformerConfig]) -> TransformerConfig:
    """Stack configs into one ``TransformerConfig`` with (n,) leaves.

    Static labels (name, mlp, tied_embeddings) of the result are the first model's;
    the formulas read the ``gated_mlp`` and ``tied_frac`` leaves, so models of
    different MLP kinds stack and are each counted correctly.

    Raises:
      PlanError: no model given.
    """
    if not models:
        raise PlanError("stack_models needs at least one model", column="models")
    first = models[0]
    return jax.tree.map(
        lambda *x: jnp.stack([jnp.asarray(v, dtype=float) for v in x]),
        *[
            m.replace(
                name=first.name, mlp=first.mlp, tied_embeddings=first.tied_embeddings
            )
            for m in models
        ],
    )


def load_models(path: str | Path | None = None) -> dict[str, TransformerConfig]:
    """Read the model table (default ``data/models.csv``) into configs keyed by name.

    Validated against :data:`MODEL_COLUMNS` by :func:`jaxcost.io.schema.read_table`;
    names must be unique and every row must build a valid
    :class:`TransformerConfig` (:meth:`TransformerConfig.create`).

    Raises:
      DataError: missing column, bad cell, duplicate name, empty source or
        inconsistent dimensions; the message is the first problem (file, row,
        column) and ``err.problems`` lists every problem of the file.
    """
    path = Path(path) if path is not None else models_csv_path()
    table = schema.read_table(path, MODEL_COLUMNS, unique=("name",))
    problems = table.all_problems()
    models: dict[str, TransformerConfig] = {}
    for i, v in enumerate(table.values):
        if table.problems[i]:
            continue
        dims = {c: v[c] for c in _MODEL_INT_COLUMNS}
        dims.update({c: v.get(c) for c in MLA_FIELDS if v.get(c) is not None})
        try:
            models[v["name"]] = TransformerConfig.create(
                name=v["name"],
                mlp=Mlp(v["mlp"]),
                tied_embeddings=v["tied_embeddings"],
                **dims,
            )
        except PlanError as exc:
            problems.append(
                schema.Problem(
                    table.file, i + 1, exc.column, exc.detail, table.lines[i]
                )
            )
    schema.raise_problems(problems)
    return models


def get_model(
    name: str, models: dict[str, TransformerConfig] | None = None
) -> TransformerConfig:
    """One model of the table by name (case-insensitive).

    Raises:
      DataError: no model of that name (the message lists the known names).
    """
    models = load_models() if models is None else models
    if name in models:
        return models[name]
    folded = {k.lower(): v for k, v in models.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    raise DataError(
        f"unknown model '{name}'; known: {', '.join(sorted(models))}",
        file=str(models_csv_path()),
        column="name",
    )
