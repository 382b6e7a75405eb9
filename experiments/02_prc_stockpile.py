"""02 — A PRC stockpile: fastest training of a DeepSeek-V3-class MoE and a dense ~1T.

Question: a lab holds a stockpile of 45,000 A100 (the middle of the 40–50k range),
10,000 A800 and 10,000 H800 bought before the rules, and may buy H20 (when the regime
allows) and domestic Ascend 910B / 910C (capped supply). Under the October 2023 and
April 2025 regimes, what is the fastest time to train (a) a DeepSeek-V3-class MoE
(``deepseek-v3``, 14.8 T tokens) and (b) a GPT-4-class dense model (``dense-1t``, an
illustrative ~1 T-parameter Llama-3-style model; token budget 1e13, ILLUSTRATIVE:
no GPT-4 budget is published)? Which chips does the optimum use, and what share of
the throughput does each type give?

Data: ``scenarios/exp_02_stockpile_2023_10.toml`` and ``exp_02_stockpile_2025_04.toml``
(stock counts, prices, budget 1 GUSD of new capex, 150 MW at PUE 1.3 — all stated
there; the stockpile counts and the 910C price are illustrative assumptions),
``data/chips.csv``, ``data/models.csv``, ``data/regimes/``; parameters from
``_common.load_calibration``.

Method: ``chip_mix`` (throughput curves per type on a count grid of one point per
octave, relaxed + integer-repaired mix, mixed clusters re-evaluated with the
heterogeneous data-parallel model, each group re-planned for its share of the
global batch). Intervals: the chosen cluster (counts and plans)
re-evaluated under every ensemble member.

Finding: computed by the script and written to
``out/02_prc_stockpile/report.md``; the current headline, and what moved and why,
are in ``experiments/README.md`` (no numbers here, so that they cannot go stale).
Caveats: the mixed-cluster search (surrogate ranking, exact re-evaluation of a pool) is
a heuristic; counts lie on a one-point-per-octave grid (32,768 of 45,000 A100).
Every group's plan may split its layers unevenly over the pipeline stages
(``pp_layout = "auto"`` in the scenarios; DeepSeek-V3 has 61 layers).
"""

# %%
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

T0 = C.setup()

import matplotlib.pyplot as plt  # noqa: E402

import jaxcost as jc  # noqa: E402

SLUG = "02_prc_stockpile"
SCENARIOS = ("exp_02_stockpile_2023_10", "exp_02_stockpile_2025_04")
DENSE_TOKENS = 1e13          # illustrative GPT-4-class budget (no published figure)
DAY_S = 86400.0

cal = C.load_calibration()
chips = jc.load_chips()
MODELS = (("deepseek-v3", None), ("dense-1t", DENSE_TOKENS))


