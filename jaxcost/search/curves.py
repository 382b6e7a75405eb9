"""Throughput curves: best-plan tokens/s of each chip type at a grid of counts.

For each candidate chip type, the best plan's throughput at every count of a geometric
grid of multiples of the scale-up domain (the node), all (type, count, plan) rows in
ONE :func:`jaxcost.search.sweep.sweep_map` (the chip count and the chip type are
batched leaves, so the cost function is compiled once), each row scored by the one
scorer :func:`jaxcost.search.score.plan_time_s_physical`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcost.model.hardware import ChipSpec, ClusterSpec, Precision, check_chip_count
from jaxcost.model.params import CostParams, physical
from jaxcost.model.plan import plan_at, plan_to_str
from jaxcost.model.workload import TransformerConfig, tokens_per_step
from jaxcost.search import sweep
from jaxcost.search.plans import DEFAULT_CHUNK_SIZE
from jaxcost.search.score import plan_time_s_physical
from jaxcost.search.space import PlanSpace, enumerate_plans, space_precisions

__all__ = ["ThroughputCurve", "count_grid", "throughput_curves"]


@dataclasses.dataclass(frozen=True)
class ThroughputCurve:
    """Best-plan throughput of one chip type at a grid of counts.

    Attributes:
      key: chip key.
      counts: chip counts (ascending, int).
      tokens_per_s: best-plan tokens/s at each count (0 where no plan fits).
      plans: best plan string at each count ("" where none fits).
      step_s: best step time at each count, s (inf where none fits).
      num_plans: plans evaluated at each count (each precision counted once per
        plan).
      precisions: the best plan's GEMM precision at each count ("bf16" or "fp8";
        "" where none fits).
    """

    key: str
    counts: np.ndarray
    tokens_per_s: np.ndarray
    plans: tuple[str, ...]
    step_s: np.ndarray
    num_plans: np.ndarray
    precisions: tuple[str, ...]


def count_grid(
    node_size: int,
    max_count: float,
    *,
    steps_per_octave: int = 2,
    min_count: int | None = None,
    extra: Sequence[float] = (),
) -> np.ndarray:
    """Geometric grid of chip counts, multiples of ``node_size``, up to ``max_count``.

    Nodes ``round(2**(j / steps_per_octave))`` for j = 0, 1, ... (deduplicated), times
    ``node_size``; ``extra`` counts (e.g. the most chips a budget buys) are rounded
    down to a node multiple and added. Counts below one node are not on the grid
    unless ``min_count`` is smaller than a node (then ``min_count`` is its own point).
    """
    node = max(int(node_size), 1)
    max_nodes = math.floor(max_count / node) if math.isfinite(max_count) else 1 << 20
    pts: set[int] = set()
    j = 0
    while True:
        nodes = int(round(2 ** (j / steps_per_octave)))
        if nodes > max_nodes:
            break
        pts.add(nodes * node)
        j += 1
    for e in extra:
        if math.isfinite(e) and e >= node:
            pts.add(int(math.floor(min(e, max_count) / node)) * node)
    if min_count is not None and 1 <= min_count < node and min_count <= max_count:
        pts.add(int(min_count))
    return np.asarray(sorted(p for p in pts if p >= 1), dtype=np.int64)


def stack_static(chips: Sequence[ChipSpec]) -> ChipSpec:
    """Stack chips of different types into one record with ``(n,)`` leaves (static
    fields taken from the first chip; the step-time model reads only the leaves)."""
    first = chips[0]
    static = {
        f.name: getattr(first, f.name)
        for f in dataclasses.fields(first)
        if not f.metadata.get("pytree_node", True)
    }
    same = [c.replace(**static) for c in chips]
    return jax.tree.map(
        lambda *x: np.stack([np.asarray(v, np.float64) for v in x]), *same
    )


def throughput_curves(
    params: CostParams,
    workload: TransformerConfig,
    chips: Sequence[ChipSpec],
    counts: Sequence[np.ndarray],
    *,
    space: PlanSpace | None = None,
    precision: Precision | str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_plans: int = 200_000,
    progress: bool = False,
) -> list[ThroughputCurve]:
    """Best-plan throughput of each chip type at each of its counts.

    The plans of every (chip type, count) are concatenated into ONE batch whose rows
    carry the plan, the chip count and the chip type; each row looks up its chip's
    specification and physical parameters (``params.physical``, resolved per type
    outside the sweep) and is scored with ``step_time.predict_step_time_physical``
    through ONE :func:`jaxcost.search.sweep.sweep_map` (one compilation in all).

    Args:
      params: ``CostParams``.
      workload: ``TransformerConfig``.
      chips: ``ChipSpec`` per type.
      counts: chip counts per type.
      space: the plans searched; its ``precisions`` are a plan dimension (FP8 only on
        chips with an FP8 peak, :func:`jaxcost.search.space.space_precisions`): each
        plan is scored at each of them, as in :func:`jaxcost.search.plans.best_plan`.
      precision: one precision for every plan (None: ``space.precisions``).
      max_plans: largest number of plans per chip type; larger counts beyond it are
        left out (throughput 0).

    Returns:
      One :class:`ThroughputCurve` per chip type.
    """
    for t, cnts in enumerate(counts):
        check_chip_count(cnts, name=f"counts[{t}]")
    tps = tokens_per_step(workload)
    s = PlanSpace() if space is None else space
    blocks, owner_t, owner_c, nplans = [], [], [], []
    for t, (chip, cnts) in enumerate(zip(chips, counts, strict=True)):
        precs = (
            (Precision(str(precision).lower()),)
            if precision is not None
            else space_precisions(s, chip)
        )
        f8 = np.asarray([1.0 if p == Precision.FP8 else 0.0 for p in precs])
        total = 0
        per = []
        for i, n in enumerate(np.asarray(cnts, dtype=np.int64)):
            pl = enumerate_plans(workload, int(n), chip, s)
            m = sweep.batch_size(pl) if jax.tree.leaves(pl) else 0
            if m and total + m > max_plans:
                warnings.warn(
                    f"throughput_curves: {chip.key} at {int(n)} chips left out "
                    f"({total + m} plans would exceed max_plans={max_plans}); "
                    "raise max_plans to score it",
                    RuntimeWarning,
                    stacklevel=2,
                )
                m = 0
            per.append(m)
            if m:
                # one row per (plan, precision)
                reps = f8.size
                tiled = jax.tree.map(lambda x, r=reps: np.tile(np.asarray(x), r), pl)
                # the plan carries its precision (``fp8`` leaf, "-fp8" in its text)
                blocks.append(tiled.replace(fp8=np.repeat(f8, m)))
                owner_t.append(np.full(m * f8.size, t))
                owner_c.append(np.full(m * f8.size, i))
                total += m
        nplans.append(np.asarray(per, dtype=np.int64))
    steps = [np.full(len(c), np.inf) for c in counts]
    plan_s = [[""] * len(c) for c in counts]
    prec_s = [[""] * len(c) for c in counts]
    if blocks:
        allp = jax.tree.map(lambda *x: np.concatenate(x), *blocks)
        ot, oc = np.concatenate(owner_t), np.concatenate(owner_c)
        fl = np.asarray(allp.fp8)
        ncount = np.concatenate(
            [
                np.asarray(counts[t], np.float64)[oc[ot == t]]
                for t in range(len(chips))
                if np.any(ot == t)
            ]
        )
        stacked_chip = stack_static(list(chips))
        stacked_pp = jax.tree.map(
            lambda *x: np.stack([np.asarray(v, np.float64) for v in x]),
            *[physical(params, c) for c in chips],
        )

        def score(row):
            # the plan's fp8 leaf sets the precision it is timed at
            p, n, t = row
            chip = jax.tree.map(lambda x: jnp.asarray(x)[t], stacked_chip)
            pp = jax.tree.map(lambda x: jnp.asarray(x)[t], stacked_pp)
            return plan_time_s_physical(
                pp, ClusterSpec(chip=chip, num_chips=n), workload, p
            )

        scores, _ = sweep.sweep_map(
            score,
            (allp, ncount, ot.astype(np.int32)),
            chunk_size=chunk_size,
            progress=progress,
            desc="throughput curves",
        )
        scores = np.asarray(scores, dtype=np.float64)
        key = ot.astype(np.int64) * (1 << 32) + oc
        for k in np.unique(key):
            sel = np.flatnonzero(key == k)
            j = sel[np.argmin(scores[sel])]
            t, i = int(ot[j]), int(oc[j])
            if np.isfinite(scores[j]):
                steps[t][i] = scores[j]
                plan_s[t][i] = plan_to_str(plan_at(allp, int(j)))
                prec_s[t][i] = (
                    Precision.FP8 if fl[j] > 0.5 else Precision.BF16
                ).value
    out = []
    for t, chip in enumerate(chips):
        st = steps[t]
        tok = np.where(np.isfinite(st), tps / np.where(np.isfinite(st), st, 1.0), 0.0)
        out.append(
            ThroughputCurve(
                key=chip.key,
                counts=np.asarray(counts[t], np.int64),
                tokens_per_s=tok,
                plans=tuple(plan_s[t]),
                step_s=st,
                num_plans=nplans[t],
                precisions=tuple(prec_s[t]),
            )
        )
    return out
