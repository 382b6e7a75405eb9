"""The ``jaxcost`` command: parse arguments, call the library, print or write files.

One function per subcommand, ``_cmd_<name>(args) -> int``, registered in
:func:`build_parser`. No modelling logic lives here. Input errors
(:class:`~jaxcost.errors.JaxcostError`) are printed as one line ``jaxcost: <message>``
on stderr with exit status 2, without a traceback; every output file is written
atomically, so a failed command leaves no partial file.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import io
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

import jaxcost
from jaxcost import calibrate, units
from jaxcost.calibrate.predict_rows import predict_rows, target_errors
from jaxcost.errors import JaxcostError, RegimeError
from jaxcost.io import benchmarks, schema
from jaxcost.io.atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    remove_pending,
)
from jaxcost.io.paths import data_dir
from jaxcost.model.goodput import goodput_frac_range
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

__all__ = [
    "build_parser",
    "EXIT_INTERRUPTED",
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "compilation_cache_dir",
    "main",
]


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
                _fmt(r.time_to_train_s, units.SECONDS_PER_DAY),
                _fmt(with_goodput(r)[0], units.SECONDS_PER_DAY),
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
                *(_sci(x) for x in with_goodput(r)),
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
    for flag, value in (
        ("--adam-steps", args.adam_steps),
        ("--lbfgs-steps", args.lbfgs_steps),
    ):
        if value is not None and value < 0:
            raise JaxcostError(f"{flag} {value}: expected an integer >= 0")
    files = list(args.files)
    if args.with_shipped:
        given = {os.path.realpath(f) for f in files}
        shipped = [
            str(benchmarks.benchmark_path(k))
            for k in benchmarks.BENCHMARK_KINDS
            if os.path.realpath(benchmarks.benchmark_path(k)) not in given
        ]
        files = shipped + files
    if not files:
        raise JaxcostError(
            "no benchmark file; expected FILES or --with-shipped (or both)"
        )
    chips = load_chips()
    skipped: list[str] | None = [] if args.skip_invalid else None
    fd, hashes = calibrate.load_fit_files(files, chips, skipped=skipped)
    if skipped:
        print(f"skipped {len(skipped)} invalid training-run rows (--skip-invalid):",
              file=sys.stderr)
        for line in skipped:
            print(f"  {line}", file=sys.stderr)
    steps = {
        k: v
        for k, v in (("adam_steps", args.adam_steps), ("lbfgs_steps", args.lbfgs_steps))
        if v is not None
    }
    opts = calibrate.FitOptions(progress=True, **steps)
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
        "command": "jaxcost fit "
        + ("--with-shipped " if args.with_shipped else "")
        + " ".join(args.files),
        "files": files,
        "data_sha256": hashes,
        "loss": res.loss,
        "dataset_losses": res.dataset_losses,
        "rows": {d: fd.num_rows(d) for d in calibrate.DATASETS},
        "rows_left_out": {d: len(fd.excluded_rows(d)) for d in calibrate.DATASETS},
        "options": {k: v for k, v in opts.__dict__.items() if k != "progress"},
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
    # both files are renamed into place only once both are written in full
    with contextlib.ExitStack() as stack:
        if png is not None:
            stack.enter_context(atomic_path(args.plot)).write_bytes(png)
        save_params(stack.enter_context(atomic_path(args.out)), res.params, prov)
    print(f"wrote {args.out}" + (f", {args.plot}" if png is not None else ""))
    return 0


def _runs_table(path: str, *, require_measured: bool):
    """The validated training-run table of ``path`` (every row's problems)."""
    return schema.read_runs(path, require_measured=require_measured)


def _cmd_predict(args: argparse.Namespace) -> int:
    """``jaxcost predict RUNS.csv [--out PRED.csv] [--skip-invalid]``: predicted step
    time per row. Strict by default: the first problem stops the command with no file
    written; with ``--skip-invalid`` a row that cannot be predicted keeps its line with
    blank predictions and its reason in ``pred_error``."""

    path = args.params or str(_shipped_calibration())
    params, prov = load_params(path)
    ens = prov.get("bootstrap")
    ensemble = calibrate.ensemble_from_json(ens, file=path) if ens else None
    pool = prov.get("step_log_residuals")
    chips = load_chips()
    table = _runs_table(args.runs, require_measured=False)
    n = len(table)
    reasons: dict[int, str] = {}
    for i, probs in enumerate(table.problems):
        if probs and not args.skip_invalid:
            raise probs[0].error()
        if probs:
            more = f" (+{len(probs) - 1} more)" if len(probs) > 1 else ""
            first = probs[0]
            col = f"column '{first.column}': " if first.column else ""
            reasons[i] = f"{col}{first.message}{more}"
    ok = table.valid_rows()
    frame = benchmarks.runs_frame(table, ok) if ok else None

    def on_error(k: int, reason: str) -> None:
        if not args.skip_invalid:
            raise schema.Problem(table.file, ok[k] + 1, None, reason,
                                 table.lines[ok[k]]).error()

    pred = None
    if frame is not None:
        pred = predict_rows(
            params,
            chips,
            frame,
            ensemble=ensemble,
            log_residuals_pool=None if pool is None else np.asarray(pool),
            on_error=on_error,
            progress=args.progress,
        )
        for k, why in pred.errors.items():
            reasons[ok[k]] = why
    header = list(table.header)
    rows = [[r.get(h, "") for h in header] for r in table.raw]
    names = [
        "pred_step_time_s",
        "pred_tokens_per_s_per_chip",
        "pred_mfu",
        "pred_step_time_s_lo",
        "pred_step_time_s_hi",
        "pred_mem_bytes_per_chip",
        "pred_fits",
    ]
    if pred is not None:
        names += [c for c in pred.columns if c not in names]
    extra = names + [
        "pred_plan",
        "pred_plan_searched",
        "pred_rel_error",
        "fills",
        "pred_error",
    ]
    rel = (
        target_errors(frame, pred, chips)
        if pred is not None
        else np.full(0, np.nan)
    )
    at = {i: k for k, i in enumerate(ok)}
    for i, row in enumerate(rows):
        k = at.get(i)
        good = i not in reasons and pred is not None and k is not None
        for name in names:
            v = pred.columns.get(name) if pred is not None else None
            if not good or v is None:
                row.append("")
            elif v.dtype == bool:
                row.append("True" if v[k] else "False")
            else:
                row.append(f"{float(v[k]):.10g}")
        row.append(pred.plan[k] if good else "")
        row.append(pred.searched[k] if good else "")
        row.append(f"{rel[k]:.4g}" if good and math.isfinite(rel[k]) else "")
        row.append("; ".join(table.fills[i]))
        row.append(reasons.get(i, ""))
    text = _csv_text(header + extra, rows)
    done = n - len(reasons)
    measured = [e for e in rel if math.isfinite(e)]
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    summary = f"predicted {done} of {n} rows"
    if measured:
        summary += (
            f"; median |error| {100 * np.median(np.abs(measured)):.1f} % over the "
            f"{len(measured)} rows with a measured value (pred_rel_error)"
        )
    if args.out:
        summary += f"; wrote {args.out}"
    print(summary, file=sys.stderr)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    """``jaxcost validate RUNS.csv``: every problem of every row at once, one line
    each; exit 1 if any, 0 if none."""
    table = _runs_table(args.runs, require_measured=not args.no_measured)
    problems = table.all_problems()
    for p in problems:
        print(p)
    bad = sum(1 for p in table.problems if p)
    fills = sum(len(f) for f in table.fills)
    print(
        f"{table.file}: {len(table)} rows, {len(table) - bad} valid, {bad} with "
        f"problems ({len(problems)} problems); {fills} cells filled"
        + (" (--fills lists them)" if fills and not args.fills else ""),
        file=sys.stderr,
    )
    if args.fills:
        for i, f in enumerate(table.fills):
            if f:
                where = schema.row_where(table.file, i + 1, table.lines[i])
                print(f"{where}: filled {'; '.join(f)}")
    return 1 if problems else 0


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
        nargs="*",
        metavar="FILES",
        help="benchmark CSVs (training runs, collectives, kernels; any number per "
        "kind, concatenated; provenance columns optional)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out training-run rows (input schema) that cannot be read, "
        "naming each on stderr; without it the first such row is an error",
    )
    p.add_argument(
        "--with-shipped",
        action="store_true",
        help="also fit the shipped data/benchmarks training runs, collectives and "
        "kernels",
    )
    p.add_argument(
        "--adam-steps",
        type=int,
        metavar="N",
        help=f"Adam iterations (default: {calibrate.FitOptions().adam_steps})",
    )
    p.add_argument(
        "--lbfgs-steps",
        type=int,
        metavar="N",
        help=f"L-BFGS iterations (default: {calibrate.FitOptions().lbfgs_steps})",
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
    p.add_argument(
        "--out", metavar="PRED.csv", help="output CSV (default: standard output)"
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="keep going past rows that cannot be predicted: blank predictions and "
        "the reason in pred_error (default: stop at the first, write nothing)",
    )
    p.add_argument(
        "--params",
        metavar="JSON",
        help="parameters (default: data/calibration/default.json)",
    )
    p.add_argument("--progress", action="store_true", help="progress bars on stderr")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "validate", help="list every problem of a training-runs CSV at once"
    )
    p.add_argument("runs", metavar="RUNS.csv", help="runs CSV (training-run schema)")
    p.add_argument(
        "--no-measured",
        action="store_true",
        help="do not require a measured value (as predict)",
    )
    p.add_argument(
        "--fills", action="store_true", help="also list every filled-in cell"
    )
    p.set_defaults(func=_cmd_validate)

    return parser


