"""``jaxcost fit``: fit the cost parameters to benchmark CSVs, print the error tables
and write the parameters JSON (and the parity plot; both, or neither)."""

from __future__ import annotations

import argparse
import datetime
import io
import os
import sys
import time

import numpy as np

import jaxcost
from jaxcost import calibrate
from jaxcost.cli.common import write_together
from jaxcost.errors import JaxcostError
from jaxcost.io import benchmarks
from jaxcost.model.hardware import load_chips
from jaxcost.model.params import save_params

__all__ = ["cmd_fit"]


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


def cmd_fit(args: argparse.Namespace) -> int:
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
    writers = {args.out: lambda tmp: save_params(tmp, res.params, prov)}
    if png is not None:
        writers[args.plot] = lambda tmp: tmp.write_bytes(png)
    write_together(writers)
    print(f"wrote {args.out}" + (f", {args.plot}" if png is not None else ""))
    return 0