# %%
rows, results = [], {}
for name in SCENARIOS:
    scen = jc.load_scenario(C.ROOT / "scenarios" / f"{name}.toml")
    for model, tokens in MODELS:
        t = time.perf_counter()
        w = jc.get_model(model)
        sc = scen if tokens is None else scen.replace(tokens=float(tokens))
        res = jc.chip_mix(cal.params, w, sc, check_exhaustive=False)
        best = res.clusters[0]
        step_m = C.cluster_step_s(cal.ensemble, best, w, sc)
        days_m = sc.tokens / (C.tokens_per_step(w) / step_m) / DAY_S
        med, lo, hi = C.interval(days_m)
        results[(name, model)] = (res, days_m, sc)
        group_sum = sum(best.group_tokens_per_s.values())
        for k, n in best.counts.items():
            rows.append({"regime": scen.regime, "model": model, "tokens": sc.tokens,
                         "chip": k, "count": n, "plan": best.plans[k],
                         "group_tok_s": best.group_tokens_per_s[k],
                         "throughput_share": best.group_tokens_per_s[k] / group_sum,
                         "cluster_tok_s": best.tokens_per_s,
                         "days_point": best.time_to_train_s / DAY_S,
                         "days_median": med, "days_p5": lo, "days_p95": hi,
                         "capex_musd": best.capex_usd / 1e6,
                         "power_mw": best.power_w / 1e6,
                         "model_kind": best.throughput_model})
        excl = "; ".join(f"{k}: {v}" for k, v in res.excluded.items())
        print(f"{scen.regime} {model}: {best.label} -> {med:.1f} [{lo:.1f}, {hi:.1f}] "
              f"days, capex {best.capex_usd / 1e6:.0f} MUSD "
              f"({time.perf_counter() - t:.1f} s); excluded: {excl}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (model, _) in zip(axes, MODELS, strict=True):
    labels, bottoms = [], {}
    allkeys = sorted({r["chip"] for r in rows if r["model"] == model})
    for j, name in enumerate(SCENARIOS):
        res, days_m, sc = results[(name, model)]
        best = res.clusters[0]
        tot = sum(best.group_tokens_per_s.values())
        b = 0.0
        for i, k in enumerate(allkeys):
            share = best.group_tokens_per_s.get(k, 0.0) / tot
            ax.bar(j, share, bottom=b, color=f"C{i}", label=k if j == 0 else None)
            if share > 0.04:
                ax.text(j, b + share / 2, f"{best.counts[k]}", ha="center",
                        va="center", fontsize=7)
            b += share
        med, lo, hi = C.interval(days_m)
        labels.append(f"{sc.regime}\n{med:.0f} d [{lo:.0f}, {hi:.0f}]")
    ax.set_xticks(range(len(SCENARIOS)), labels)
    ax.set_ylabel("share of group throughput (counts in bars)")
    ax.set_title(model)
    ax.legend(fontsize=7, loc="upper right")
fig.tight_layout()

# %%
lines = []
for name in SCENARIOS:
    for model, _ in MODELS:
        res, days_m, sc = results[(name, model)]
        best = res.clusters[0]
        med, lo, hi = C.interval(days_m)
        tot = sum(best.group_tokens_per_s.values())
        mix = ", ".join(f"{n:,} {k} ({100 * best.group_tokens_per_s[k] / tot:.0f} %)"
                        for k, n in best.counts.items())
        excl = "; ".join(f"{k} ({v})" for k, v in res.excluded.items()) or "none"
        lines.append(f"- **{sc.regime}, {model}** ({sc.tokens:.3g} tokens): "
                     f"**{med:.0f} days [{lo:.0f}, {hi:.0f}]**; cluster {mix}; new "
                     f"capex {best.capex_usd / 1e6:.0f} MUSD, "
                     f"{best.power_w / 1e6:.0f} MW. Excluded: {excl}.")
body = f"""**Question.** With 45k A100 + 10k A800 + 10k H800 owned, and H20 / Ascend
910B / 910C to buy (1 GUSD, 150 MW), how fast can a DeepSeek-V3-class MoE
(14.8 T tokens, DeepSeek-V3 report) and a dense ~1 T model (1e13 tokens,
illustrative) be trained under the 2023-10 and 2025-04 regimes?

**Finding.** (median [5–95 %] over the ensemble, days)

{chr(10).join(lines)}

Mixed clusters are evaluated with the heterogeneous data-parallel model (each chip
type a group of replicas with its own plan, chosen for the group's share of the
global batch; gradients all-reduced across groups).
Assumptions (all in the scenario files): stock counts, the 910C price (25,000 USD),
the domestic supply caps, budget and power are illustrative; the Ascend chips are
entered as owned-with-price so that the US regime does not apply to them.
"""
seconds = time.perf_counter() - T0
out = C.write_report(SLUG, "02 — PRC stockpile: fastest MoE and dense training", body,
                     rows, fig, seconds=seconds, calibration=cal)
print(body)
print(f"wrote {out} in {seconds:.1f} s")
