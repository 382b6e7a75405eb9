"""Shared helpers of the experiment scripts (not part of the library).

* :func:`setup` — 64-bit floats, numpy seed, matplotlib Agg, the output folder.
* :func:`load_calibration` — the shipped calibration ``data/calibration/default.json``
  (point estimate + bootstrap ensemble) when it exists; otherwise the hand-set priors
  ``default_params()`` with an ensemble of prior draws (raw values ~ N(prior, sigma²)
  from ``data/priors.csv``), clearly labelled as such in every report.
* :func:`ensemble_step_times` — one configuration (cluster, model, plan) evaluated
  under every ensemble member (one ``jit(vmap)`` per chip type and model).
* :func:`interval` / :func:`fmt_interval` — median and 5–95 % range.
* :func:`days_with_goodput` — failure-free time to wall-clock days with goodput
  (``jaxcost.goodput_frac_range``), with the range over the sourced parameter sets.
* :func:`claims` — published numbers quoted by the experiments, read from
  ``experiments/claims.csv`` (each with its source); no published number lives in code.
* :func:`write_report` — ``report.md`` + ``table.csv`` + ``figure.png`` written
  atomically under ``experiments/out/<slug>/``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT_ROOT = ROOT / "experiments" / "out"
CALIBRATION_PATH = ROOT / "data" / "calibration" / "default.json"
CLAIMS_PATH = ROOT / "experiments" / "claims.csv"
SEED = 0
#: Options of the searched plans: the gradient reduction overlapped bucket by bucket
#: with the backward pass, the recipe default of the Megatron-Core frameworks (NeMo,
#: Megatron-Bridge; see data/benchmarks/software_rules.csv, column dp_comm_overlap),
#: and FP8 GEMMs tried as a plan dimension on chips with an FP8 peak (Transformer
#: Engine recipes; BF16 elsewhere).
PLANS = {"dp_overlap": True, "precisions": ("bf16", "fp8")}


def setup() -> float:
    """64-bit floats, seeded numpy, non-interactive matplotlib; returns a start time."""
    jax.config.update("jax_enable_x64", True)
    np.random.seed(SEED)
    import matplotlib

    matplotlib.use("Agg")
    return time.perf_counter()


# ---------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """Point parameters, an ensemble (``CostParams`` with ``(B,)`` leaves) and where
    they came from (``kind`` is ``"bootstrap"`` or ``"prior draws"``)."""

    params: Any
    ensemble: Any
    kind: str
    source: str

    @property
    def size(self) -> int:
        return int(np.asarray(self.ensemble.global_raw.mm_eff_max).shape[0])

    def describe(self) -> str:
        return (f"parameters: {self.source}; prediction intervals: {self.size} "
                f"{self.kind} members (median and 5–95 % range)")


def _prior_ensemble(num: int, seed: int):
    from jaxcost import default_params
    from jaxcost.model.params import PARAM_NAMES, RawParams, prior_sigmas

    base = default_params()
    sig = prior_sigmas()
    rng = np.random.default_rng(seed)
    vals = {n: jnp.asarray(float(getattr(base.global_raw, n))
                           + float(getattr(sig, n)) * rng.standard_normal(num))
            for n in PARAM_NAMES}
    return base.replace(global_raw=RawParams(**vals))


def load_calibration(*, num_prior_draws: int = 32, seed: int = SEED) -> Calibration:
    """The shipped calibration when it exists, else the priors with prior draws."""
    from jaxcost import default_params, load_params

    if CALIBRATION_PATH.exists():
        from jaxcost.calibrate import ensemble_from_json

        params, prov = load_params(CALIBRATION_PATH)
        doc = json.loads(CALIBRATION_PATH.read_text())
        ens_doc = doc.get("bootstrap") or (prov or {}).get("bootstrap")
        rel = CALIBRATION_PATH.relative_to(ROOT)
        if ens_doc:
            if isinstance(ens_doc, dict) and "params" in ens_doc and \
                    "global" not in ens_doc:
                ens_doc = ens_doc["params"]
            ens = ensemble_from_json(ens_doc, file=str(CALIBRATION_PATH))
            return Calibration(params, ens, "bootstrap", f"fitted ({rel})")
        return Calibration(params, _prior_ensemble(num_prior_draws, seed),
                           "prior draws", f"fitted ({rel}, no bootstrap ensemble)")
    return Calibration(default_params(), _prior_ensemble(num_prior_draws, seed),
                       "prior draws", "hand-set priors (data/priors.csv; "
                       "data/calibration/default.json not present)")


_ENS_FNS: dict[Any, Callable] = {}


def ensemble_step_times(ensemble, cluster, workload, plan):
    """``StepTime`` of one configuration under every member (``(B,)`` leaves).

    ``cluster`` may be a ``ClusterSpec`` or a tuple of them (heterogeneous, then
    ``plan`` is a tuple of plans and ``mode`` "data"/"pipeline" is given as
    ``cluster = (mode, clusters)``).
    """
    from jaxcost import predict_step_time, predict_step_time_hetero

    if isinstance(cluster, tuple) and isinstance(cluster[0], str):
        mode, cl = cluster
        key = ("hetero", mode, tuple(c.chip.key for c in cl), workload.name)
        if key not in _ENS_FNS:
            _ENS_FNS[key] = jax.jit(jax.vmap(
                lambda p, c, w, pl: predict_step_time_hetero(p, c, w, pl, mode=mode),
                in_axes=(0, None, None, None)))
        return _ENS_FNS[key](ensemble, cl, workload, plan)
    key = ("homo", cluster.chip.key, workload.name)
    if key not in _ENS_FNS:
        _ENS_FNS[key] = jax.jit(jax.vmap(predict_step_time,
                                         in_axes=(0, None, None, None)))
    return _ENS_FNS[key](ensemble, cluster, workload, plan)


def tokens_per_step(workload) -> float:
    return float(workload.global_batch_seqs) * float(workload.seq_len)


def interval(x) -> tuple[float, float, float]:
    """(median, 5th, 95th percentile) of finite values (nan when none)."""
    a = np.asarray(x, np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return (float("nan"),) * 3
    return (
        float(np.median(a)),
        float(np.percentile(a, 5)),
        float(np.percentile(a, 95)),
    )


def days_with_goodput(time_to_train_s, num_chips: float) -> tuple[float, float, float]:
    """Wall-clock days of a failure-free ``time_to_train_s`` on ``num_chips`` chips:
    (default, lo, hi) = time / goodput, goodput from ``jaxcost.goodput_frac_range``
    (default parameters of data/goodput.csv; lo/hi over its sourced parameter sets).
    Reports keep ``days`` compute-only and name this column ``days_with_goodput``."""
    import jaxcost as jc

    lo_g, mid_g, hi_g = jc.goodput_frac_range(float(num_chips))
    days = float(time_to_train_s) / 86400.0
    return days / mid_g, days / hi_g, days / lo_g


def fmt_interval(x, fmt: str = ".3g") -> str:
    m, lo, hi = interval(x)
    return f"{m:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def subset_plans(plans, mask):
    """Rows of a batched ``ParallelPlan`` where ``mask`` is true."""
    mask = np.asarray(mask, bool)
    return jax.tree.map(lambda x: np.asarray(x)[mask], plans)


# ---------------------------------------------------------------------- claims


def claims() -> dict[str, dict[str, str]]:
    """Published numbers quoted by the experiments: key -> row of claims.csv."""
    with open(CLAIMS_PATH, newline="") as fh:
        return {r["key"]: r for r in csv.DictReader(fh)}


def claim(key: str) -> float:
    return float(claims()[key]["value"])


# ---------------------------------------------------------------------- reports


def _columns(rows: Sequence[dict]) -> list[str]:
    """Union of the rows' keys, in first-seen order."""
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def md_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A list of dicts as a Markdown table."""
    if not rows:
        return "(no rows)"
    cols = list(columns or _columns(rows))

    def f(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(f(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_report(slug: str, title: str, body: str, rows: Sequence[dict], fig,
                 *, seconds: float, calibration: Calibration) -> Path:
    """Write ``report.md``, ``table.csv`` and ``figure.png`` under ``out/<slug>``."""
    from jaxcost.io.atomic import atomic_path, atomic_write_text

    out = OUT_ROOT / slug
    out.mkdir(parents=True, exist_ok=True)
    cols = _columns(rows)
    lines = [",".join(cols)]
    for r in rows:
        vals = []
        for c in cols:
            v = r.get(c, "")
            s = f"{v:.6g}" if isinstance(v, float) else str(v)
            vals.append(
                '"' + s.replace('"', "'") + '"' if ("," in s or '"' in s) else s
            )
        lines.append(",".join(vals))
    atomic_write_text(out / "table.csv", "\n".join(lines) + "\n")
    if fig is not None:
        with atomic_path(out / "figure.png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    md = (f"# {title}\n\n{body}\n\n## Table\n\n{md_table(rows)}\n\n"
          f"![figure](figure.png)\n\n---\n{calibration.describe()}. "
          f"Run time {seconds:.0f} s (`{os.cpu_count()}` CPUs visible, jax "
          f"{jax.__version__}).\n")
    atomic_write_text(out / "report.md", md)
    return out


def nearest_valid_count(w, chip, target: float) -> int:
    """Node multiple nearest to ``target`` (lower on ties) with at least one valid,
    memory-fitting plan of ``w`` on ``chip``."""
    import jaxcost as jc

    node = max(int(float(chip.scaleup_domain_size)), 1)
    t = int(round(target))
    cands = sorted(range(node, 4 * t + node, node), key=lambda n: (abs(n - t), n))
    for n in cands:
        if np.asarray(jc.enumerate_plans(w, n, chip).tp).size:
            return n
    raise ValueError(f"no valid count of {chip.key} near {target} for {w.name}")


def candidate_chips(scenario) -> dict:
    """Scenario candidate key (as in ``ClusterResult.counts``) -> ``ChipSpec``."""
    return {(f"{c.chip.key}(owned)" if c.owned else c.chip.key): c.chip
            for c in scenario.candidates}


def cluster_step_s(ensemble, cluster_result, workload, scenario) -> np.ndarray:
    """Step time (s) of a chosen ``ClusterResult`` (counts and plans) under every
    ensemble member; mixed clusters with the heterogeneous data-parallel model."""
    import jaxcost as jc

    chips = candidate_chips(scenario)
    keys = list(cluster_result.counts)
    clusters = tuple(jc.ClusterSpec(chip=chips[k],
                                    num_chips=float(cluster_result.counts[k]))
                     for k in keys)
    plans = tuple(jc.plan_from_str(cluster_result.plans[k]) for k in keys)
    if len(keys) == 1:
        st = ensemble_step_times(ensemble, clusters[0], workload, plans[0])
    else:
        st = ensemble_step_times(ensemble, ("data", clusters), workload, plans)
    ok = np.asarray(st.fits_in_hbm) > 0.5
    return np.where(ok, np.asarray(st.total_s), np.inf)


def point_step_time(params, cluster, workload, plan):
    """``StepTime`` of one configuration with point parameters, jitted and cached
    (same conventions as :func:`ensemble_step_times`)."""
    from jaxcost import predict_step_time, predict_step_time_hetero

    if isinstance(cluster, tuple) and isinstance(cluster[0], str):
        mode, cl = cluster
        key = ("point-hetero", mode, tuple(c.chip.key for c in cl), workload.name)
        if key not in _ENS_FNS:
            _ENS_FNS[key] = jax.jit(
                lambda p, c, w, pl: predict_step_time_hetero(p, c, w, pl, mode=mode))
        return _ENS_FNS[key](params, cl, workload, plan)
    key = ("point", cluster.chip.key, workload.name)
    if key not in _ENS_FNS:
        _ENS_FNS[key] = jax.jit(predict_step_time)
    return _ENS_FNS[key](params, cluster, workload, plan)
