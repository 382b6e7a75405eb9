"""08 — Which chip specification should a control cap?

Question: for large-model training, what is the marginal value of each chip
specification — dense and FP8 peak, HBM bandwidth and capacity, scale-up bandwidth and
domain size, scale-out bandwidth, power — and so which specification does a control
bind on, for which workload? The rules moved from an interconnect criterion (2022-10,
which the A800/H800 were designed around) to TPP and performance density (2023-10), to
HBM (2024-12) and to memory/interconnect bandwidth (the 2025-04 H20 letters).

Data: ``data/chips.csv`` (H800-SXM, H20, A800-SXM, Ascend 910B, Ascend 910C),
``data/models.csv`` (Llama-3-70B and Llama-3-405B, dense, BF16; DeepSeek-V3, MoE, FP8
where the chip has an FP8 peak, else BF16), ``data/regimes/*.toml``, token budgets from
``experiments/claims.csv`` (the 405B's 15.6 T is used for both Llama models: the
elasticities do not depend on it), the observed DeepSeek-V3 run (2,048 H800, 2.664 M
pre-training GPU-hours) from ``experiments/claims_08.csv``; parameters from
``_common.load_calibration`` (point + 100-member bootstrap ensemble).

Method: ``jaxcost.policy.elasticity.spec_elasticities`` at 1,024, 4,096 and 16,384
chips (and DeepSeek-V3 on 2,048 H800, the observed run): the best plan of the full
plan space (gradient reduction overlapped, as in every experiment), then
∂ log T / ∂ log s by ``jax.grad`` with the plan fixed (envelope theorem), checked
against central differences at ±10 % with the plan fixed and re-optimised (half and
double the domain for its size). Time-to-train for a fixed token budget ∝ step time:
the elasticities are the same. Capacity enters only through which plans fit (envelope
0): its column is the re-optimised difference. TDP is not in the step time: its column
is the elasticity at a fixed power budget, −d log T / d log N between N/2 and 2N
(re-optimised). Intervals: each ensemble member's envelope elasticity at its own best
plan (among the point estimate's 64 best). No smoothing temperature enters.

Finding: computed by the script and written to
``out/08_spec_elasticities/report.md``; the current headline, and what moved and why,
are in ``experiments/README.md`` (no numbers here, so that they cannot go stale).
"""

# %%
import csv
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
from jaxcost.policy.elasticity import SPEC_NAMES, spec_elasticities  # noqa: E402
from jaxcost.policy.sensitivity import threshold_margins  # noqa: E402

SLUG = "08_spec_elasticities"
DAY_S = 86400.0
CHIPS = ("H800-SXM", "H20", "A800-SXM", "Ascend910B", "Ascend910C")
WORKLOADS = (
    ("llama3-70b", "llama3_405b_tokens", "bf16"),
    ("llama3-405b", "llama3_405b_tokens", "bf16"),
    ("deepseek-v3", "deepseek_v3_tokens", "fp8"),
)
COUNTS = (1024, 4096, 16384)
HEADLINE_N = 4096
REGIMES = ("2022-10", "2023-10", "2024-12", "2025-04")
SHORT = {
    "peak_flop_per_s_bf16": "BF16 peak",
    "peak_flop_per_s_fp8": "FP8 peak",
    "hbm_bytes_per_s": "HBM BW",
    "hbm_capacity_bytes": "HBM cap.*",
    "scaleup_bytes_per_s": "scale-up BW",
    "scaleup_domain_size": "domain",
    "scaleout_bytes_per_s": "scale-out BW",
    "tdp_w": "TDP @ power**",
}
#: uneven pipeline stages where the layers do not split evenly (as practiced: the
#: embedding and head stages; DeepSeek-V3's 61 layers), interleaved where even
SPACE = jc.PlanSpace.create(**C.PLANS, pp_balance="auto")

with open(C.ROOT / "experiments" / "claims_08.csv", newline="") as fh:
    CLAIMS_08 = {r["key"]: r for r in csv.DictReader(fh)}
cal = C.load_calibration()
chips = {k: jc.get_chip(k) for k in CHIPS}


