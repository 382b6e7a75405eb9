"""05 — Which export control binds?

Question: for a PRC buyer training Llama-2-70B (2 T tokens) with 300 MUSD and 20 MW,
which regime threshold actually limits the optimal time-to-train: total processing
performance (TPP), performance density (PD), the interconnect / memory-bandwidth
thresholds of the 2025-04 letters? Which chips sit near a threshold, and what happens
to the optimum when a threshold moves?

Data: ``scenarios/exp_05_2023_10.toml`` and ``exp_05_2025_04.toml`` (candidates H20,
L20, A800, H800, H100 and the domestic Ascend 910B, entered as owned-with-price so
the US regime does not apply to it, with an illustrative supply cap of 4,096 — with
unlimited supply it is the optimum under every swept threshold and nothing binds),
``data/regimes/2023-10.toml`` and ``2025-04.toml``, ``data/chips.csv``; parameters
from ``_common.load_calibration``.

Method. A regime is a step function of its thresholds, so the thresholds are studied
by exact re-optimisation, not by derivatives:

* ``threshold_margins``: each candidate's relative distance to every threshold that
  decides one of the regime's rules for it, and its class if that threshold alone
  moved past it;
* ``threshold_value_function``: the optimal time-to-train and cluster as a function of
  the 2023-10 TPP threshold (rule 1, 4800; 2,400–8,000), of its PD threshold (rule 2,
  5.92; 3–12), of the 2025-04 memory-bandwidth threshold (1,400 GB/s; 800–4,500) and
  combined memory + interconnect threshold (1,700 GB/s; 1,100–6,000), and of the
  2023-10 TPP and PD thresholds moved together (every 4800 and 5.92 of the regime
  times a common factor f, 0.9–1.2); evaluated once between consecutive breakpoints
  (the candidates' quantities; the optimum cannot change in between), steps marked.
  Intervals: the optimal cluster at each point re-evaluated under every ensemble
  member.
* The smooth relaxation (``policy_sensitivity``, envelope derivative of the relaxed
  optimum through ``smooth_consequence_probs``) is measured at temperatures 0.02,
  0.05, 0.1 and 0.2 only to show that it is not an answer: it is no longer reported
  as a sensitivity.

Finding: computed by the script and written to
``out/05_binding_controls/report.md``; the current headline, and what moved and why,
are in ``experiments/README.md`` (no numbers here, so that they cannot go stale).

Correction of the previous version, which reported threshold elasticities "of order
1e-214" and that no candidate sits within a smoothing temperature of a threshold. The
relaxed derivative is an artefact of the temperature (2023-10, TPP rule 1: −1e-225 at
0.02, −7e-215 at 0.05, −0.0053 at 0.1, −0.075 at 0.2), and chips do sit near
thresholds: the A800 is 4.0 % above the TPP threshold 4800 and 2.1 % above the PD
threshold 5.92 (each alone leaves it prohibited by the other), the H20 1.3 % below and
the L20 1.7 % below a notification threshold (TPP 2400, PD 3.2). Value functions: the
TPP threshold alone (2,400–8,000) never changes the optimum; the PD threshold alone
(3–12) changes it only at PD ≤ 3.145, where the L20 becomes prohibited and the mix
search returns 16,384 H20 + 1,024 910B (8.4 [7.4, 9.9] days): the L20 is in neither
optimum, so this is a path of the heuristic mix search, not a binding threshold;
neither do the 2025-04 memory-bandwidth (800–4,500 GB/s; below 864 the L20 becomes
prohibited) and combined (1,100–6,000 GB/s) thresholds. Moving the TPP 4800 and PD
5.92 thresholds together by more than 4.0 % frees the A800 (notify) and the optimum
becomes 16,384 A800: 5.8 [5.0, 7.7] days instead of 8.7 [7.2, 11.4]. The two 2023-10
rules bind jointly, at the A800.
"""

# %%
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

T0 = C.setup()

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxcost as jc  # noqa: E402
from jaxcost.policy.sensitivity import (  # noqa: E402
    policy_sensitivity,
    threshold_breakpoints,
    threshold_curves,
    threshold_margins,
    threshold_value_function,
)

