"""Published production runs with their plan given and with it blank (diagnostic).

For every row of ``tests/data/production_runs.csv`` (or ``--csv``) this runs
``jaxcost predict --skip-invalid`` twice: once as published, once with every plan
column blank (``calibrate.PLAN_COLUMNS``: the search chooses tp, pp, dp, cp, ep, vpp,
mbs, sp, ZeRO and recompute; the row's software — attention kernel, dispatcher,
overlaps, layer split — and the framework defaults of its year stay). It prints the
predicted throughput over the published one (tokens/s per chip, or MFU where the row
quotes MFU), the plan, the memory per chip and whether it fits.

Usage: ``python tools/production_check.py [--csv F] [--rows P0001,P0005,...]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

from jaxcost.calibrate import PLAN_COLUMNS
from jaxcost.cli.app import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT / "tests" / "data" / "production_runs.csv"
#: the rows of issue 16's check: DeepSeek-V3, Llama 3 405B (16k), BLOOM-176B,
#: MegaScale 175B, GPT-3 175B on 1,024 A100, Pangu Ultra 135B
DEFAULT_ROWS = ("P0001", "P0003", "P0005", "P0006", "P0008", "P0011")


def ratio(row: pd.Series) -> tuple[float, str]:
    """Predicted / published throughput of one predicted row."""
    if pd.notna(row.get("tokens_per_s_per_chip")):
        return row.pred_tokens_per_s_per_chip / row.tokens_per_s_per_chip, "tok/s"
    if pd.notna(row.get("step_time_s")):
        return row.step_time_s / row.pred_step_time_s, "step"
    return row.pred_mfu / row.mfu, "mfu"


def predict(df: pd.DataFrame, tmp: Path, name: str) -> pd.DataFrame:
    src, out = tmp / f"{name}.csv", tmp / f"{name}_pred.csv"
    df.to_csv(src, index=False)
    rc = cli_main(["predict", str(src), "--out", str(out), "--skip-invalid"])
    if rc not in (0, None):
        sys.exit(rc)
    return pd.read_csv(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                    help="comma-separated row ids ('all' for every row)")
    a = ap.parse_args(argv)
    df = pd.read_csv(a.csv, dtype=str, keep_default_na=False)
    if a.rows != "all":
        df = df[df.row_id.isin(a.rows.split(","))]
    blank = df.copy()
    for c in PLAN_COLUMNS:
        if c in blank.columns:
            blank[c] = ""
    with tempfile.TemporaryDirectory() as d:
        given = predict(df, Path(d), "given")
        searched = predict(blank, Path(d), "blank")
    print(f"{'row':6} {'model':28} {'chips':>6} {'how':5} {'given':>6} {'fits':>5} "
          f"{'GiB':>5} {'blank':>6} {'fits':>5} {'GiB':>5}  blank plan")
    inside = 0
    for (_, g), (_, b) in zip(given.iterrows(), searched.iterrows(), strict=True):
        rg, how = ratio(g)
        rb, _ = ratio(b)
        inside += bool(0.85 <= rb <= 1.25)
        err = b.get("pred_error")
        plan = b.pred_plan if pd.isna(err) else f"(no plan: {err})"
        print(f"{g.row_id:6} {str(g.model)[:28]:28} {int(g.n_chips):6d} {how:5} "
              f"{rg:6.3f} {str(g.pred_fits):>5} "
              f"{g.pred_mem_bytes_per_chip / 2**30:5.1f} "
              f"{rb:6.3f} {str(b.pred_fits):>5} "
              f"{b.pred_mem_bytes_per_chip / 2**30:5.1f}  {plan}"
              + (f"  fills: {b.fills}" if isinstance(b.get("fills"), str) else ""))
    print(f"blank-plan ratio within 0.85-1.25: {inside}/{len(given)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
