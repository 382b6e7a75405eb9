"""03 — Mixing generations: when do older chips help, when do they hurt?

Question: a lab holds 256 current chips (A100 or A800) and can add older ones (V100,
P100) to the same job. With the heterogeneous step-time model, does adding k old chips
make training faster or slower, in each of the two ways of mixing: data-parallel
groups (each group a set of replicas with its own plan; the batch split by speed and
the gradients all-reduced across groups over the slower scale-out network) and
pipeline stages (old chips take some pipeline stages; layers assigned by speed)?

Data: ``A100-SXM``, ``A800-SXM``, ``V100``, ``P100`` of ``data/chips.csv``; model
``llama2-13b`` of ``data/models.csv``; ``predict_step_time_hetero`` (modes "data"
and "pipeline"); parameters from ``_common.load_calibration``.

Method: new group fixed at 256 chips. Data mode: the old group of k chips runs its
own best plan (``best_plan``), k from 32 to 1,024; the new group its best plan.
Pipeline mode: the new group's best plan with dp·tp = 64 (pp = 4) is kept, and the
old chips add pp_old = k / 64 stages with the same dp, tp, micro-batch and
interleaving. The outcome is the cluster's tokens/s relative to the 256 new chips
alone; > 1 means the old chips help. Intervals: the same configurations evaluated
under every ensemble member.

Finding: computed by the script and written to
``out/03_mixed_generations/report.md``; the current headline, and what moved and why,
are in ``experiments/README.md`` (no numbers here, so that they cannot go stale).
"""

# %%
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

T0 = C.setup()

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxcost as jc  # noqa: E402

SLUG = "03_mixed_generations"
MODEL = "llama2-13b"
N_NEW = 256
PAIRS = (("A100-SXM", "V100"), ("A800-SXM", "P100"), ("A100-SXM", "P100"))
OLD_DATA = (32, 128, 512, 1024)
PIPE_GROUP = 64                   # dp·tp of the pipeline-mode plans
OLD_PIPE = (64, 128, 256, 512)

cal = C.load_calibration()
chips = jc.load_chips()
w = jc.get_model(MODEL)
tps = C.tokens_per_step(w)


def cl(key, n):
    return jc.ClusterSpec(chip=chips[key], num_chips=float(n))


def ens_tok(cluster, plan):
    st = C.ensemble_step_times(cal.ensemble, cluster, w, plan)
    ok = np.asarray(st.fits_in_hbm) > 0.5
    return np.where(ok, tps / np.asarray(st.total_s), 0.0)


def speedup_row(new_key, old_key, mode, k, plan_new, plan_old, old_alone, point,
                ratio, ideal):
    """One table row: speed of the mixed cluster relative to the new chips alone
    (``point`` with the calibration, ``ratio`` the ensemble's)."""
    med, p5, p95 = C.interval(ratio)
    return {"new": new_key, "old": old_key, "mode": mode, "old_chips": k,
            "old_frac": k / (N_NEW + k), "plan_new": plan_new, "plan_old": plan_old,
            "old_alone_tok_s": old_alone, "speedup_point": point,
            "speedup_median": med, "speedup_p5": p5, "speedup_p95": p95,
            "ideal_speedup": ideal}


# %%
rows = []
curves = {}
for new_key, old_key in PAIRS:
    t = time.perf_counter()
    base = jc.best_plan(
        cal.params, cl(new_key, N_NEW), w, k=1, space=jc.PlanSpace.create(**C.PLANS)
    )[0]
    base_m = ens_tok(cl(new_key, N_NEW), base.plan)
    # alone: each old chip's own throughput (for the "ideal addition" reference)
    for mode in ("data", "pipeline"):
        xs, ys, ms = [], [], []
        if mode == "data":
            for k in OLD_DATA:
                old = jc.best_plan(
                    cal.params,
                    cl(old_key, k),
                    w,
                    k=1,
                    space=jc.PlanSpace.create(**C.PLANS),
                )
                if not old:
                    continue
                old = old[0]
                clusters = (cl(new_key, N_NEW), cl(old_key, k))
                plans = (base.plan, old.plan)
                st = C.point_step_time(cal.params, ("data", clusters), w, plans)
                tok = tps / float(st.total_s) if float(st.fits_in_hbm) > 0.5 else 0.0
                m = ens_tok(("data", clusters), plans)
                xs.append(k)
                ys.append(tok / base.tokens_per_s)
                ms.append(m / base_m)
                rows.append(speedup_row(
                    new_key, old_key, mode, k, base.plan_str, old.plan_str,
                    old.tokens_per_s, tok / base.tokens_per_s, m / base_m,
                    1 + old.tokens_per_s / base.tokens_per_s))
        else:
            pl_all = jc.enumerate_plans(
                w, N_NEW, chips[new_key], jc.PlanSpace.create(**C.PLANS)
            )
            sel = (np.asarray(pl_all.dp) * np.asarray(pl_all.tp) == PIPE_GROUP)
            pbase = jc.best_plan(cal.params, cl(new_key, N_NEW), w, k=1,
                                 plans=C.subset_plans(pl_all, sel))[0]
            pbase_m = ens_tok(cl(new_key, N_NEW), pbase.plan)
            for k in OLD_PIPE:
                p_old = k // PIPE_GROUP
                old_plan = pbase.plan.replace(pp=np.float64(p_old))
                clusters = (cl(old_key, k), cl(new_key, N_NEW))
                plans = (old_plan, pbase.plan)
                st = C.point_step_time(cal.params, ("pipeline", clusters), w, plans)
                fits = float(st.fits_in_hbm) > 0.5
                tok = tps / float(st.total_s) if fits else 0.0
                m = ens_tok(("pipeline", clusters), plans)
                xs.append(k)
                ys.append(tok / base.tokens_per_s)
                ms.append(m / base_m)
                rows.append(speedup_row(
                    new_key, old_key, mode, k, pbase.plan_str,
                    jc.plan_to_str(old_plan), float("nan"), tok / base.tokens_per_s,
                    m / base_m, float("nan")))
            rows.append(speedup_row(
                new_key, old_key, "pipeline-base", 0, pbase.plan_str, "",
                float("nan"), pbase.tokens_per_s / base.tokens_per_s, pbase_m / base_m,
                float("nan")))
        curves[(new_key, old_key, mode)] = (np.asarray(xs), np.asarray(ys),
                                            np.asarray(ms))
    print(f"{new_key}+{old_key}: {time.perf_counter() - t:.1f} s")

