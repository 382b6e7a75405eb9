"""06 — How many days do 5,000 and 10,000 A100 need for a GPT-3-175B-class model?

Question: a public estimate (quoted in ``experiments/claims.csv``; its exact source was
not found in the stored pages searched) says 5,000–10,000 A100 train a ChatGPT-class
model. With the best parallel plan, how many days does a GPT-3-175B-class model take
on 300 B tokens (the GPT-3 paper's budget) at those cluster sizes? How does that
compare with the GPT-3 paper's reported training compute (3.14e23 FLOP) converted to
days at the modelled MFU?

Data: ``chatgpt-class-175b`` of ``data/models.csv`` (GPT-3 175B architecture as the
stand-in: the GPT-3.5 architecture was never published), ``A100-SXM`` of
``data/chips.csv``, the token budget and compute of ``experiments/claims.csv``,
parameters from ``_common.load_calibration``.

Method: counts must admit a valid plan (batch 1536 = 2⁹·3 sequences, 96 layers), so
5,000 and 10,000 become the nearest valid node multiples (4,608 and 9,216). The best
plan is found by exhaustive enumeration (``best_plan``); a curve of best-plan
throughput over node multiples from 512 to 16,384 (``throughput_curves``) shows the
scaling. Intervals: the chosen plan re-evaluated under every ensemble member.

Finding (shipped calibration, 100-member bootstrap): 4,608 A100 need 5.4 [4.9, 6.1]
days (MFU 0.48 [0.43, 0.53]) and 9,216 A100 3.1 [2.8, 3.4] days (MFU 0.42 [0.38,
0.47]) for 300 B tokens; the GPT-3 paper's 3.14e23 FLOP at the modelled MFU gives 5.3
[4.7, 5.9] and 3.0 [2.7, 3.3] days. The estimate's cluster sizes are ample for a
GPT-3-class run; the unpublished token budget of the ChatGPT base model scales this
linearly.
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
from jaxcost.search.curves import throughput_curves  # noqa: E402

SLUG = "06_chatgpt_a100_days"
DAY_S = 86400.0

cal = C.load_calibration()
w = jc.get_model("chatgpt-class-175b")
a100 = jc.get_chip("A100-SXM")
tokens = C.claim("gpt3_tokens")
paper_flop = C.claim("gpt3_train_flop")
targets = (C.claim("chatgpt_estimate_low"), C.claim("chatgpt_estimate_high"))
peak = float(a100.peak_flop_per_s_bf16)
tps = C.tokens_per_step(w)
model_flop = float(jc.model_flop_per_token(w)) * tokens

# %%
rows, points = [], []
for target in targets:
    t = time.perf_counter()
    n = C.nearest_valid_count(w, a100, target)
    best = jc.best_plan(cal.params, jc.ClusterSpec(chip=a100, num_chips=float(n)), w,
                        k=1, tokens=tokens, space=jc.PlanSpace.create(**C.PLANS))[0]
    st = C.ensemble_step_times(cal.ensemble, jc.ClusterSpec(chip=a100,
                                                            num_chips=float(n)),
                               w, best.plan)
    days_m = tokens / (tps / np.asarray(st.total_s)) / DAY_S
    mfu_m = np.asarray(st.mfu)
    paper_days_m = paper_flop / (n * peak * mfu_m) / DAY_S
    points.append((n, days_m))
    rows.append({
        "target_chips": int(target), "chips": n, "plan": best.plan_str,
        "days_point": best.time_to_train_s / DAY_S,
        "days_median": C.interval(days_m)[0], "days_p5": C.interval(days_m)[1],
        "days_p95": C.interval(days_m)[2],
        "mfu_point": float(best.step_time.mfu),
        "mfu_median": C.interval(mfu_m)[0], "mfu_p5": C.interval(mfu_m)[1],
        "mfu_p95": C.interval(mfu_m)[2],
        "paper_flop_days_median": C.interval(paper_days_m)[0],
        "paper_flop_days_p5": C.interval(paper_days_m)[1],
        "paper_flop_days_p95": C.interval(paper_days_m)[2],
        "step_s": float(best.step_time.total_s),
        "tp_comm_s": float(best.step_time.tp_comm_s),
        "pp_comm_s": float(best.step_time.pp_comm_s),
        "dp_comm_s": float(best.step_time.dp_comm_s),
        "bubble_s": float(best.step_time.bubble_s),
    })
    print(f"{n} A100: {best.plan_str}, {C.fmt_interval(days_m)} days "
          f"({time.perf_counter() - t:.1f} s)")

# %%
grid = np.asarray([512 * 2 ** (k / 2) for k in range(11)])
grid = np.unique([C.nearest_valid_count(w, a100, g) for g in grid])
cv = throughput_curves(cal.params, w, [a100], [grid],
                       space=jc.PlanSpace.create(**C.PLANS))[0]
ok = cv.tokens_per_s > 0
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(cv.counts[ok], tokens / cv.tokens_per_s[ok] / DAY_S, "-o", ms=3,
          label="best plan (point parameters)")
ax.loglog(cv.counts[ok], tokens / (cv.counts[ok] * peak * 0.5 / (model_flop / tokens))
          / DAY_S, ":", color="gray", label="50 % MFU reference")
for n, d in points:
    med, lo, hi = C.interval(d)
    ax.errorbar([n], [med], yerr=[[med - lo], [hi - med]], fmt="s", color="C3",
                capsize=4)
ax.axvspan(targets[0], targets[1], color="C1", alpha=0.15, label="public estimate")
ax.set_xlabel("A100 count")
ax.set_ylabel(f"days for {tokens:.3g} tokens")
ax.set_title("GPT-3-175B-class on A100")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
r0, r1 = rows
body = f"""**Question.** A public estimate says {targets[0]:.0f}–{targets[1]:.0f} A100
train a ChatGPT-class model. How long does a GPT-3-175B-class model take on
{tokens:.3g} tokens with the best plan?

