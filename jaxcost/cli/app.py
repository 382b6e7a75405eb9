"""The ``jaxcost`` command: parse arguments, call the library, print or write files.

One function per subcommand, ``_cmd_<name>(args) -> int``, registered in
:func:`build_parser`. No modelling logic lives here. Input errors
(:class:`~jaxcost.errors.JaxcostError`) are printed as one line ``jaxcost: <message>``
on stderr with exit status 2, without a traceback; every output file is written
atomically, so a failed command leaves no partial file.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import jaxcost
from jaxcost import calibrate, units
from jaxcost.errors import JaxcostError, PlanError, RegimeError
from jaxcost.io import benchmarks
from jaxcost.io.atomic import atomic_write_bytes, atomic_write_text
from jaxcost.io.paths import data_dir
from jaxcost.model.hardware import load_chips
from jaxcost.model.params import default_params, load_params, save_params
from jaxcost.policy.export_control import (
    classify,
    load_regimes,
    performance_density,
    tpp,
)
from jaxcost.policy.mix import chip_mix
from jaxcost.policy.scenario import load_scenario


def _fmt(value: float, scale: float = 1.0, digits: int = 4) -> str:
    """Human-readable number (``-`` for unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / scale:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An aligned plain-text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        )
    return "\n".join(line.rstrip() for line in lines)


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _sci(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6e}"


def _shipped_calibration():
    """Path of the shipped calibration, ``data/calibration/default.json``."""
    return data_dir() / "calibration" / "default.json"


# ---------------------------------------------------------------------- subcommands
_CHIP_SI_FIELDS = [
    "peak_flop_per_s_fp64",
    "peak_flop_per_s_fp32",
    "peak_flop_per_s_bf16",
    "peak_flop_per_s_fp8",
    "peak_op_per_s_int8",
    "peak_flop_per_s_fp4",
    "hbm_capacity_bytes",
    "hbm_bytes_per_s",
    "scaleup_bytes_per_s",
    "scaleup_domain_size",
    "scaleout_bytes_per_s",
    "io_bidir_bytes_per_s",
    "die_area_m2",
    "tdp_w",
    "price_usd",
    "year",
]


def _cmd_chips(args: argparse.Namespace) -> int:
    """``jaxcost chips``: the chip table in human units, with TPP and PD."""
    chips = load_chips(args.chips)
    rows, si_rows = [], []
    for chip in chips.values():
        t, p = float(tpp(chip)), float(performance_density(chip))
        rows.append(
            [
                chip.key,
                chip.vendor,
                chip.family,
                _fmt(float(chip.year), digits=4),
                _fmt(float(chip.peak_flop_per_s_bf16), units.TERA),
                _fmt(float(chip.peak_flop_per_s_fp8), units.TERA),
                _fmt(float(chip.hbm_capacity_bytes), units.GIGA),
                _fmt(float(chip.hbm_bytes_per_s), units.TERA),
                _fmt(float(chip.scaleup_bytes_per_s), units.GIGA),
                _fmt(float(chip.scaleout_bytes_per_s), units.GIGA),
                _fmt(float(chip.tdp_w)),
                _fmt(float(chip.price_usd), digits=5),
                _fmt(t, digits=5),
                _fmt(p),
            ]
        )
        si_rows.append(
            [
                chip.key,
                chip.name,
                chip.vendor,
                chip.family,
                str(chip.datacenter),
                chip.memory_type,
            ]
            + [_sci(float(getattr(chip, f))) for f in _CHIP_SI_FIELDS]
            + [_sci(t), _sci(p)]
        )
    header = [
        "key",
        "vendor",
        "family",
        "year",
        "bf16_TFLOP/s",
        "fp8_TFLOP/s",
        "HBM_GB",
        "HBM_TB/s",
        "scaleup_GB/s/dir",
        "scaleout_GB/s/dir",
        "TDP_W",
        "price_USD",
        "TPP",
        "PD",
    ]
    if args.out:
        si_header = (
            ["key", "name", "vendor", "family", "datacenter", "memory_type"]
            + _CHIP_SI_FIELDS
            + ["tpp", "performance_density_per_mm2"]
        )
        atomic_write_text(args.out, _csv_text(si_header, si_rows))
        print(f"wrote {args.out}", file=sys.stderr)
    print(_table(header, rows))
    return 0


_SHORT = {
    "prohibited": "PROHIBITED",
    "license": "license",
    "notify": "notify",
    "allowed": "allowed",
    "not_applicable": "n/a",
    "indeterminate": "indeterminate",
}


