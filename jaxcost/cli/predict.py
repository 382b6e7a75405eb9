"""``jaxcost predict`` and ``jaxcost validate``: a user's training-runs CSV, predicted
row by row or checked."""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from jaxcost import calibrate
from jaxcost.calibrate.predict_rows import predict_rows, target_errors
from jaxcost.cli.common import csv_text, shipped_calibration
from jaxcost.io import benchmarks, runs, schema
from jaxcost.io.atomic import atomic_write_text
from jaxcost.model.hardware import load_chips
from jaxcost.model.params import load_params

__all__ = ["cmd_predict", "cmd_validate"]


def _runs_table(path: str, *, require_measured: bool):
    """The validated training-run table of ``path`` (every row's problems)."""
    return runs.read_runs(path, require_measured=require_measured)


def cmd_predict(args: argparse.Namespace) -> int:
    """``jaxcost predict RUNS.csv [--out PRED.csv] [--skip-invalid]``: predicted step
    time per row. Strict by default: the first problem stops the command with no file
    written; with ``--skip-invalid`` a row that cannot be predicted keeps its line with
    blank predictions and its reason in ``pred_error``."""

    path = args.params or str(shipped_calibration())
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
            plan_quantile=args.plan_quantile,
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
    text = csv_text(header + extra, rows)
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


def cmd_validate(args: argparse.Namespace) -> int:
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
