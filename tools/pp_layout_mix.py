"""Chip mix of a scenario with uniform vs "auto" pipeline layouts (diagnostic).

Runs ``chip_mix`` twice on one scenario, with ``[search] pp_layout`` "uniform" and
"auto" (uneven pipeline splits where the layers require them), and prints each top
cluster's surrogate and exact (heterogeneous, each group re-planned for its share of
the batch) throughput, so the gap between the two can be seen per layout. Usage:
``python tools/pp_layout_mix.py SCENARIO.toml [MAX_PLANS_AUTO]`` (default 600000).
"""
import dataclasses
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jaxcost as jc  # noqa: E402
from jaxcost.policy.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main(path: str, max_plans_auto: int) -> None:
    params, _ = jc.load_params(str(ROOT / "data" / "calibration" / "default.json"))
    base = load_scenario(path)
    for layout, cap in (("uniform", base.search.max_plans), ("auto", max_plans_auto)):
        sc = dataclasses.replace(base, search=dataclasses.replace(
            base.search, pp_layout=layout, max_plans=cap))
        t = time.perf_counter()
        res = jc.chip_mix(params, None, sc, check_exhaustive=False)
        print(f"pp_layout={layout} max_plans={cap}: {time.perf_counter() - t:.1f} s "
              f"(curves {res.seconds['curves']:.1f} s)")
        for c in res.clusters:
            print(
                f"  {c.time_to_train_s / 86400:6.2f} d  surrogate "
                f"{c.surrogate_tokens_per_s:.3g} tok/s  "
                f"exact {c.tokens_per_s:.3g} tok/s  "
                f"({c.throughput_model})  {c.label}"
            )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 600_000)