SLUG = "05_binding_controls"
DAY_S = 86400.0
TEMPERATURES = (0.02, 0.05, 0.1, 0.2)
SWEEPS = (
    (
        "exp_05_2023_10",
        ("2023-10/rule 1/when/0",),
        "TPP threshold (2023-10 rule 1)",
        (2400.0, 8000.0),
    ),
    (
        "exp_05_2023_10",
        ("2023-10/rule 2/when/1",),
        "PD threshold (2023-10 rule 2)",
        (3.0, 12.0),
    ),
    (
        "exp_05_2025_04",
        ("2025-04/rule 3/when/0",),
        "memory bandwidth GB/s (2025-04)",
        (800.0, 4500.0),
    ),
    (
        "exp_05_2025_04",
        ("2025-04/rule 3/when/2",),
        "memory + interconnect GB/s (2025-04)",
        (1100.0, 6000.0),
    ),
    (
        "exp_05_2023_10",
        None,
        "TPP 4800 and PD 5.92 together, factor f (2023-10)",
        (0.9, 1.2),
    ),
)

cal = C.load_calibration()
scens = {
    n: jc.load_scenario(C.ROOT / "scenarios" / f"{n}.toml")
    for n in ("exp_05_2023_10", "exp_05_2025_04")
}
regimes = {n: jc.load_regime(sc.regime) for n, sc in scens.items()}


def joint_leaves(regime):
    """Every leaf of the regime's own rules holding the TPP 4800 or the PD 5.92."""
    th = jc.regime_thresholds(regime).values
    return tuple(
        k
        for k, v in th.items()
        if k.startswith(regime.id + "/") and float(v) in (4800.0, 5.92)
    )


# %%
base = {}
temp_rows = []
for name, sc in scens.items():
    t = time.perf_counter()
    res = jc.chip_mix(cal.params, None, sc, check_exhaustive=False)
    base[name] = res
    for temp in TEMPERATURES:
        sens = policy_sensitivity(cal.params, None, sc, result=res, temperature=temp)
        for th, d in sens.items():
            temp_rows.append(
                {
                    "scenario": name,
                    "threshold": th,
                    "temperature": temp,
                    "value": d["value"],
                    "elasticity": d["elasticity"],
                }
            )
    print(
        f"{name}: {res.clusters[0].label} "
        f"{res.clusters[0].time_to_train_s / DAY_S:.1f} d; "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )

# %%
margin_rows = []
for name, sc in scens.items():
    for cand in sc.candidates:
        if cand.owned:
            continue
        for m in threshold_margins(cand.chip, regimes[name]):
            if m.decides_rule and math.isfinite(m.margin):
                margin_rows.append(
                    {
                        "scenario": name,
                        "chip": cand.chip.key,
                        "leaf": m.leaf,
                        "quantity": m.quantity,
                        "op": m.op,
                        "chip_value": m.chip_value,
                        "threshold": m.threshold,
                        "margin": m.margin,
                        "class_now": m.class_now,
                        "class_if_moved": m.class_if_moved,
                    }
                )

# %%
# every candidate's throughput curve, whatever its class: shared by the value functions
prepared = {name: threshold_curves(cal.params, None, sc) for name, sc in scens.items()}
rows = []
sweep_out = {}
for name, leaves, label, (lo, hi) in SWEEPS:
    t = time.perf_counter()
    sc = scens[name]
    joint = leaves is None
    if joint:
        leaves = joint_leaves(regimes[name])
        x0, target = 1.0, leaves
    else:
        x0 = float(jc.regime_thresholds(regimes[name]).values[leaves[0]])
        target = leaves[0]
    pts = threshold_value_function(
        cal.params, None, sc, target, span=(lo / x0, hi / x0), prepared=prepared[name]
    )
    arr = []
    for p in pts:
        row = {
            "scenario": name,
            "threshold": "; ".join(leaves),
            "label": label,
            "x": p.x,
            "cluster": p.cluster,
            "step": p.step,
            "changes": "; ".join(p.changes),
            "step_at": "; ".join(f"{b:.6g}" for b in p.step_at),
            "classes": "; ".join(f"{k}={v}" for k, v in p.classes.items()),
        }
        if p.result is not None:
            best = p.result.clusters[0]
            step_m = C.cluster_step_s(cal.ensemble, best, sc.model, sc)
            days_m = sc.tokens / (C.tokens_per_step(sc.model) / step_m) / DAY_S
            med, p5, p95 = C.interval(days_m)
            row.update(
                {
                    "plans": best.plan_label,
                    "days_point": best.time_to_train_s / DAY_S,
                    "days_median": med,
                    "days_p5": p5,
                    "days_p95": p95,
                    "capex_musd": best.capex_usd / 1e6,
                }
            )
            arr.append(
                (p.x, best.time_to_train_s / DAY_S, med, p5, p95, best.capex_usd / 1e6)
            )
        rows.append(row)
    chips_us = [c.chip for c in sc.candidates if not c.owned]
    th0 = jc.regime_thresholds(regimes[name]).values
    bps = sorted(
        {
            float(b) / (float(th0[leaf]) if joint else 1.0)
            for leaf in leaves
            for b in threshold_breakpoints(chips_us, regimes[name], leaf)
        }
    )
    sweep_out[label] = (x0, pts, np.asarray(arr), bps, joint)
    print(
        f"value function {label}: {len(pts)} points, {time.perf_counter() - t:.1f} s",
        flush=True,
    )