def _cell(c) -> str:
    text = _SHORT[c.consequence.value]
    extras = []
    if c.tariff_frac:
        extras.append(f"{c.tariff_frac:.0%} tariff")
    if c.revenue_share_frac:
        extras.append(f"{c.revenue_share_frac:.0%} share")
    if c.effects:
        extras.append(
            "HBM-constr."
            if c.effects == ("hbm_supply_constrained",)
            else ",".join(c.effects)
        )
    return f"{text} ({', '.join(extras)})" if extras else text


def _cmd_classify(args: argparse.Namespace) -> int:
    """``jaxcost classify``: chips x regimes matrix of consequences."""
    chips = load_chips(args.chips)
    regimes = load_regimes(args.regimes_dir)
    if args.regime and not args.all:
        unknown = [r for r in args.regime if r not in regimes]
        if unknown:
            raise RegimeError(
                f"unknown regime {unknown[0]!r} (known: {', '.join(regimes)})"
            )
        regimes = {r: regimes[r] for r in args.regime}
    ids = list(regimes)
    rows, long_rows = [], []
    for chip in chips.values():
        cells = []
        for rid in ids:
            c = classify(chip, regimes[rid])
            cells.append(_cell(c))
            long_rows.append(
                [
                    chip.key,
                    chip.name,
                    rid,
                    c.consequence.value,
                    c.eccn,
                    c.rule_index,
                    c.matched,
                    c.tariff_frac,
                    c.revenue_share_frac,
                    ";".join(c.effects),
                    c.note,
                ]
            )
        rows.append([chip.key] + cells)
    if args.out:
        header = [
            "chip_key",
            "chip_name",
            "regime_id",
            "consequence",
            "eccn",
            "rule_index",
            "matched",
            "tariff_frac",
            "revenue_share_frac",
            "effects",
            "note",
        ]
        atomic_write_text(args.out, _csv_text(header, long_rows))
        print(f"wrote {args.out}", file=sys.stderr)
    print(_table(["chip"] + ids, rows))
    return 0


