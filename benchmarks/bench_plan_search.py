"""Time to enumerate and rank the whole valid plan space of one model on one cluster.

Default: GPT-3 175B on 1,024 A100-SXM (80 GB). Two plan spaces are timed:

* ``default``: the options ``enumerate_plans`` uses by default (tp within the
  scale-up domain, mbs 1-8, every interleave depth up to L/pp, cp 1-8, ZeRO 0-3,
  three recompute modes);
* ``predict``: the default plus uneven (balanced) pipeline splits, as the blank-plan
  search of ``jaxcost predict`` runs it;
* ``wide``: tp beyond the scale-up domain, every cp divisor, mbs up to 32, vpp up to
  8, sequence parallelism on and off.

Each is enumerated (numpy, memory check included), then every valid plan is scored by
``predict_step_time`` under ``jit(vmap)`` through
``jaxcost.search.sweep.sweep_topk`` (chunked, sharded across local devices) and the top
10 are kept. Prints valid plans, seconds for enumeration and ranking (compilation
included), plans/s, the best plan, and the process's peak RSS.

Run: python benchmarks/bench_plan_search.py [--model gpt3-175b] [--chip A100-SXM]
     [--chips 1024] [--chunk 8192]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import jax
import numpy as np


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt3-175b")
    ap.add_argument("--chip", default="A100-SXM")
    ap.add_argument("--chips", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=8192)
    args = ap.parse_args()

    from jaxcost.model.hardware import ClusterSpec, load_chips
    from jaxcost.model.params import default_params, physical
    from jaxcost.model.plan import Recompute, plan_at, plan_to_str
    from jaxcost.model.step_time import predict_step_time_physical
    from jaxcost.model.workload import get_model
    from jaxcost.search import sweep
    from jaxcost.search.space import PlanSpace, enumerate_plans

    chip = load_chips()[args.chip]
    w = get_model(args.model)
    pp = physical(default_params(), chip)
    hw = ClusterSpec(chip=chip, num_chips=float(args.chips))

    def score(plan):
        st = predict_step_time_physical(pp, hw, w, plan)
        return jax.numpy.where(st.fits_in_hbm > 0.5, st.total_s, jax.numpy.inf)

    spaces = {
        "default": {},
        # what the blank-plan search of `jaxcost predict` uses (row_plan_space)
        "predict": {"pp_balance": "auto"},
        "wide": dict(allow_tp_beyond_scaleup=True, cp=None, mbs=(1, 2, 4, 8, 16, 32),
                     vpp=(1, 2, 3, 4, 6, 8), sp=(True, False),
                     recompute=(Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)),
    }
    print(f"machine: {platform.machine()} cores={os.cpu_count()} "
          f"devices={jax.local_device_count()} backend={jax.default_backend()} "
          f"jax={jax.__version__}")
    for name, opts in spaces.items():
        t0 = time.perf_counter()
        plans = enumerate_plans(w, args.chips, chip, PlanSpace.create(**opts))
        t_enum = time.perf_counter() - t0
        n = int(plans.dp.shape[0])
        t1 = time.perf_counter()
        idx, val, stats = sweep.sweep_topk(score, plans, 10, chunk_size=args.chunk)
        t_rank = time.perf_counter() - t1
        best = plan_to_str(plan_at(plans, int(idx[0]))) if idx.size else "none"
        print(
            f"[{name}] {args.model} on {args.chips} x {args.chip}: {n:,} valid plans; "
            f"enumerate {t_enum:.2f} s, rank {t_rank:.2f} s "
            f"(total {t_enum + t_rank:.2f} s, {n / max(t_rank, 1e-9):,.0f} plans/s); "
            f"best {best} step {val[0]:.2f} s"
            if idx.size
            else "no valid plan"
        )
    print(f"peak RSS {_rss_mib():.0f} MiB")
    assert np.all(np.isfinite(val))


if __name__ == "__main__":
    main()
