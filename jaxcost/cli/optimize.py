"""``jaxcost optimize``: the best clusters and plans of a scenario, written as
ranked.csv, result.json and pareto.png (all three, or none)."""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path

from jaxcost import units
from jaxcost.cli.common import (
    csv_text,
    fmt,
    sci,
    shipped_calibration,
    text_table,
    write_together,
)
from jaxcost.errors import JaxcostError
from jaxcost.model.goodput import goodput_frac_range
from jaxcost.model.params import default_params, load_params
from jaxcost.policy.mix import chip_mix
from jaxcost.policy.scenario import load_scenario

__all__ = ["cmd_optimize"]


# --------------------------------------------------------------------------- parser
def _optimize_outputs(res, sc, top: int) -> tuple[str, str, str, bytes]:
    """The printed table, ranked.csv, result.json and pareto.png of a chip-mix
    result.

    ``time_to_train_days`` / ``time_to_train_s`` are failure-free compute time;
    ``days_with_goodput`` / ``time_to_train_with_goodput_s`` divide it by the goodput of
    the cluster's chip count (``model.goodput``, default parameters of
    data/goodput.csv), with ``_lo`` / ``_hi`` over the file's sourced parameter sets."""

    goodput_cache: dict[int, tuple[float, float, float]] = {}

    def with_goodput(r) -> tuple[float, float, float]:
        """(default, lo, hi) wall-clock time to train with failures, s."""
        n = int(sum(r.counts.values()))
        if n not in goodput_cache:
            goodput_cache[n] = goodput_frac_range(max(n, 1))
        lo_g, mid_g, hi_g = goodput_cache[n]
        t = r.time_to_train_s
        return t / mid_g, t / hi_g, t / lo_g

    header = [
        "rank",
        "chips",
        "plan",
        "time_to_train_days",
        "days_with_goodput",
        "capex_musd",
        "power_mw",
        "tokens_per_s",
        "flags",
    ]
    rows, csv_rows = [], []
    for i, r in enumerate(res.clusters[:top], start=1):
        rows.append(
            [
                str(i),
                r.label,
                r.plan_label,
                fmt(r.time_to_train_s, units.SECONDS_PER_DAY),
                fmt(with_goodput(r)[0], units.SECONDS_PER_DAY),
                fmt(r.capex_usd, units.MEGA),
                fmt(r.power_w, units.MEGA),
                fmt(r.tokens_per_s),
                ",".join(r.flags) or "-",
            ]
        )
        csv_rows.append(
            [
                i,
                r.label,
                r.plan_label,
                sci(r.time_to_train_s),
                *(sci(x) for x in with_goodput(r)),
                sci(r.capex_usd),
                sci(r.power_w),
                sci(r.tokens_per_s),
                sci(r.surrogate_tokens_per_s),
                r.throughput_model,
                ";".join(r.flags),
            ]
        )
    lines = [
        f"scenario {sc.name}: {sc.description}".rstrip(": "),
        f"model {sc.model.name}, {sc.tokens:.3g} tokens, regime {sc.regime}, "
        f"objective {sc.objective}",
        text_table(header, rows),
    ]
    for key, why in res.excluded.items():
        lines.append(f"excluded {key}: {why}")
    if res.exhaustive_agrees is not None:
        lines.append(
            "relaxed + repair optimum equals exhaustive grid optimum: "
            f"{'yes' if res.exhaustive_agrees else 'NO'}"
        )
    lines.append(f"{res.seconds.get('total', float('nan')):.1f} s")
    ranked_csv = csv_text(
        [
            "rank",
            "chips",
            "plan",
            "time_to_train_s",
            "time_to_train_with_goodput_s",
            "time_to_train_with_goodput_s_lo",
            "time_to_train_with_goodput_s_hi",
            "capex_usd",
            "power_w",
            "tokens_per_s",
            "surrogate_tokens_per_s",
            "throughput_model",
            "flags",
        ],
        csv_rows,
    )

    def cluster_json(r):
        return {
            "counts": r.counts,
            "plans": r.plans,
            "group_tokens_per_s": r.group_tokens_per_s,
            "tokens_per_s": r.tokens_per_s,
            "surrogate_tokens_per_s": r.surrogate_tokens_per_s,
            "time_to_train_s": r.time_to_train_s,
            "time_to_train_with_goodput_s": dict(
                zip(("default", "lo", "hi"), with_goodput(r), strict=True)
            ),
            "capex_usd": r.capex_usd,
            "power_w": r.power_w,
            "tpp": r.tpp,
            "flags": list(r.flags),
            "throughput_model": r.throughput_model,
        }

    def finite(x):
        return x if math.isfinite(x) else None

    result = {
        "scenario": sc.name,
        "path": sc.path,
        "model": sc.model.name,
        "tokens": sc.tokens,
        "regime": sc.regime,
        "objective": sc.objective,
        "limits": {
            "budget_usd": finite(sc.budget_usd),
            "power_w": finite(sc.power_w),
            "pue": sc.pue,
            "max_chips": finite(sc.max_chips),
            "tpp_cap": finite(sc.tpp_cap),
            "max_time_to_train_s": finite(sc.max_time_to_train_s),
        },
        "clusters": [cluster_json(r) for r in res.clusters[:top]],
        "pareto": [cluster_json(r) for r in res.pareto],
        "excluded": res.excluded,
        "exhaustive_agrees": res.exhaustive_agrees,
        "curves": [
            {
                "chip": c.key,
                "counts": c.counts.tolist(),
                "tokens_per_s": c.tokens_per_s.tolist(),
                "plans": list(c.plans),
            }
            for c in res.curves
        ],
        "seconds": res.seconds,
    }
    result_json = json.dumps(result, indent=2, allow_nan=False) + "\n"

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    allc = res.clusters[:top]
    ax.scatter(
        [r.capex_usd / units.MEGA for r in allc],
        [r.time_to_train_s / units.SECONDS_PER_DAY for r in allc],
        s=18,
        color="0.6",
        label="ranked clusters",
    )
    ax.plot(
        [r.capex_usd / units.MEGA for r in res.pareto],
        [r.time_to_train_s / units.SECONDS_PER_DAY for r in res.pareto],
        "o-",
        color="C0",
        label="Pareto front",
    )
    for r in res.pareto:
        ax.annotate(
            r.label,
            (r.capex_usd / units.MEGA, r.time_to_train_s / units.SECONDS_PER_DAY),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("capex (million USD)")
    ax.set_ylabel("time to train (days)")
    ax.set_title(f"{sc.name}: {sc.model.name}, regime {sc.regime}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return "\n".join(lines), ranked_csv, result_json, buf.getvalue()


def cmd_optimize(args: argparse.Namespace) -> int:
    """``jaxcost optimize [SCENARIO]``: ranked clusters, Pareto front, files in
    --out."""

    sc = load_scenario(args.scenario)
    shipped = shipped_calibration()
    if args.params:
        params = load_params(args.params)[0]
    elif args.priors or not shipped.exists():
        params = default_params()
    else:
        params = load_params(shipped)[0]
    top = args.top if args.top is not None else sc.search.top
    if top < 1:
        raise JaxcostError(f"--top {top}: expected an integer >= 1", column="--top")
    res = chip_mix(params, None, sc, progress=args.progress)
    text, ranked_csv, result_json, png = _optimize_outputs(res, sc, top)
    out = Path(args.out) if args.out else Path("experiments/out/optimize") / sc.name
    # everything is built in memory above; only now are the files written: all
    # three, or none (a failure leaves the folder as it was)
    write_together(
        {
            out / "ranked.csv": lambda tmp: tmp.write_text(ranked_csv),
            out / "result.json": lambda tmp: tmp.write_text(result_json),
            out / "pareto.png": lambda tmp: tmp.write_bytes(png),
        }
    )
    print(text)
    print(f"wrote {out / 'ranked.csv'}, {out / 'result.json'}, {out / 'pareto.png'}")
    return 0