# --------------------------------------------------------------------------- parser
def _optimize_outputs(res, sc, top: int) -> tuple[str, str, str, bytes]:
    """The printed table, ranked.csv, result.json and pareto.png of a chip-mix
    result."""

    header = [
        "rank",
        "chips",
        "plan",
        "time_to_train_days",
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
                _fmt(r.time_to_train_s, units.SECONDS_PER_DAY),
                _fmt(r.capex_usd, units.MEGA),
                _fmt(r.power_w, units.MEGA),
                _fmt(r.tokens_per_s),
                ",".join(r.flags) or "-",
            ]
        )
        csv_rows.append(
            [
                i,
                r.label,
                r.plan_label,
                _sci(r.time_to_train_s),
                _sci(r.capex_usd),
                _sci(r.power_w),
                _sci(r.tokens_per_s),
                _sci(r.surrogate_tokens_per_s),
                r.throughput_model,
                ";".join(r.flags),
            ]
        )
    lines = [
        f"scenario {sc.name}: {sc.description}".rstrip(": "),
        f"model {sc.model.name}, {sc.tokens:.3g} tokens, regime {sc.regime}, "
        f"objective {sc.objective}",
        _table(header, rows),
    ]
    for key, why in res.excluded.items():
        lines.append(f"excluded {key}: {why}")
    if res.exhaustive_agrees is not None:
        lines.append(
            "relaxed + repair optimum equals exhaustive grid optimum: "
            f"{'yes' if res.exhaustive_agrees else 'NO'}"
        )
    lines.append(f"{res.seconds.get('total', float('nan')):.1f} s")
    ranked_csv = _csv_text(
        [
            "rank",
            "chips",
            "plan",
            "time_to_train_s",
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


def _cmd_optimize(args: argparse.Namespace) -> int:
    """``jaxcost optimize [SCENARIO]``: ranked clusters, Pareto front, files in
    --out."""

    sc = load_scenario(args.scenario)
    shipped = _shipped_calibration()
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
    # everything is built in memory above; only now are files written (atomically)
    atomic_write_text(out / "ranked.csv", ranked_csv)
    atomic_write_text(out / "result.json", result_json)
    atomic_write_bytes(out / "pareto.png", png)
    print(text)
    print(f"wrote {out / 'ranked.csv'}, {out / 'result.json'}, {out / 'pareto.png'}")
    return 0


def _parity_png(obs, pred, cv_pred) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.loglog(obs, pred, "o", ms=3, label="in-sample")
    if cv_pred is not None:
        ax.loglog(obs, cv_pred, "x", ms=3, label="grouped CV")
    lo, hi = min(obs.min(), pred.min()) / 1.5, max(obs.max(), pred.max()) * 1.5
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.set_xlabel("measured step time (s)")
    ax.set_ylabel("predicted step time (s)")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def _cmd_fit(args: argparse.Namespace) -> int:
    """``jaxcost fit FILES... --out JSON``: fit, print error tables, write params."""

    if args.bootstrap is not None and args.bootstrap < 2:
        raise JaxcostError(
            f"--bootstrap {args.bootstrap}: expected an integer >= 2",
            column="--bootstrap",
        )
    chips = load_chips()
    fd, hashes = calibrate.load_fit_files(args.files, chips)
    opts = calibrate.FitOptions(progress=True)
    res = calibrate.fit_params(fd, options=opts)
    print(
        "rows fitted: "
        + ", ".join(f"{d} {fd.num_rows(d)}" for d in calibrate.DATASETS)
        + "; left out: "
        + ", ".join(f"{d} {len(fd.excluded_rows(d))}" for d in calibrate.DATASETS)
    )
    print(
        f"fit: loss {res.loss:.6g} in {res.seconds:.1f} s; per dataset "
        + ", ".join(f"{k} {v:.4g}" for k, v in res.dataset_losses.items())
    )
    if res.metrics:
        print(calibrate.format_error_table(res.metrics, "in-sample APE of step time"))
    cv = coverage = None
    if args.cv and fd.runs is not None:
        cv = calibrate.cross_validate(fd, options=opts)
        print(
            calibrate.format_error_table(
                cv.metrics,
                f"grouped CV ({len(cv.folds)} folds, "
                f"leave one group out) APE of step time",
            )
        )
        print(f"cross-validation: {cv.seconds:.1f} s")
        coverage = calibrate.interval_coverage(cv.step_log_residuals, fd)
        print(
            calibrate.format_coverage_table(
                coverage,
                "held-out coverage of the 90 % step-time interval (residuals of "
                "the other groups, out-of-fold predictions; nominal 90 %)",
            )
        )
    boot = None
    if args.bootstrap:
        t0 = time.perf_counter()
        boot = calibrate.bootstrap(
            fd,
            args.bootstrap,
            params0=res.params,
            options=calibrate.FitOptions(
                adam_steps=0, lbfgs_steps=calibrate.BOOTSTRAP_LBFGS_STEPS, progress=True
            ),
        )
        print(
            f"bootstrap: {args.bootstrap} resamples in {time.perf_counter() - t0:.1f} s"
        )
    pool = cv.step_log_residuals if cv is not None else res.step_log_residuals
    prov = {
        "package": "jaxcost",
        "version": jaxcost.__version__,
        "date": datetime.date.today().isoformat(),
        "command": "jaxcost fit " + " ".join(args.files),
        "data_sha256": hashes,
        "loss": res.loss,
        "dataset_losses": res.dataset_losses,
        "rows": {d: fd.num_rows(d) for d in calibrate.DATASETS},
        "rows_left_out": {d: len(fd.excluded_rows(d)) for d in calibrate.DATASETS},
        "options": {
            k: v for k, v in calibrate.FitOptions().__dict__.items() if k != "progress"
        },
        "in_sample": [r.__dict__ for r in res.metrics],
        "cv": [r.__dict__ for r in cv.metrics] if cv is not None else None,
        "cv_interval_coverage": (
            [r.__dict__ for r in coverage] if coverage is not None else None
        ),
        "step_log_residuals": [float(f"{x:.6g}") for x in pool],
        "step_log_residuals_kind": "grouped_cv" if cv is not None else "in_sample",
        "bootstrap": calibrate.ensemble_to_json(boot.params)
        if boot is not None
        else None,
    }
    png = None
    if args.plot and fd.runs is not None:
        pred = res.step_time_s
        obs = pred * np.exp(-res.step_log_residuals)
        cvp = obs * np.exp(cv.step_log_residuals) if cv is not None else None
        png = _parity_png(obs, pred, cvp)
    save_params(args.out, res.params, prov)
    if png is not None:
        atomic_write_bytes(args.plot, png)
    print(f"wrote {args.out}" + (f", {args.plot}" if png is not None else ""))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    """``jaxcost predict RUNS.csv --out PRED.csv``: predicted step time per row."""

    path = args.params or str(_shipped_calibration())
    params, prov = load_params(path)
    ens = prov.get("bootstrap")
    ensemble = calibrate.ensemble_from_json(ens, file=path) if ens else None
    pool = prov.get("step_log_residuals")
    chips = load_chips()
    df = benchmarks.load_runs(args.runs)
    filled = df.copy()
    filled["target"] = "step_time_s"
    filled["step_time_s"] = 1.0
    try:
        runs = calibrate.runs_to_arrays(filled, chips, strict=True)
    except JaxcostError as err:
        raise err.in_file(args.runs) from None
    plans = {
        f: np.asarray(getattr(runs.plan, f), dtype=float)
        for f in ("dp", "tp", "pp", "cp")
    }
    n = np.asarray(runs.num_chips)
    missing = np.asarray(runs.plan_missing)
    prod = plans["dp"] * plans["tp"] * plans["pp"] * plans["cp"]
    for i in range(len(n)):
        if not missing[i] and prod[i] != n[i]:
            raise PlanError(
                f"dp*tp*pp*cp = {prod[i]:g} but n_chips = {n[i]:g}; expected equal",
                file=args.runs,
                row=i + 2,
                column="dp",
            )
    runs, plan_text, searched = calibrate.best_plans_for_missing(
        params, chips, runs, progress=args.progress
    )
    pred = calibrate.predict_run_batch(
        params,
        chips,
        runs,
        ensemble=ensemble,
        log_residuals_pool=None if pool is None else np.asarray(pool),
    )
    out = df.copy()
    for k, v in pred.items():
        out[k] = v
    out["pred_plan"] = plan_text
    out["pred_plan_searched"] = searched
    benchmarks.write_csv_atomic(out, args.out)
    print(f"wrote {args.out} ({len(out)} rows)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcost",
        description="Differentiable cost models of AI accelerators under export "
        "controls.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("chips", help="table of chip specifications with TPP and PD")
    p.add_argument("--chips", metavar="PATH", help="chips CSV (default: shipped)")
    p.add_argument("--out", metavar="CSV", help="also write the specs in SI units")
    p.set_defaults(func=_cmd_chips)

    p = sub.add_parser("classify", help="classify chips under export-control regimes")
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--regime",
        metavar="ID",
        action="append",
        help="regime id (repeatable); default: all",
    )
    group.add_argument("--all", action="store_true", help="every regime (default)")
    p.add_argument("--chips", metavar="PATH", help="chips CSV (default: shipped)")
    p.add_argument(
        "--regimes-dir",
        metavar="PATH",
        help="folder of regime TOML files (default: shipped)",
    )
    p.add_argument(
        "--out", metavar="CSV", help="write one row per chip and regime (tidy CSV)"
    )
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("optimize", help="best clusters and plans for a scenario")
    p.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="scenario TOML (default: the shipped scenarios/default.toml)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: experiments/out/optimize/<scenario>)",
    )
    p.add_argument("--top", type=int, metavar="N", help="clusters to report")
    p.add_argument(
        "--params",
        metavar="JSON",
        help="fitted parameters (default: data/calibration/default.json)",
    )
    p.add_argument(
        "--priors",
        action="store_true",
        help="use the hand-set prior parameters instead of the calibration",
    )
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    p.set_defaults(func=_cmd_optimize)

    p = sub.add_parser("fit", help="fit cost parameters to benchmark CSVs")
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILES",
        help="benchmark CSVs (training runs, collectives, kernels)",
    )
    p.add_argument("--out", required=True, metavar="JSON", help="parameters JSON")
    p.add_argument(
        "--cv",
        action="store_true",
        help="grouped cross-validation (leave one group out)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help="grouped bootstrap resamples for prediction intervals",
    )
    p.add_argument("--plot", metavar="PNG", help="parity plot of step time")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("predict", help="predict step time of training runs")
    p.add_argument("runs", metavar="RUNS.csv", help="runs CSV (training-run schema)")
    p.add_argument("--out", required=True, metavar="PRED.csv", help="output CSV")
    p.add_argument(
        "--params",
        metavar="JSON",
        help="parameters (default: data/calibration/default.json)",
    )
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    p.set_defaults(func=_cmd_predict)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxcost`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except JaxcostError as err:
        print(f"jaxcost: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as err:  # e.g. an --out path in a read-only or missing place
        where = f"{err.filename}: " if err.filename else ""
        text = " ".join(f"{where}{err.strerror or err}".split())
        print(f"jaxcost: {text}", file=sys.stderr)
        return 2
