"""Per-row step-time breakdown of training rows under a calibration (diagnostic).

Prints, for each requested row, predicted / measured value of its target (step time,
tokens/s, MFU, ...), the predicted step time and its parts (compute, exposed
TP/CP/EP/PP/DP communication, bubble, optimizer, overhead), all in seconds.

Usage: ``python tools/breakdown.py [--params P.json] ROW_ID...`` (default the shipped
calibration; a group name selects all of its rows).
"""
import argparse
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from jaxcost import calibrate as F  # noqa: E402
from jaxcost.model.hardware import ClusterSpec, load_chips  # noqa: E402
from jaxcost.model.params import load_params  # noqa: E402
from jaxcost.model.step_time import predict_step_time_physical  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
B = ROOT / "data" / "benchmarks"
PARTS = ("compute_s", "tp_comm_s", "cp_comm_s", "ep_comm_s", "pp_comm_s", "dp_comm_s",
         "bubble_s", "optimizer_s", "overhead_s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", nargs="+")
    ap.add_argument("--params",
                    default=str(ROOT / "data" / "calibration" / "default.json"))
    a = ap.parse_args()
    files = [str(B / f"{k}.csv") for k in ("training_runs", "collectives", "kernels")]
    fd, _ = F.load_fit_files(files, load_chips())
    params, _ = load_params(a.params)
    m = F.pack_params(params, fd)
    r = fd.runs
    pp = F.physical_from_matrix(m, fd, r.fam_idx, r.chip_idx)
    chip = F.cluster_chips(fd)
    f8 = np.asarray([p == "fp8" for p in fd.precision_runs], dtype=float)

    def one(pp_i, chip_i, w, plan, n, f):
        return predict_step_time_physical(pp_i, ClusterSpec(chip=chip_i, num_chips=n),
                                          w, plan, precision=f)

    st = jax.vmap(one)(pp, chip, r.workload, r.plan, r.num_chips, f8)
    ids = fd.label("runs", "row_id")
    groups = fd.label("runs", "group")
    want = set(a.rows)
    pred_target, _ = F.run_values(m, fd)
    ratio = np.asarray(pred_target) / np.asarray(r.obs)
    print("row_id  group  pred/obs  pred_total_s  " + "  ".join(PARTS))
    for i, (rid, g) in enumerate(zip(ids, groups, strict=True)):
        if rid in want or g in want:
            parts = "  ".join(f"{float(getattr(st, k)[i]):.4g}" for k in PARTS)
            print(f"{rid}  {g}  {ratio[i]:.3f}  {float(st.total_s[i]):.4g}  {parts}")


if __name__ == "__main__":
    main()