# %%
fig, axes = plt.subplots(2, len(SWEEPS), figsize=(3.6 * len(SWEEPS), 6), sharex="col")
for j, (_, _, label, (lo, hi)) in enumerate(SWEEPS):
    x0, pts, arr, bps, joint = sweep_out[label]
    drawn = set()
    for row in arr:
        # the optimum is constant between consecutive breakpoints: draw each point's
        # value over its whole interval (once per interval)
        left = max([lo] + [bp for bp in bps if bp < row[0]])
        right = min([hi] + [bp for bp in bps if bp > row[0]])
        if (left, right) in drawn:
            continue
        drawn.add((left, right))
        axes[0, j].plot([left, right], [row[2], row[2]], color="C0")
        axes[0, j].fill_between(
            [left, right], [row[3]] * 2, [row[4]] * 2, color="C0", alpha=0.25, lw=0
        )
        axes[1, j].plot([left, right], [row[5], row[5]], color="C2")
    if arr.size:
        axes[0, j].plot(arr[:, 0], arr[:, 2], "o", color="C0", ms=4)
        axes[1, j].plot(arr[:, 0], arr[:, 5], "o", color="C2", ms=4)
    for b in bps:
        if lo < b < hi:
            for a in axes[:, j]:
                a.axvline(b, color="0.6", lw=0.5, ls="--")
    for p in pts:
        for b in p.step_at:
            for a in axes[:, j]:
                a.axvline(b, color="C3", lw=1.0)
    for a in axes[:, j]:
        a.axvline(x0, color="k", ls=":", lw=0.8)
    axes[0, j].set_title(label, fontsize=8)
    axes[1, j].set_xlabel("factor f" if joint else "threshold value")
axes[0, 0].set_ylabel("optimal days (median, 5–95 %)")
axes[0, -1].text(
    0.02,
    0.02,
    "red: steps; dashed: breakpoints; dotted: in force",
    transform=axes[0, -1].transAxes,
    fontsize=6,
)
axes[1, 0].set_ylabel("capex of the optimum, MUSD")
fig.tight_layout()

# %%
# the smooth relaxation: temperature dependence of its "elasticities"
leaves_nz = sorted({r["threshold"] for r in temp_rows if abs(r["elasticity"]) > 1e-12})
temp_lines = [
    "| scenario | threshold | " + " | ".join(f"T = {t:g}" for t in TEMPERATURES) + " |",
    "|" + "---|" * (2 + len(TEMPERATURES)),
]
for name in scens:
    for th in leaves_nz or ["(every threshold)"]:
        vals = [
            next(
                (
                    r["elasticity"]
                    for r in temp_rows
                    if r["scenario"] == name
                    and r["threshold"] == th
                    and r["temperature"] == t
                ),
                0.0,
            )
            for t in TEMPERATURES
        ]
        temp_lines.append(
            f"| {name} | `{th}` | " + " | ".join(f"{v:.3g}" for v in vals) + " |"
        )