# %%
fig, axes = plt.subplots(1, len(PAIRS), figsize=(4.2 * len(PAIRS), 3.8), sharey=True)
for ax, (new_key, old_key) in zip(axes, PAIRS, strict=True):
    for mode, c in (("data", "C0"), ("pipeline", "C3")):
        xs, ys, ms = curves[(new_key, old_key, mode)]
        if xs.size == 0:
            continue
        frac = xs / (N_NEW + xs)
        lo = np.asarray([C.interval(m)[1] for m in ms])
        hi = np.asarray([C.interval(m)[2] for m in ms])
        ys = np.where(ys > 0, ys, np.nan)         # no fit: not plotted
        lo = np.where(lo > 0, lo, np.nan)
        ax.plot(frac, ys, "-o", color=c, label=f"{mode} mode")
        ax.fill_between(frac, lo, hi, color=c, alpha=0.2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_title(f"{N_NEW} {new_key} + k {old_key}")
    ax.set_xlabel("fraction of old chips")
axes[0].set_ylabel(f"tokens/s relative to {N_NEW} new chips alone")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %%
lines = []
for new_key, old_key in PAIRS:
    for mode in ("data", "pipeline"):
        rs = [r for r in rows if r["new"] == new_key and r["old"] == old_key
              and r["mode"] == mode]
        nofit = [r["old_chips"] for r in rs if not r["speedup_point"] > 0]
        rs = [r for r in rs if r["speedup_point"] > 0]
        if not rs:
            continue
        best = max(rs, key=lambda r: r["speedup_point"])
        worst = min(rs, key=lambda r: r["speedup_point"])
        lines.append(
            f"- **{N_NEW} {new_key} + {old_key}, {mode} mode**: best at "
            f"{best['old_chips']} old chips ({100 * best['old_frac']:.0f} %): "
            f"×{best['speedup_median']:.2f} [{best['speedup_p5']:.2f}, "
            f"{best['speedup_p95']:.2f}]; worst at {worst['old_chips']} "
            f"({100 * worst['old_frac']:.0f} %): ×{worst['speedup_median']:.2f} "
            f"[{worst['speedup_p5']:.2f}, {worst['speedup_p95']:.2f}]"
            + (f"; does not fit in memory with {nofit} old chips." if nofit else "."))
body = f"""**Question.** Does adding older chips (V100, P100) to {N_NEW} A100/A800
speed up {MODEL} training, and in which mixing mode?

**Finding.** (per pair and mode: speed relative to the {N_NEW} new chips alone, median
[5–95 %] over the ensemble)

{chr(10).join(lines)}

Data-parallel mixing never makes a group wait for another's layers: old chips add
roughly their own throughput, less the cross-group gradient all-reduce over the slower
scale-out network and the batch imbalance. Pipeline mixing assigns layers by speed but
adds stages (bubble) and sends activations over the slow link between the groups, and
the old chips must hold their share of layers in their smaller memory; where a
configuration does not fit for some ensemble members, their speed-up counts as 0 in
the interval.
The pipeline-mode base plan (dp·tp = {PIPE_GROUP}) is itself slower than the free
best plan (row `pipeline-base` of the table), which the ratios include.
"""
seconds = time.perf_counter() - T0
out = C.write_report(SLUG, "03 — Mixing chip generations (A100/A800 with V100/P100)",
                     body, rows, fig, seconds=seconds, calibration=cal)
print(body)
print(f"wrote {out} in {seconds:.1f} s")