**Finding.** {r0['chips']} A100 (nearest valid count to {r0['target_chips']}):
**{r0['days_median']:.1f} days [{r0['days_p5']:.1f}, {r0['days_p95']:.1f}]** with plan
`{r0['plan']}` at MFU {r0['mfu_median']:.2f} [{r0['mfu_p5']:.2f}, {r0['mfu_p95']:.2f}].
{r1['chips']} A100 (nearest valid count to {r1['target_chips']}):
**{r1['days_median']:.1f} days [{r1['days_p5']:.1f}, {r1['days_p95']:.1f}]** with plan
`{r1['plan']}` at MFU {r1['mfu_median']:.2f} [{r1['mfu_p5']:.2f}, {r1['mfu_p95']:.2f}].
The GPT-3 paper's reported compute ({paper_flop:.3g} FLOP; the model's own count,
6·N + attention, gives {model_flop:.3g} FLOP for {tokens:.3g} tokens) at the modelled
MFU is {r0['paper_flop_days_median']:.1f} [{r0['paper_flop_days_p5']:.1f},
{r0['paper_flop_days_p95']:.1f}] days on {r0['chips']} and
{r1['paper_flop_days_median']:.1f} [{r1['paper_flop_days_p5']:.1f},
{r1['paper_flop_days_p95']:.1f}] days on {r1['chips']} A100. So at the
estimate's cluster sizes a GPT-3-class run on {tokens:.3g} tokens takes
{r1['days_p5']:.0f}–{r0['days_p95']:.0f} days (5–95 % over both sizes); the estimate
says nothing about the (unpublished) token budget of the actual ChatGPT base model,
which scales the days linearly.

Sources: {C.claims()['gpt3_tokens']['source']} ({C.claims()['gpt3_tokens']['locator']};
{C.claims()['gpt3_train_flop']['locator']}).
Estimate: {C.claims()['chatgpt_estimate_low']['source']}.
"""
seconds = time.perf_counter() - T0
out = C.write_report(SLUG, "06 — GPT-3-175B-class on 5k / 10k A100: days to train",
                     body, rows, fig, seconds=seconds, calibration=cal)
print(body)
print(f"wrote {out} in {seconds:.1f} s")