#: Exit status of an interrupted command (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130


def _die_interrupted() -> None:
    """Remove the temporary files of writes in progress, say so in one line, and
    exit 130 at once (no traceback, no interpreter teardown under running XLA
    threads)."""
    remove_pending()
    # start a fresh line: a progress bar may be half drawn on stderr
    lead = b"\r\x1b[K" if os.isatty(2) else b"\n"
    with contextlib.suppress(OSError):
        os.write(2, lead + b"jaxcost: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def _interrupt_exits():
    """While inside, SIGINT (Ctrl-C) ends the command through
    :func:`_die_interrupted`.

    Python runs signal handlers on the main thread between bytecodes, so a
    ``KeyboardInterrupt`` would arrive late (after an XLA compilation) or inside a
    ``jax.pure_callback`` (as "pure_callback failed"). Instead the C-level handler
    writes the signal number to a socket (``signal.set_wakeup_fd``) that a watcher
    thread reads; the Python-level handler does nothing. Outside the main thread
    (e.g. ``main`` called from a worker), or where SIGINT is ignored (``nohup``, a
    background job), nothing is installed.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    ):
        yield
        return
    r, w = socket.socketpair()
    w.setblocking(False)
    # wake-up socket first: a signal between the two calls is not lost
    old_fd = signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    old_handler = signal.signal(signal.SIGINT, lambda *_: None)

    def watch() -> None:
        while True:
            try:
                data = r.recv(64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                _die_interrupted()

    watcher = threading.Thread(target=watch, name="jaxcost-sigint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        with contextlib.suppress(OSError):
            w.shutdown(socket.SHUT_RDWR)
        w.close()
        watcher.join(timeout=1.0)
        r.close()


def _check_output(path: str, flag: str, *, folder: bool = False) -> None:
    """Fail at once, before any work, when ``path`` (given as ``flag``) cannot be
    written: a folder where a file is meant (or the reverse), a file where a folder is
    on the way, or no permission to create files in the nearest existing folder
    (tried with an unnamed temporary file, so nothing is left).

    Raises:
      JaxcostError: naming ``flag`` and ``path`` as the user gave them.
    """
    p = Path(path)
    if p.exists():
        if folder and not p.is_dir():
            raise JaxcostError(f"{flag} {path}: not a folder; expected a folder")
        if not folder and p.is_dir():
            raise JaxcostError(f"{flag} {path}: is a folder; expected a file path")
    where = p if folder else p.parent
    where = Path(os.path.abspath(where))
    while not where.exists():
        where = where.parent
    if not where.is_dir():
        raise JaxcostError(
            f"{flag} {path}: {where} is a file, not a folder; expected a writable path"
        )
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as err:
        raise JaxcostError(
            f"{flag} {path}: cannot write in {where} ({err.strerror}); "
            "expected a writable path"
        ) from None


#: Output options checked before a command runs: attribute, flag.
_OUTPUT_OPTIONS = (("out", "--out"), ("plot", "--plot"))


def _check_outputs(args: argparse.Namespace) -> None:
    for attr, flag in _OUTPUT_OPTIONS:
        value = getattr(args, attr, None)
        if value:
            _check_output(
                value, flag, folder=args.command == "optimize" and attr == "out"
            )


#: Environment variables of the persistent compilation cache of the command.
CACHE_DIR_ENV = "JAXCOST_CACHE_DIR"
NO_CACHE_ENV = "JAXCOST_NO_CACHE"


def compilation_cache_dir() -> Path | None:
    """Folder of the command's persistent XLA compilation cache, or None when off.

    ``$JAXCOST_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/jaxcost/xla`` (by default
    ``~/.cache/jaxcost/xla``); None when ``JAXCOST_NO_CACHE`` is set to anything but
    ``""`` or ``0``.
    """
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "jaxcost" / "xla"


def _use_compilation_cache() -> None:
    """Turn on JAX's persistent compilation cache for this process.

    The command is the application, so it (and never the library) sets the global JAX
    options ``jax_compilation_cache_dir`` (:func:`compilation_cache_dir`) and
    ``jax_persistent_cache_min_compile_time_secs = 0`` (keep every program, however
    fast it compiled): a second run with inputs of the same shapes loads the compiled
    programs instead of compiling them again. A cache folder already set through JAX's
    own ``JAX_COMPILATION_CACHE_DIR`` is left alone; a folder that cannot be created
    or written turns the cache off without a message. The cache only takes effect if
    nothing was compiled before in the process (JAX decides once per process). JAX
    writes entries in place (not atomically): an entry cut short by a killed first run
    gives a warning on later runs until the folder is deleted (README).
    """
    if jax.config.jax_compilation_cache_dir:
        return
    path = compilation_cache_dir()
    if path is None:
        return
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    if not os.access(path, os.W_OK | os.X_OK):
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxcost`` command; returns the exit status.

    Input errors print one ``jaxcost:`` line and return 2; Ctrl-C (SIGINT) prints
    ``jaxcost: interrupted`` and exits 130 at once, leaving no output or temporary
    file; a closed output pipe (``jaxcost chips | head``) returns 0 quietly.
    """
    args = build_parser().parse_args(argv)
    _use_compilation_cache()
    try:
        with _interrupt_exits():
            _check_outputs(args)
            status = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return status
    except JaxcostError as err:
        print(f"jaxcost: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # SIGINT where no watcher runs (not the main thread)
        remove_pending()
        print("jaxcost: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as err:  # e.g. an --out path in a read-only or missing place
        where = f"{err.filename}: " if err.filename else ""
        text = " ".join(f"{where}{err.strerror or err}".split())
        print(f"jaxcost: {text}", file=sys.stderr)
        return 2