near_lines = []
for name in scens:
    groups = {}
    for r in margin_rows:
        if r["scenario"] == name and abs(r["margin"]) < 0.1:
            groups.setdefault((r["chip"], r["quantity"], r["threshold"]), []).append(r)
    for (chip_key, q, th), rs in sorted(
        groups.items(), key=lambda kv: abs(kv[1][0]["margin"])
    ):
        r = rs[0]
        leaves = ", ".join("`" + x["leaf"] + "`" for x in rs)
        moved = " / ".join(sorted({x["class_if_moved"] for x in rs}))
        side = "above" if r["margin"] > 0 else "below"
        near_lines.append(
            f"- {name}: **{chip_key}** {q} = {r['chip_value']:.4g} is "
            f"{abs(r['margin']):.1%} {side} {th:g} ({leaves}); class "
            f"{r['class_now']}, {moved} if that threshold alone moved past it."
        )

sweep_lines = []
for _, _, label, _ in SWEEPS:
    x0, pts, arr, _, _ = sweep_out[label]
    feas = [p for p in pts if p.result is not None]
    steps = [p for p in pts if p.step]
    solved = [r for r in rows if r["label"] == label and "days_median" in r]
    first, last = solved[0], solved[-1]
    opt_steps = [p for p in steps if any(c.startswith("cluster:") for c in p.changes)]
    cls_steps = [p for p in steps if p not in opt_steps]

    def at(p):
        return " or ".join(f"{b:.4g}" for b in p.step_at) or "?"

    step_txt = (
        "; ".join(
            f"the optimum changes at {at(p)} ({'; '.join(p.changes)})"
            for p in opt_steps
        )
        or "the optimum does not change"
    )
    if cls_steps:
        step_txt += "; classes only (same optimum) at " + "; ".join(
            f"{at(p)} ({'; '.join(p.changes)})" for p in cls_steps
        )
    sweep_lines.append(
        f"- **{label}** ({pts[0].x:.4g} → {pts[-1].x:.4g}, {len(pts)} points, "
        f"{len(feas)} feasible): optimal time {first['days_median']:.1f} "
        f"[{first['days_p5']:.1f}, {first['days_p95']:.1f}] → "
        f"{last['days_median']:.1f} [{last['days_p5']:.1f}, {last['days_p95']:.1f}] "
        f"days; {step_txt}."
    )

b23, b25 = base["exp_05_2023_10"].clusters[0], base["exp_05_2025_04"].clusters[0]
body = f"""**Question.** Which threshold of the 2023-10 and 2025-04 regimes limits the
optimal time-to-train of Llama-2-70B (2 T tokens, 300 MUSD, 20 MW)?

At the actual thresholds the optimum is {b23.label} ({b23.time_to_train_s / DAY_S:.1f}
days, 2023-10) and {b25.label} ({b25.time_to_train_s / DAY_S:.1f} days, 2025-04).

**Correction.** The previous version of this report gave threshold elasticities "of
order 1e-214" from the smooth relaxation and stated that no candidate is near a
threshold. A regime is a step function of its thresholds: the derivative of the
optimum is zero almost everywhere and undefined at the steps; the smooth relaxation
only moves that zero by an arbitrary temperature. Measured here (elasticity of the
optimal time with respect to each threshold; thresholds with a non-zero value at some
temperature, 0 elsewhere):

{chr(10).join(temp_lines)}

The value changes by orders of magnitude with the temperature, so it is not reported
as a sensitivity any more (``policy_sensitivity`` is no longer in the public API).

**Candidates near a threshold** (relative margin below 10 %, thresholds that decide a
rule of the regime for the chip):

{chr(10).join(near_lines) or "- none"}

**Value functions** (exact re-optimisation once between consecutive breakpoints,
median [5–95 %] days; a step lies at one of the breakpoints listed):

{chr(10).join(sweep_lines)}

A threshold binds where moving it changes the optimal cluster. Thresholds of several
rules act together (the 2023-10 TPP and PD rules, the 2025-04 memory and combined
bandwidth rules): moving one alone frees a chip only if no other rule still catches
it.
"""
seconds = time.perf_counter() - T0
out = C.write_report(
    SLUG,
    "05 — Which export control binds?",
    body,
    rows
    + [
        {
            "scenario": r["scenario"],
            "label": "margin",
            "threshold": r["leaf"],
            "x": r["threshold"],
            "cluster": f"{r['chip']} margin={r['margin']:.4g}",
        }
        for r in margin_rows
    ],
    fig,
    seconds=seconds,
    calibration=cal,
)
print(body)
print(f"wrote {out} in {seconds:.1f} s")