def precision_of(chip, prec):
    """FP8 only where the chip has an FP8 peak (the A800 and the Ascends do not)."""
    f8 = float(chip.peak_flop_per_s_fp8)
    return prec if (prec == "bf16" or (math.isfinite(f8) and f8 > 0)) else "bf16"


# %%
results = {}
configs = [(m, tk, p, c, n) for m, tk, p in WORKLOADS for c in CHIPS for n in COUNTS]
n_ds = int(float(CLAIMS_08["deepseek_v3_h800_count"]["value"]))
configs.append(("deepseek-v3", "deepseek_v3_tokens", "fp8", "H800-SXM", n_ds))
for m, tok_key, prec, ck, n in configs:
    t = time.perf_counter()
    chip = chips[ck]
    w = jc.get_model(m)
    r = spec_elasticities(
        cal.params,
        jc.ClusterSpec(chip=chip, num_chips=float(n)),
        w,
        ensemble=cal.ensemble,
        space=SPACE,
        precision=precision_of(chip, prec),
        tokens=C.claim(tok_key),
    )
    results[(m, ck, n)] = r
    print(
        f"{m} {ck} x{n} {r.precision}: {r.plan} {r.time_to_train_s / DAY_S:.1f} d, "
        f"{time.perf_counter() - t:.1f} s",
        flush=True,
    )


# %%
def cell(r, spec):
    """(value shown, interval or None, kind) of one spec for the headline table."""
    s = r.specs[spec]
    if spec == "hbm_capacity_bytes":
        return s.reoptimised_fd, None, "re-opt"
    if spec == "tdp_w":
        return r.tdp_fixed_power, None, "count"
    return s.envelope, s.interval(), "envelope"


def fmt(v, iv, used=True):
    if not used:
        return "not used"
    if not math.isfinite(v):
        return "—"
    if iv is None or not math.isfinite(iv[0]):
        return f"{v:+.3f}"
    return f"{iv[0]:+.3f} [{iv[1]:+.3f}, {iv[2]:+.3f}]"


rows = []
for (m, ck, n), r in results.items():
    base = {
        "workload": m,
        "chip": ck,
        "chips": n,
        "precision": r.precision,
        "plan": r.plan,
        "days": r.time_to_train_s / DAY_S,
        "count_elasticity": r.count_elasticity,
        "member_plan_switches": r.member_plan_switches,
    }
    for spec in SPEC_NAMES:
        s = r.specs[spec]
        med, lo, hi = s.interval()
        rows.append(
            {
                **base,
                "spec": spec,
                "envelope": s.envelope,
                "median": med,
                "p5": lo,
                "p95": hi,
                "fixed_plan_fd": s.fixed_plan_fd,
                "reoptimised_fd": s.reoptimised_fd,
                "reoptimised_down": s.reoptimised_down,
                "reoptimised_up": s.reoptimised_up,
                "log_step": s.log_step,
                "plan_switch": s.plan_switch,
                "differs": s.differs,
                "plan_down": s.plan_down,
                "plan_up": s.plan_up,
                "tdp_fixed_power": r.tdp_fixed_power if spec == "tdp_w" else "",
                "note": s.note,
            }
        )


