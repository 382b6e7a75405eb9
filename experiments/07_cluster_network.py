"""07 — What does a weaker cluster network cost?

Question: a buyer of export-compliant chips may also be short of network: fewer or
slower NICs per node than the reference design (8 x 400 Gb/s per 8-GPU H800 node; the
Ascend 910B's 200 Gb/s per chip), e.g. 4 x 100 Gb/s RoCE per node, as in the published
InternEvo and BLOOM clusters (``data/benchmarks/fabrics.csv``). How much longer do a
DeepSeek-V3-class MoE and a dense Llama-2-70B take on 2,048 chips as the scale-out
bandwidth per chip falls, with the plan re-optimised for each network, and how much of
the loss does re-planning recover?

Data: ``deepseek-v3`` and ``llama2-70b`` of ``data/models.csv``, ``H800-SXM`` and
``Ascend910B`` of ``data/chips.csv`` (their scale-out bandwidths are the reference
points), token budgets of ``experiments/claims.csv``, parameters from
``_common.load_calibration``.

Method: the chip's ``scaleout_bytes_per_s`` is replaced (the same override a scenario
candidate takes) by 50, 25, 12.5, 6.25 and 3.125 GB/s per chip and direction (8 x 400,
8 x 200, 8 x 100 or 4 x 200, 4 x 100, 2 x 100 Gb/s per 8-chip node), never above the
chip's own value. At each bandwidth the best plan is found by exhaustive enumeration
(``best_plan``); the slowdown is the step time over the step time at the chip's own
bandwidth (each with its best plan), paired per ensemble member. "Plan kept" evaluates
the reference network's best plan on the weaker network instead.

Finding: computed by the script and written to
``out/07_cluster_network/report.md``; the current headline, and what moved and why,
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

SLUG = "07_cluster_network"
DAY_S = 86400.0
GBIT = 1e9 / 8.0  # bytes/s of one Gb/s
#: scale-out bandwidth per chip and direction, and the per-node NICs it stands for
NETWORKS = ((8 * 400 * GBIT / 8, "8x400G"), (8 * 200 * GBIT / 8, "8x200G"),
            (8 * 100 * GBIT / 8, "8x100G / 4x200G"), (4 * 100 * GBIT / 8, "4x100G"),
            (2 * 100 * GBIT / 8, "2x100G"))
CHIPS = ("H800-SXM", "Ascend910B")
MODELS = (("deepseek-v3", "deepseek_v3_tokens"), ("llama2-70b", "llama2_70b_tokens"))
TARGET_CHIPS = 2048

cal = C.load_calibration()

# %%
rows = []
for mname, tok_key in MODELS:
    w = jc.get_model(mname)
    tokens = C.claim(tok_key)
    tps = C.tokens_per_step(w)
    for key in CHIPS:
        chip = jc.get_chip(key)
        own = float(chip.scaleout_bytes_per_s)
        n = C.nearest_valid_count(w, chip, TARGET_CHIPS)
        ref_plan, ref_st = None, None
        for nic, label in NETWORKS:
            if nic > own * (1 + 1e-9):
                continue
            t = time.perf_counter()
            cl = jc.ClusterSpec(chip=chip.replace(scaleout_bytes_per_s=nic),
                                num_chips=float(n))
            best = jc.best_plan(
                cal.params,
                cl,
                w,
                k=1,
                tokens=tokens,
                # uneven pipeline stages (embedding / head stages), as practiced:
                # DeepSeek-V3's 61 layers admit no uniform pipeline split
                space=jc.PlanSpace.create(**C.PLANS, pp_balance="auto"),
            )[0]
            st = np.asarray(C.ensemble_step_times(cal.ensemble, cl, w,
                                                  best.plan).total_s)
            if ref_plan is None:
                ref_plan, ref_st = best.plan, st
            kept = np.asarray(C.ensemble_step_times(cal.ensemble, cl, w,
                                                    ref_plan).total_s)
            slow = st / ref_st
            slow_kept = kept / ref_st
            days_all = tokens / (tps / st) / DAY_S
            days = C.interval(days_all)
            s_med, s_lo, s_hi = C.interval(slow)
            rows.append({
                "model": mname, "chip": key, "chips": n, "network": label,
                "scaleout_GB_s_per_chip": nic / 1e9, "plan": best.plan_str,
                "days_point": best.time_to_train_s / DAY_S,
                "days_median": days[0], "days_p5": days[1], "days_p95": days[2],
                "slowdown_median": s_med, "slowdown_p5": s_lo, "slowdown_p95": s_hi,
                "slowdown_plan_kept_median": C.interval(slow_kept)[0],
                "ep_comm_s": float(best.step_time.ep_comm_s),
                "dp_comm_s": float(best.step_time.dp_comm_s),
                "pp_comm_s": float(best.step_time.pp_comm_s),
                "cp_comm_s": float(best.step_time.cp_comm_s),
                "step_s": float(best.step_time.total_s),
            })
            print(f"{mname} {n}x{key} {label}: {best.plan_str} "
                  f"{C.fmt_interval(days_all)} d, x{s_med:.2f} "
                  f"(plan kept x{C.interval(slow_kept)[0]:.2f}) "
                  f"({time.perf_counter() - t:.1f} s)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
for ax, (mname, _) in zip(axes, MODELS, strict=True):
    for j, key in enumerate(CHIPS):
        rr = [r for r in rows if r["model"] == mname and r["chip"] == key]
        x = np.asarray([r["scaleout_GB_s_per_chip"] for r in rr])
        med = np.asarray([r["slowdown_median"] for r in rr])
        lo = np.asarray([r["slowdown_p5"] for r in rr])
        hi = np.asarray([r["slowdown_p95"] for r in rr])
        kept = np.asarray([r["slowdown_plan_kept_median"] for r in rr])
        ax.plot(x, med, "-o", color=f"C{j}", ms=4, label=f"{key}, re-planned")
        ax.fill_between(x, lo, hi, color=f"C{j}", alpha=0.2)
        ax.plot(x, kept, ":", color=f"C{j}", label=f"{key}, plan kept")
    ax.set_xscale("log", base=2)
    ax.invert_xaxis()
    ax.set_xlabel("scale-out GB/s per chip and direction")
    ax.set_title(f"{mname} on {TARGET_CHIPS} chips")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("step time / step time on the chip's own network")
axes[0].legend(fontsize=7)
fig.tight_layout()


# %%
def _row(mname, key, label):
    return next(r for r in rows if r["model"] == mname and r["chip"] == key
                and r["network"] == label)


def _s(r):
    return (f"×{r['slowdown_median']:.2f} [{r['slowdown_p5']:.2f}, "
            f"{r['slowdown_p95']:.2f}]")


def _growing(ref, q):
    terms = ("ep_comm_s", "dp_comm_s", "pp_comm_s", "cp_comm_s")
    k = max(terms, key=lambda t: q[t] - ref[t])
    return f"`{k}` ({ref[k]:.3g} → {q[k]:.3g} s per step)"


lines = []
for mname, _ in MODELS:
    for key in CHIPS:
        rr = [r for r in rows if r["model"] == mname and r["chip"] == key]
        ref, q = rr[0], _row(mname, key, "4x100G")
        lines.append(
            f"- **{mname}, {ref['chips']} {key}**: {ref['days_median']:.1f} days "
            f"[{ref['days_p5']:.1f}, {ref['days_p95']:.1f}] on its own network "
            f"({ref['scaleout_GB_s_per_chip']:g} GB/s per chip, plan `{ref['plan']}`); "
            f"4 x 100 Gb/s per node: {_s(q)} ({q['days_median']:.1f} days, plan "
            f"`{q['plan']}`; with the reference plan kept ×"
            f"{q['slowdown_plan_kept_median']:.2f}); slowest network swept "
            f"({rr[-1]['network']}): {_s(rr[-1])}; the communication term that "
            f"grows most at 4 x 100 Gb/s: {_growing(ref, q)}.")
body = f"""**Question.** How much longer does training take when the cluster's scale-out
network is weaker than the reference design, with the plan re-optimised for it?

**Finding.** (slowdown: step time over the step time on the chip's own network, each
with its best plan; median [5–95 %] over the ensemble)

{chr(10).join(lines)}

Each bullet names the communication term that grows most (the table has all of them);
an expert all-to-all kept inside the 8-chip node (ep ≤ 8) does not grow. FP8 GEMMs
(searched as a plan dimension on the H800; the 910B has none) shorten the compute
that communication could hide behind, so the same lost bandwidth costs the H800 more
than it would in BF16. The networks are
stand-ins for NIC counts per 8-chip node (8 x 400 Gb/s: 50 GB/s per chip; 4 x 100 Gb/s:
6.25 GB/s, the published InternEvo and BLOOM clusters); switch oversubscription and
congestion are not modelled, so a real weak network can only be slower.
"""
seconds = time.perf_counter() - T0
out = C.write_report(SLUG, "07 — What does a weaker cluster network cost?", body,
                     rows, fig, seconds=seconds, calibration=cal)
print(body)
print(f"wrote {out} in {seconds:.1f} s")
