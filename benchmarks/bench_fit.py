"""Time the calibration on the shipped benchmarks: full fit, grouped CV, bootstrap.

Run: python benchmarks/bench_fit.py [--bootstrap N]
Prints the wall time of each stage (compilation included) and the CV error.
"""

from __future__ import annotations

import argparse
import time

from jaxcost import calibrate as F
from jaxcost.io import benchmarks as D
from jaxcost.model.hardware import load_chips


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", type=int, default=100)
    ap.add_argument("--no-cv", action="store_true")
    args = ap.parse_args()
    chips = load_chips()
    t0 = time.perf_counter()
    fd = F.build_fit_data(
        chips,
        runs=F.runs_to_arrays(D.load_benchmarks("training_runs"), chips),
        collectives=F.collectives_to_arrays(D.load_benchmarks("collectives")),
        kernels=F.kernels_to_arrays(D.load_benchmarks("kernels")))
    print(f"load: {time.perf_counter() - t0:.1f} s")
    res = F.fit_params(fd)
    print(f"full fit: {res.seconds:.1f} s (loss {res.loss:.5g})")
    if not args.no_cv:
        cv = F.cross_validate(fd)
        overall = cv.metrics[0]
        print(f"grouped CV: {cv.seconds:.1f} s; step-time APE median "
              f"{100 * overall.median_ape:.1f} %, mean {100 * overall.mean_ape:.1f} %")
    if args.bootstrap:
        b = F.bootstrap(fd, args.bootstrap, params0=res.params)
        print(f"bootstrap {args.bootstrap} resamples: {b.seconds:.1f} s")


if __name__ == "__main__":
    main()
