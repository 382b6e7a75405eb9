"""Validity of parallel plans: divisibility, scale-up domain and memory.

Validity conditions live in one place (:func:`plan_conditions`), evaluated with numpy
on arrays of candidate plans: :func:`check_plan` reports the first violated one for a
single plan, :func:`jaxcost.search.space.enumerate_plans` keeps the plans that violate
none. Symbols as in :mod:`jaxcost.model.plan`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.errors import PlanError
from jaxcost.model.hardware import ChipSpec
from jaxcost.model.plan import PLAN_FIELDS, ParallelPlan
from jaxcost.model.workload import TransformerConfig, memory_bytes
from jaxcost.units import GIB

__all__ = [
    "USABLE_HBM_FRAC",
    "num_microbatches",
    "plan_conditions",
    "memory_condition",
    "check_plan",
    "uneven_layer_split",
]

#: Default fraction of HBM capacity usable by the training job.
USABLE_HBM_FRAC = 0.95


def num_microbatches(w: TransformerConfig, plan: ParallelPlan) -> jax.Array:
    """Micro-batches per step per pipeline: m = B/(dp·mbs)."""
    return w.global_batch_seqs / (plan.dp * plan.mbs)


# ------------------------------------------------------------------- conditions


def _divides(a, b):
    """Elementwise: integer a divides integer b (numpy float arrays)."""
    return np.mod(b, a) == 0


def _zero_group_ok(zg, ranks):
    """A shard group of 0 (all ranks) or a proper divisor g of dp·cp, g ≥ 1."""
    zg = np.asarray(zg, dtype=float)
    safe = np.maximum(zg, 1.0)
    return (zg < 0.5) | ((zg >= 1.0) & (zg < ranks) & (np.mod(ranks, safe) == 0))


def plan_conditions(
    w: TransformerConfig, p: dict, n_chips: float, *, max_tp: float | None
):
    """Validity conditions as (name, mask, message(i)) triples over numpy arrays.

    ``p`` maps plan field -> numpy float array (P,). Masks are True where valid.
    """
    N = float(w.num_heads)
    K = float(w.num_kv_heads)
    L = float(w.num_layers)
    T = float(w.seq_len)
    B = float(w.global_batch_seqs)
    E = float(w.num_experts)
    dp, tp, pp, cp, ep, vpp, mbs = (
        p[k] for k in ("dp", "tp", "pp", "cp", "ep", "vpp", "mbs")
    )
    chips = dp * tp * pp * cp
    m = B / (dp * mbs)
    g = lambda a, i: f"{a[i]:g}"  # noqa: E731
    conds = [
        (
            "chips",
            chips == n_chips,
            lambda i: (
                f"dp·tp·pp·cp = {g(dp, i)}·{g(tp, i)}·{g(pp, i)}·{g(cp, i)} = "
                f"{g(chips, i)} != num_chips={n_chips:g}"
            ),
        ),
        (
            "tp_heads",
            _divides(tp, N),
            lambda i: f"tp={g(tp, i)} does not divide num_heads={N:g}",
        ),
        (
            "tp_kv_heads",
            _divides(tp, K) | _divides(K, tp),
            lambda i: (
                f"tp={g(tp, i)} and num_kv_heads={K:g}: neither divides the other"
            ),
        ),
    ]
    if max_tp is not None:
        conds.append(
            (
                "tp_domain",
                tp <= max_tp,
                lambda i: f"tp={g(tp, i)} exceeds max_tp={max_tp:g} (scale-up domain)",
            )
        )
    # a balanced split (pp_balance) gives stages unequal whole numbers of layers: it
    # needs only one layer per virtual stage
    bal_ok = (np.asarray(p.get("pp_balance", np.zeros_like(pp))) > 0.5) & (
        pp * vpp <= L
    )
    conds += [
        (
            "pp_layers",
            _divides(pp, L) | bal_ok,
            lambda i: f"pp={g(pp, i)} does not divide num_layers={L:g}",
        ),
        (
            "vpp_pp",
            (vpp == 1) | (pp > 1),
            lambda i: f"vpp={g(vpp, i)} > 1 needs pp > 1 (pp={g(pp, i)})",
        ),
        (
            "vpp_layers",
            (vpp == 1) | _divides(vpp, L / pp) | bal_ok,
            lambda i: (
                f"vpp={g(vpp, i)} does not divide layers per stage "
                f"num_layers/pp={L / pp[i]:g}"
            ),
        ),
        (
            "cp_seq",
            _divides(cp, T),
            lambda i: f"cp={g(cp, i)} does not divide seq_len={T:g}",
        ),
        (
            "ep_experts",
            _divides(ep, E),
            lambda i: f"ep={g(ep, i)} does not divide num_experts={E:g}",
        ),
        (
            "ep_dpcp",
            _divides(ep, dp * cp),
            lambda i: f"ep={g(ep, i)} does not divide dp·cp={g(dp * cp, i)}",
        ),
        (
            "zero_group",
            _zero_group_ok(p.get("zero_group", np.zeros_like(dp)), dp * cp),
            lambda i: (
                f"zero_group={g(p['zero_group'], i)} must divide dp·cp="
                f"{g(dp * cp, i)} and be smaller (0: one group of all of them)"
            ),
        ),
        (
            "batch",
            _divides(dp * mbs, B),
            lambda i: (
                f"dp·mbs={g(dp * mbs, i)} does not divide global_batch_seqs={B:g}"
            ),
        ),
        (
            "vpp_microbatches",
            (vpp == 1) | _divides(pp, m),
            lambda i: (
                f"vpp={g(vpp, i)} > 1 needs num_microbatches={m[i]:g} divisible "
                f"by pp={g(pp, i)}"
            ),
        ),
    ]
    return conds


def memory_condition(w, p: dict, chip: ChipSpec, usable_hbm_frac: float):
    plan = ParallelPlan(**{k: jnp.asarray(v) for k, v in p.items()})
    total = np.asarray(memory_bytes(w, plan).total)
    cap = float(chip.hbm_capacity_bytes) * usable_hbm_frac
    return (
        "memory",
        total <= cap,
        lambda i: (
            f"memory {total[i] / GIB:.1f} GiB per chip exceeds "
            f"{usable_hbm_frac:g} × hbm {float(chip.hbm_capacity_bytes) / GIB:.1f}"
            f" GiB of {chip.key}"
        ),
    )


def check_plan(
    w: TransformerConfig,
    plan: ParallelPlan,
    num_chips: int,
    chip: ChipSpec | None = None,
    *,
    max_tp: float | None = None,
    usable_hbm_frac: float = USABLE_HBM_FRAC,
) -> None:
    """Raise ``PlanError`` if ``plan`` is invalid for model ``w`` on ``num_chips``.

    Conditions (in this order): dp·tp·pp·cp = num_chips; tp | N; tp | K or K | tp (KV
    heads replicated); tp ≤ max_tp (if given); pp | L; vpp > 1 needs pp > 1,
    vpp | L/pp (with ``pp_balance``: only pp·vpp ≤ L) and pp | m; cp | T; ep | E;
    ep | dp·cp; dp·mbs | B; and, when ``chip`` is given, peak memory
    (``workload.memory_bytes``) ≤ usable_hbm_frac × HBM.

    Raises:
      PlanError: one line naming the violated condition and the values.
    """
    p = {
        k: np.atleast_1d(np.asarray(getattr(plan, k), dtype=float)) for k in PLAN_FIELDS
    }
    if any(v.shape != (1,) for v in p.values()):
        raise PlanError(
            "check_plan takes one plan (scalar leaves); "
            "use enumerate_plans for batches",
            column="plan",
        )
    conds = plan_conditions(w, p, float(num_chips), max_tp=max_tp)
    for name, ok, msg in conds:
        if not ok[0]:
            raise PlanError(msg(0), row=f"model '{w.name}'", column=name)
    if chip is not None:
        name, ok, msg = memory_condition(w, p, chip, usable_hbm_frac)
        if not ok[0]:
            raise PlanError(msg(0), row=f"model '{w.name}'", column=name)


def uneven_layer_split(layers, pp, vpp) -> np.ndarray:
    """Whether ``layers`` cannot be split evenly over pp > 1 stages of vpp chunks each
    (numpy, broadcasting): such a run must give its stages unequal numbers of layers."""
    pp = np.asarray(pp, dtype=float)
    return (
        np.mod(np.asarray(layers, dtype=float), pp * np.asarray(vpp, dtype=float)) != 0
    ) & (pp > 1)
