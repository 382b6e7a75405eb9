"""Per-row grouped-CV residuals of training-run step time (diagnostic).

Fits the shipped benchmark files with leave-one-group-out CV and writes one line per
training row: row id, group, chip, in-sample and out-of-fold error of step time, and the
predicted parts. Usage: ``python tools/cv_rows.py [OUT.csv]`` (default
``experiments/out/cv_rows.csv``).
"""
import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from jaxcost import calibrate as F  # noqa: E402
from jaxcost.model.hardware import load_chips  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
B = ROOT / "data" / "benchmarks"


def main(out: Path) -> None:
    chips = load_chips()
    fd, _ = F.load_fit_files([str(B / f"{k}.csv") for k in
                              ("training_runs", "collectives", "kernels")], chips)
    res = F.fit_params(fd)
    cv = F.cross_validate(fd)
    lab = dict(dict(fd.labels)["runs"])
    ins = np.expm1(res.step_log_residuals) * 100
    oof = np.expm1(cv.step_log_residuals) * 100
    order = np.argsort(-np.abs(oof))
    lines = ["row_id,group,chip,insample_err_pct,cv_err_pct"]
    for i in order:
        lines.append(f"{lab['row_id'][i]},{lab['group'][i]},{lab['chip'][i]},"
                     f"{ins[i]:+.1f},{oof[i]:+.1f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(F.format_error_table(cv.metrics, "grouped CV APE of step time"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "experiments/out/cv_rows.csv"
    )