def table(n):
    lines = [
        "| workload | chip | plan | days | "
        + " | ".join(SHORT[s] for s in SPEC_NAMES)
        + " |",
        "|" + "---|" * (4 + len(SPEC_NAMES)),
    ]
    for m, _, _ in WORKLOADS:
        for ck in CHIPS:
            r = results.get((m, ck, n))
            if r is None:
                continue
            cells = [
                fmt(
                    *cell(r, s)[:2],
                    used=not (s == "peak_flop_per_s_fp8" and r.precision == "bf16"),
                )
                for s in SPEC_NAMES
            ]
            lines.append(
                f"| {m} ({r.precision}) | {ck} | `{r.plan}` | "
                f"{r.time_to_train_s / DAY_S:.0f} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


# %%
fig, axes = plt.subplots(
    len(WORKLOADS), 1, figsize=(11, 3.1 * len(WORKLOADS)), sharex=True
)
x = np.arange(len(SPEC_NAMES))
width = 0.8 / len(CHIPS)
for ax, (m, _, _) in zip(axes, WORKLOADS, strict=True):
    for k, ck in enumerate(CHIPS):
        vals, err_lo, err_hi = [], [], []
        for s in SPEC_NAMES:
            v, iv, _ = cell(results[(m, ck, HEADLINE_N)], s)
            v = v if math.isfinite(v) else 0.0
            if iv is not None and math.isfinite(iv[0]):
                vals.append(iv[0])
                err_lo.append(max(iv[0] - iv[1], 0.0))
                err_hi.append(max(iv[2] - iv[0], 0.0))
            else:
                vals.append(v)
                err_lo.append(0.0)
                err_hi.append(0.0)
        xs = x - 0.4 + width * (k + 0.5)
        ax.bar(
            xs, vals, width, yerr=[err_lo, err_hi], capsize=2, label=ck, color=f"C{k}"
        )
        for n, mk in ((COUNTS[0], "v"), (COUNTS[-1], "^")):
            pts = [cell(results[(m, ck, n)], s)[0] for s in SPEC_NAMES]
            ax.plot(
                xs,
                [p if math.isfinite(p) else np.nan for p in pts],
                mk,
                color="k",
                ms=3,
                ls="none",
            )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("∂ log T / ∂ log s")
    ax.set_title(
        f"{m}: bars {HEADLINE_N} chips (median, 5–95 %), ▼ {COUNTS[0]}, ▲ {COUNTS[-1]}",
        fontsize=9,
    )
axes[0].legend(fontsize=7, ncol=len(CHIPS))
axes[-1].set_xticks(x, [SHORT[s] for s in SPEC_NAMES], fontsize=8)
fig.tight_layout()


# %%
def med(m, ck, n, spec):
    v, iv, _ = cell(results[(m, ck, n)], spec)
    return iv[0] if iv is not None and math.isfinite(iv[0]) else v


def tpp_elasticity(r):
    """TPP scales every peak together: ε_TPP = ε_BF16 + ε_FP8 (per member)."""
    a = r.specs["peak_flop_per_s_bf16"].members
    b = np.nan_to_num(r.specs["peak_flop_per_s_fp8"].members, nan=0.0)
    return a + b


def rng(vals):
    vals = [v for v in vals if math.isfinite(v)]
    return f"{min(vals):+.2f} to {max(vals):+.2f}"


N = HEADLINE_N
dense = ("llama3-70b", "llama3-405b")
classes = {
    ck: {rg: str(jc.classify(chips[ck], rg).consequence.value) for rg in REGIMES}
    for ck in CHIPS
}
near = {}
for ck in CHIPS:
    for rg in REGIMES:
        ms = [
            mm
            for mm in threshold_margins(chips[ck], rg)
            if mm.decides_rule and mm.regime == rg and math.isfinite(mm.margin)
        ]
        if ms:
            uniq = {(mm.quantity, mm.threshold): mm.margin for mm in ms}
            close = sorted(uniq.items(), key=lambda kv: abs(kv[1]))
            pick = [kv for kv in close if abs(kv[1]) < 0.1] or close[:1]
            near[(ck, rg)] = ", ".join(
                f"{q} {mg:+.1%} vs {th:g}" for (q, th), mg in pick
            )
class_lines = [
    "| chip | " + " | ".join(REGIMES) + " | deciding thresholds "
    "(all within 10 %, else the nearest) |",
    "|" + "---|" * (len(REGIMES) + 2),
]
for ck in CHIPS:
    nt = "; ".join(f"{rg}: {near[(ck, rg)]}" for rg in REGIMES if (ck, rg) in near)
    class_lines.append(
        f"| {ck} | " + " | ".join(classes[ck][rg] for rg in REGIMES) + f" | {nt} |"
    )

# 2022-10: the interconnect cap. Exact counterfactual: the H800 with the H100's
# scale-up bandwidth, re-planned.
h100 = jc.get_chip("H100-SXM")
counter = {}
for m, _, prec in WORKLOADS:
    h800 = chips["H800-SXM"]
    n = n_ds if m == "deepseek-v3" else N
    p = precision_of(h800, prec)
    t_cut = jc.best_plan(
        cal.params,
        jc.ClusterSpec(chip=h800, num_chips=float(n)),
        jc.get_model(m),
        k=1,
        space=SPACE,
        precision=p,
    )[0]
    t_full = jc.best_plan(
        cal.params,
        jc.ClusterSpec(
            chip=h800.replace(scaleup_bytes_per_s=h100.scaleup_bytes_per_s),
            num_chips=float(n),
        ),
        jc.get_model(m),
        k=1,
        space=SPACE,
        precision=p,
    )[0]
    counter[m] = (
        n,
        float(t_cut.step_time.total_s) / float(t_full.step_time.total_s),
        t_cut.plan_str,
        t_full.plan_str,
    )

su = {
    m: [med(m, ck, N, "scaleup_bytes_per_s") for ck in ("H800-SXM", "A800-SXM")]
    for m, _, _ in WORKLOADS
}
so = {
    m: [med(m, ck, N, "scaleout_bytes_per_s") for ck in CHIPS] for m, _, _ in WORKLOADS
}
tppe = {
    m: [float(np.median(tpp_elasticity(results[(m, ck, N)]))) for ck in CHIPS]
    for m, _, _ in WORKLOADS
}
hbm = {m: [med(m, ck, N, "hbm_bytes_per_s") for ck in CHIPS] for m, _, _ in WORKLOADS}
cap = {
    m: [
        results[(m, ck, n)].specs["hbm_capacity_bytes"].reoptimised_fd
        for ck in CHIPS
        for n in COUNTS
    ]
    for m, _, _ in WORKLOADS
}
h20 = {
    m: {
        s: med(m, "H20", N, s)
        for s in (
            "peak_flop_per_s_bf16",
            "peak_flop_per_s_fp8",
            "hbm_bytes_per_s",
            "scaleup_bytes_per_s",
        )
    }
    for m, _, _ in WORKLOADS
}

ds = results[("deepseek-v3", "H800-SXM", n_ds)]
ds_hours = ds.time_to_train_s * n_ds / 3600.0
ds_claim = float(CLAIMS_08["deepseek_v3_pretrain_h800_hours"]["value"])
ds_members = {s: ds.specs[s].interval() for s in SPEC_NAMES}
ds_rank = sorted(
    (
        (s, ds_members[s][0])
        for s in SPEC_NAMES
        if math.isfinite(ds_members[s][0]) and s != "hbm_capacity_bytes"
    ),
    key=lambda kv: kv[1],
)


def pct(x):
    return f"{(x - 1.0) * 100:.1f} %"


su_txt = "; ".join(f"{m} {su[m][0]:+.3f} / {su[m][1]:+.3f}" for m, _, _ in WORKLOADS)
ds_su = ds_members["scaleup_bytes_per_s"]
ds_so = ds_members["scaleout_bytes_per_s"]
nv_max = max(v[1] for v in counter.values())
cap_max = min(
    (
        (m, ck, n, results[(m, ck, n)].specs["hbm_capacity_bytes"].reoptimised_fd)
        for m, _, _ in WORKLOADS
        for ck in CHIPS
        for n in COUNTS
    ),
    key=lambda t: t[3],
)
hbm_max = min(
    ((m, ck, v) for m in hbm for ck, v in zip(CHIPS, hbm[m], strict=True)),
    key=lambda t: t[2],
)
hist = (
    f"""1. **2022-10, interconnect criterion** (TPP ≥ 4800 *and* aggregate I/O ≥ 600
   GB/s; the A800 and H800 were built below the I/O line, 23 % and 12 % under it).
   Scale-up bandwidth elasticity at {N} chips, H800 / A800 (median): {su_txt}.
   The H800's cut NVLink, against the same chip with the H100's scale-up bandwidth
   (both re-optimised, exact), costs {pct(counter["llama3-70b"][1])} more step time
   for Llama-3-70B ({counter["llama3-70b"][0]} chips), {pct(counter["llama3-405b"][1])}
   for Llama-3-405B and
   {pct(counter["deepseek-v3"][1])} for DeepSeek-V3 ({counter["deepseek-v3"][0]}
   chips). The criterion capped a specification of small marginal value for training
   in these configurations (largest cost above: {pct(nv_max)});
   consistent with its replacement in 2023 by compute-based thresholds.
2. **2023-10, TPP and performance density.** TPP scales every peak; its elasticity
   (ε_BF16 + ε_FP8, median at {N} chips) is {rng(tppe["llama3-70b"])} (70B),
   {rng(tppe["llama3-405b"])} (405B), {rng(tppe["deepseek-v3"])} (DeepSeek-V3) over
   the five chips. For the dense models this is the specification that binds (close to
   −1: time ∝ 1/compute). For the MoE model its scale-out elasticity is
   {rng(so["deepseek-v3"])} and its HBM-bandwidth elasticity
   {rng(hbm["deepseek-v3"])} across the chips (with uneven pipeline stages the
   searched plans keep the expert all-to-all inside the node where memory allows).
   A TPP cap is aimed at the specification that binds dense training.
3. **2024-12, HBM.** HBM *bandwidth* elasticities are {rng(sum(hbm.values(), []))}
   over all chips and workloads at {N} (largest in magnitude: {hbm_max[0]} on
   {hbm_max[1]}, {hbm_max[2]:+.2f}). HBM *capacity* acts only
   through which plans fit: its re-optimised ±10 % difference is
   {rng(sum(cap.values(), []))} over all configurations (0 where the best plan does not
   change; large where less memory forces recomputation, ZeRO-3 or another split;
   largest: {cap_max[0]} on {cap_max[2]} {cap_max[1]}). The 2024-12 rule restricts
   HBM as a supply input of domestic accelerators (Ascend 910B/910C), i.e. how many
   chips can be built rather than a per-chip rate; in this model that is the chip
   count, with elasticity d log T / d log N of
   {rng([-r.tdp_fixed_power for r in results.values()])} over all configurations (the
   TDP-at-fixed-power column is its negative).
4. **2025-04, H20 letters** (memory bandwidth ≥ 1,400 GB/s, interconnect ≥ 1,100, or
   their sum ≥ 1,700). For training on the H20 at {N} chips the memory-bandwidth
   elasticity is {rng([h20[m]["hbm_bytes_per_s"] for m in h20])} and scale-up
   {rng([h20[m]["scaleup_bytes_per_s"] for m in h20])}, against
   {
        rng(
            [
                h20[m]["peak_flop_per_s_bf16"]
                + (
                    h20[m]["peak_flop_per_s_fp8"]
                    if math.isfinite(h20[m]["peak_flop_per_s_fp8"])
                    else 0.0
                )
                for m in h20
            ]
        )
    }
   for its (low) compute: for training the H20 is compute-bound, and the letters cap
   specifications of little marginal value for it (their target, inference, is out of
   scope here).
5. **Observed: DeepSeek-V3 trained on {n_ds} H800** (FP8). Predicted
   {ds.time_to_train_s / DAY_S:.0f} days, {ds_hours / 1e6:.2f} M GPU-hours against
   the reported {ds_claim / 1e6:.3f} M for pre-training ({pct(ds_hours / ds_claim)};
   plan `{ds.plan}`; the run used DualPipe, which overlaps its expert all-to-all
   with the computation of a second micro-batch stream, which this model does not
   represent; its memory savings, FP8 activation caches and recomputed norms, SwiGLU
   outputs and MLA up-projections, are in the searched space as FP8 caches and the
   cheap-module recompute). Elasticities, most binding first (median [5–95 %]): """
    + "; ".join(f"{SHORT[s]} {fmt(v, ds_members[s])}" for s, v in ds_rank[:4])
    + f"""; the
   capped NVLink (scale-up) {fmt(ds_su[0], ds_su)}. The specifications that bind this
   run most in the model are {SHORT[ds_rank[0][0]]} and {SHORT[ds_rank[1][0]]}; its
   scale-out elasticity is {fmt(ds_so[0], ds_so)}; the 2022 cap on the H800's NVLink
   costs it {pct(counter["deepseek-v3"][1])} of step time. DeepSeek's report describes
   FP8 mixed-precision training (its section 3.3) and overlapping the cross-node
   expert all-to-all with computation (section 3.2).
"""
)

# %%
diff_rows = [r for r in rows if r["differs"]]
by_spec = {}
for r in diff_rows:
    by_spec.setdefault(r["spec"], []).append(r)
diff_lines = []
for spec, rs in by_spec.items():
    ex = max(rs, key=lambda r: abs(r["reoptimised_fd"] - r["envelope"]))
    why = (
        "plan switch"
        if ex["plan_switch"]
        else "kink with the plan fixed (fixed-plan difference "
        f"{ex['fixed_plan_fd']:+.3f})"
    )
    diff_lines.append(
        f"- `{spec}`: {len(rs)} of {len(results)} configurations; largest "
        f"{ex['workload']} on {ex['chips']} {ex['chip']}: envelope "
        f"{ex['envelope']:+.3f}, re-optimised {ex['reoptimised_fd']:+.3f} (down "
        f"{ex['reoptimised_down']:+.3f}, up {ex['reoptimised_up']:+.3f}; {why}; plans "
        f"`{ex['plan_down']}` / `{ex['plan_up']}`)."
    )
n_checked = sum(
    1
    for r in rows
    if not r["plan_switch"]
    and math.isfinite(r["envelope"])
    and r["spec"] not in ("scaleup_domain_size",)
)
n_agree = sum(
    1
    for r in rows
    if not r["plan_switch"]
    and math.isfinite(r["envelope"])
    and r["spec"] not in ("scaleup_domain_size",)
    and not r["differs"]
)

body = f"""**Question.** Which chip specification binds the time-to-train of large
models,
so which one should an export control cap? Elasticities ε = ∂ log T / ∂ log s
(T time-to-train; for a fixed token budget T ∝ step time, so ε is the step time's):
ε = −0.5 means 10 % more of s saves about 5 % of the time.

**Headline ({N} chips; median [5–95 %] over the ensemble, each member at its own best
plan).** * HBM capacity enters only through which plans fit: its envelope is 0 by
construction, the value shown is the re-optimised ±10 % central difference (point).
** TDP is not in the step time (0 at a fixed chip count); shown is the elasticity at a
fixed power budget, −d log T / d log N between N/2 and 2N, re-optimised (point). —:
the chip lacks the specification (no FP8 on the A800 and the Ascends; those
DeepSeek-V3 runs are BF16).

{table(N)}

**{COUNTS[0]} chips**

{table(COUNTS[0])}

**{COUNTS[-1]} chips**

{table(COUNTS[-1])}

**Envelope vs re-optimised.** Where the best plan stays the same at ±10 % (and the
spec is not the domain size), {n_agree} of {n_checked} elasticities agree within 2 %
(+0.002). Where they differ:

{chr(10).join(diff_lines) or "- nowhere."}

The domain size is a count: its differences are at half and double the domain, across
the clip of the ranks per domain, so they measure a different (discrete) change than
its envelope (the derivative through the continuous ranks-per-domain leaf).

**Chips and the rules** (class per regime; thresholds of the regime's own rules that
decide a rule for the chip: those within 10 %, else the nearest):

{chr(10).join(class_lines)}

**The answer against the history of the rules.**

{hist}
**Caveats.** Training only (inference out of scope). The calibration data hold no
training runs of the H20 (kernel measurements only) nor of the Ascend 910C (nothing):
their predictions rest on their specifications and their family's fit. The
910C's 384-chip supernode does not divide the power-of-two counts; the ranks-per-domain
formula treats groups up to 384 as inside one domain. The chip-count slope uses N/2 and
2N because chip counts must admit a plan (batch and layer divisibility). Member plans
are chosen among the point estimate's 64 best plans.
"""

seconds = time.perf_counter() - T0
out = C.write_report(
    SLUG,
    "08 — Which chip specification should a control cap?",
    body,
    rows,
    fig,
    seconds=seconds,
    calibration=cal,
)
print(body)
print(f"wrote {out} in {seconds:.1f} s")
