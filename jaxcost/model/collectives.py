"""Alpha-beta times of collectives over a group that may span scale-up and scale-out.

Convention: ``num_bytes`` V is the **full (gathered) buffer per rank**: the output of an
all-gather, the input of a reduce-scatter, the buffer of an all-reduce (as in
nccl-tests' "size"), the whole send buffer of an all-to-all, the message of a send/recv.
Bandwidths are per chip and per direction; the effective bandwidth is the fitted
efficiency times the link bandwidth, W_up = e_up * W_scaleup,
W_out = e_out * W_scaleout, and the efficiency saturates with the buffer size like
every efficiency in jaxcost,
e(V) = e_max V / (V + V_half) — in the formulas below V stands for V + V_half (V > 0;
a zero-byte collective costs only its latency terms).

A group of n ranks has k = ranks_per_domain of them in each scale-up domain
(1 <= k <= n, default min(n, domain size)) and g = n / k domains. The algorithm is the
two-level one (it reduces to the flat ring when g = 1 or k = 1):

    all_gather     = (k-1)/k * V / W_up + (g-1)/g * V / (k W_out)
                     + (k-1) a_up + (g-1) a_out
    reduce_scatter = all_gather (the mirror algorithm)
    all_reduce     = reduce_scatter + all_gather  (intra RS, inter AR of V/k, intra AG)
    all_to_all     = [(k-1)/n * V / W_up + (n-k)/n * V / W_out] / e_a2a
                     + (k-1) a_up + (g-1) a_out
    send_recv      = V / W + a   (W, a of the scale-up or the scale-out link)

In the ideal limit (e = 1, a = 0, one domain) all_gather = V/W (n-1)/n and all_reduce
is twice that (scaling book). ``group_size`` and ``ranks_per_domain`` are float leaves;
the formulas are continuous in them and contain no Python branching on traced values.

Symbols: V bytes, n group size, k ranks per domain, g = n/k, W bytes/s per direction,
a latency per algorithm step (s).
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp

from jaxcost.model.hardware import ChipSpec
from jaxcost.model.numerics import safe_pow
from jaxcost.model.params import PhysicalParams
from jaxcost.model.roofline import smooth_max
from jaxcost.model.types import ArrayLike

__all__ = [
    "FUSED_A2A_SHARPNESS",
    "Collective",
    "ranks_per_domain",
    "all_gather_time",
    "reduce_scatter_time",
    "all_reduce_time",
    "all_to_all_time",
    "send_recv_time",
    "collective_time",
    "bus_bandwidth_factor",
    "nccl_bus_bandwidth",
    "time_from_bus_bandwidth",
]

#: p of the smooth max over the scale-up and scale-out times of a fused dispatcher
#: (structural: the two links run concurrently; 8 keeps it within 9 % of the max).
FUSED_A2A_SHARPNESS = 8.0

# Floor for bandwidths (bytes/s): keeps V / W finite (no inf * 0) for chips without a
# given link; such a link then costs a huge but finite time.
_MIN_BYTES_PER_S = 1.0


class Collective(enum.IntEnum):
    """Collective operations (codes usable as traced integers)."""

    ALL_GATHER = 0
    REDUCE_SCATTER = 1
    ALL_REDUCE = 2
    ALL_TO_ALL = 3
    SEND_RECV = 4


def _links(phys: PhysicalParams, chip: ChipSpec):
    """Effective bandwidths (bytes/s) and latencies of scale-up and scale-out."""
    w_out_raw = jnp.asarray(chip.scaleout_bytes_per_s)
    w_up_raw = jnp.asarray(chip.scaleup_bytes_per_s)
    # a chip without a scale-up fabric talks to its peers over the scale-out network;
    # so does one whose scale-up bandwidth is unknown (NaN): a lower bound, never NaN
    no_up = ~(w_up_raw > 0)
    w_up_raw = jnp.where(no_up, 1.0, w_up_raw)  # no NaN in the unused branch (grads)
    w_up = jnp.where(
        no_up, w_out_raw * phys.scaleout_bw_eff, w_up_raw * phys.scaleup_bw_eff
    )
    a_up = jnp.where(no_up, phys.scaleout_latency_s, phys.scaleup_latency_s)
    w_out = w_out_raw * phys.scaleout_bw_eff
    return (jnp.maximum(w_up, _MIN_BYTES_PER_S), a_up,
            jnp.maximum(w_out, _MIN_BYTES_PER_S), phys.scaleout_latency_s)


def _eff_bytes(phys: PhysicalParams, num_bytes: ArrayLike) -> jax.Array:
    """V + V_half for V > 0, else 0 (the saturating bandwidth-efficiency curve)."""
    v = jnp.asarray(num_bytes)
    return jnp.where(v > 0, v + phys.coll_half_bytes, 0.0)


def _split(chip: ChipSpec, group_size, ranks_per_domain):
    n = jnp.maximum(jnp.asarray(group_size, dtype=jnp.result_type(float)), 1.0)
    if ranks_per_domain is None:
        ranks_per_domain = jnp.minimum(n, jnp.maximum(chip.scaleup_domain_size, 1.0))
    k = jnp.clip(jnp.asarray(ranks_per_domain), 1.0, n)
    return n, k, n / k


def ranks_per_domain(group_size: ArrayLike, stride: ArrayLike,
                     domain_size: ArrayLike) -> jax.Array:
    """Members of a group that share one scale-up domain.

    A group whose consecutive members are ``stride`` ranks apart (Megatron rank order:
    tp innermost, then cp, dp, pp) has clip(domain / stride, 1, n) members per domain.
    """
    n = jnp.maximum(jnp.asarray(group_size, dtype=jnp.result_type(float)), 1.0)
    per = jnp.asarray(domain_size) / jnp.maximum(jnp.asarray(stride), 1.0)
    return jnp.clip(per, 1.0, n)


def all_gather_time(phys: PhysicalParams, chip: ChipSpec, num_bytes: ArrayLike,
                    group_size: ArrayLike, *,
                    ranks_per_domain: ArrayLike | None = None) -> jax.Array:
    """Two-level ring all-gather of a V-byte (gathered) buffer, s (see module doc)."""
    w_up, a_up, w_out, a_out = _links(phys, chip)
    n, k, g = _split(chip, group_size, ranks_per_domain)
    v = _eff_bytes(phys, num_bytes)
    return ((k - 1.0) / k * v / w_up + (g - 1.0) / g * v / (k * w_out)
            + (k - 1.0) * a_up + (g - 1.0) * a_out)


def reduce_scatter_time(phys: PhysicalParams, chip: ChipSpec, num_bytes: ArrayLike,
                        group_size: ArrayLike, *,
                        ranks_per_domain: ArrayLike | None = None) -> jax.Array:
    """Two-level ring reduce-scatter of a V-byte input buffer, s (same cost as
    all-gather)."""
    return all_gather_time(phys, chip, num_bytes, group_size,
                           ranks_per_domain=ranks_per_domain)


def all_reduce_time(phys: PhysicalParams, chip: ChipSpec, num_bytes: ArrayLike,
                    group_size: ArrayLike, *,
                    ranks_per_domain: ArrayLike | None = None) -> jax.Array:
    """Two-level all-reduce (intra RS, inter AR, intra AG) of V bytes, s: 2x
    all-gather."""
    return 2.0 * all_gather_time(phys, chip, num_bytes, group_size,
                                 ranks_per_domain=ranks_per_domain)


def all_to_all_time(phys: PhysicalParams, chip: ChipSpec, num_bytes: ArrayLike,
                    group_size: ArrayLike, *,
                    ranks_per_domain: ArrayLike | None = None,
                    fused: ArrayLike = 0.0,
                    copies_per_row: ArrayLike = 1.0) -> jax.Array:
    """All-to-all of a V-byte send buffer per rank, s.

    (k-1)/n of V goes over scale-up, (n-k)/n over scale-out. The NCCL all-to-all
    (``fused`` = 0) uses the links one after the other (sum of the two times, at the
    extra efficiency ``a2a_bw_eff``); a fused dispatcher (``fused`` = 1: DeepEP,
    HybridEP) drives both at once (smooth max of the two, sharpness
    ``FUSED_A2A_SHARPNESS``, at ``fused_a2a_bw_eff``).

    ``copies_per_row``: when the buffer holds q copies of each row bound for random
    ranks (an MoE dispatch: q = top-k), the fused dispatcher sends a row once to each
    other domain it goes to and forwards it inside the domain (DeepSeek-V3 report,
    Sec. 3.2.2), so its scale-out share shrinks by the expected domains hit per copy,
    D (1 - (1 - 1/D)^q) / q over D = n/k domains (1 for q = 1).
    """
    w_up, a_up, w_out, a_out = _links(phys, chip)
    n, k, g = _split(chip, group_size, ranks_per_domain)
    v = _eff_bytes(phys, num_bytes)
    t_up = (k - 1.0) / n * v / w_up
    t_out = (n - k) / n * v / w_out
    f = jnp.asarray(fused)
    q = jnp.maximum(jnp.asarray(copies_per_row, dtype=jnp.result_type(float)), 1.0)
    # base 0 at one domain (where t_out is 0 anyway): double where, finite gradients
    dedup = g * (1.0 - safe_pow(1.0 - 1.0 / g, q)) / q
    t_seq = (t_up + t_out) / phys.a2a_bw_eff
    t_par = smooth_max(t_up, dedup * t_out, FUSED_A2A_SHARPNESS) / phys.fused_a2a_bw_eff
    return (1.0 - f) * t_seq + f * t_par + (k - 1.0) * a_up + (g - 1.0) * a_out


def send_recv_time(phys: PhysicalParams, chip: ChipSpec, num_bytes: ArrayLike, *,
                   cross_domain: ArrayLike = 0.0) -> jax.Array:
    """Point-to-point transfer of V bytes, s.

    ``cross_domain`` in [0, 1] blends the scale-up (0) and scale-out (1) link.
    """
    w_up, a_up, w_out, a_out = _links(phys, chip)
    v = _eff_bytes(phys, num_bytes)
    c = jnp.asarray(cross_domain)
    return (1.0 - c) * (v / w_up + a_up) + c * (v / w_out + a_out)


def collective_time(kind: Collective | ArrayLike, phys: PhysicalParams, chip: ChipSpec,
                    num_bytes: ArrayLike, group_size: ArrayLike, *,
                    ranks_per_domain: ArrayLike | None = None) -> jax.Array:
    """Dispatch on ``kind``: a static :class:`Collective`, or integer codes (traced ok).

    For SEND_RECV, the peer is across domains when ranks_per_domain < group_size.
    """
    n, k, _ = _split(chip, group_size, ranks_per_domain)
    cross = jnp.where(k < n, 1.0, 0.0)
    args = (phys, chip, num_bytes, group_size)
    kw = {"ranks_per_domain": ranks_per_domain}
    if isinstance(kind, Collective):
        if kind == Collective.ALL_GATHER:
            return all_gather_time(*args, **kw)
        if kind == Collective.REDUCE_SCATTER:
            return reduce_scatter_time(*args, **kw)
        if kind == Collective.ALL_REDUCE:
            return all_reduce_time(*args, **kw)
        if kind == Collective.ALL_TO_ALL:
            return all_to_all_time(*args, **kw)
        return send_recv_time(phys, chip, num_bytes, cross_domain=cross)
    code = jnp.asarray(kind)
    ag = all_gather_time(*args, **kw)
    a2a = all_to_all_time(*args, **kw)
    p2p = send_recv_time(phys, chip, num_bytes, cross_domain=cross)
    return jnp.select([code == Collective.ALL_GATHER, code == Collective.REDUCE_SCATTER,
                       code == Collective.ALL_REDUCE, code == Collective.ALL_TO_ALL],
                      [ag, ag, 2.0 * ag, a2a], p2p)


def bus_bandwidth_factor(kind: Collective | ArrayLike, group_size: ArrayLike
                         ) -> jax.Array:
    """nccl-tests busbw / algbw: 2(n-1)/n all-reduce, (n-1)/n AG / RS / A2A, 1 p2p."""
    n = jnp.maximum(jnp.asarray(group_size, dtype=jnp.result_type(float)), 1.0)
    code = jnp.asarray(int(kind) if isinstance(kind, Collective) else kind)
    ring = (n - 1.0) / n
    return jnp.select([code == Collective.ALL_REDUCE, code == Collective.SEND_RECV],
                      [2.0 * ring, jnp.ones_like(ring)], ring)


def nccl_bus_bandwidth(kind: Collective | ArrayLike, num_bytes: ArrayLike,
                       time_s: ArrayLike, group_size: ArrayLike) -> jax.Array:
    """nccl-tests bus bandwidth, bytes/s: algbw = V / t, busbw = algbw * factor."""
    algbw = jnp.asarray(num_bytes) / jnp.asarray(time_s)
    return algbw * bus_bandwidth_factor(kind, group_size)


def time_from_bus_bandwidth(kind: Collective | ArrayLike, num_bytes: ArrayLike,
                            busbw_bytes_per_s: ArrayLike, group_size: ArrayLike
                            ) -> jax.Array:
    """Inverse of :func:`nccl_bus_bandwidth`: the time (s) of a measured busbw."""
    return (jnp.asarray(num_bytes) * bus_bandwidth_factor(kind, group_size)
            / jnp.asarray(busbw_bytes_per_s))
