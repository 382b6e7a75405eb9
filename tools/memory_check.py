"""Compare published measured peak memory per chip with jaxcost's memory model.

    python tools/memory_check.py                # every row of memory.csv
    python tools/memory_check.py --csv other.csv
    python tools/memory_check.py --package-grads # ignore the rows' grad_bytes tags

Each row of the table is rebuilt as a ``jc.TransformerConfig`` and a ``jc.ParallelPlan``
and passed to ``jc.memory_bytes`` (top-level public API only). Rows whose ``measured``
is ``activations_only`` are compared with ``.activations``; every other row with
``.total``.

Model conventions come from the row: when ``arch_model`` names a row of
data/models.csv, the MLP kind and tied embeddings are taken from ``jc.get_model``; the
dimensions, sequence length, vocabulary and global batch are always the row's own. A row
with no ``arch_model`` states its conventions with a tag in ``notes``, e.g.
``[mlp=gelu tied=false]``. The same tag may carry ``grad_bytes=4`` (the framework keeps
fp32 gradients, e.g. Megatron's main grads under bf16), passed to ``memory_bytes`` as
``grad_bytes_per_param``; ``--package-grads`` ignores it (the package default, 2 B).
``flash=0`` selects the unfused attention (the T×T scores are stored); ``head_dim=N``
sets the width of one attention head where it is not hidden/heads (multi-latent
attention up-projects 128-wide heads from a 1,024 hidden size); ``q_latent_dim``,
``kv_latent_dim``, ``qk_head_dim`` and ``v_head_dim`` give the widths of a multi-latent
attention (``jc.TransformerConfig``).

Mixture-of-experts rows take ``experts``, ``topk`` and the MoE columns
``moe_ffn_hidden`` (blank: ``ffn_hidden``), ``moe_shared_ffn`` (total inner size of the
shared experts, rounded to whole experts of ``moe_ffn_hidden``) and ``moe_dense_layers``
(leading dense layers). An expert-tensor-parallel size ``etp`` other than ``tp`` is
mapped to jaxcost's expert-parallel degree ep' = etp·ep/tp (same expert shard, same
expert-data-parallel group); ``moe_dispatcher`` and ``moe_grouped_gemm`` are recorded
for reference and not passed to the model. ``recompute_modules`` (Megatron-Core
``--recompute-modules``) is read as the recompute mode: ``core_attn`` is the selective
recompute, the norms and activation functions (``layernorm``, ``mlp_act``,
``moe_act``) the plan's ``recompute_lite``. A ``precision`` of ``fp8`` sets the plan's
``fp8`` (linear inputs cached in FP8).

Output: one line per row (row_id, model, plan, measured GiB, predicted GiB, ratio =
predicted / measured, error), then the median and mean absolute percentage error,
overall and per group. Rows with ``steady_allocated_bytes`` (memory allocated between
steps: weights, gradients, optimizer state, persistent buffers) get a second table that
splits the peak into that steady part, compared with weights + grads + optimizer, and
the rest (peak − steady), compared with the predicted activations.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import jaxcost as jc
from jaxcost.io.benchmarks import recompute_setting
from jaxcost.model.workload import MLA_FIELDS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CSV = REPO / "data" / "benchmarks" / "memory.csv"
GIB = 2.0 ** 30
_TAG = re.compile(r"\[([a-z_]+=[^\]\s]+(?:\s+[a-z_]+=[^\]\s]+)*)\]")


def _tags(notes: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for block in _TAG.findall(notes or ""):
        for item in block.split():
            k, v = item.split("=", 1)
            out[k] = v
    return out


def _int(row: dict, col: str, default: int | None = None) -> int:
    cell = (row.get(col) or "").strip()
    if not cell:
        if default is None:
            raise ValueError(f"{row['row_id']}: empty {col}")
        return default
    return int(float(cell))


def _moe_fields(row: dict, d_ff: int, experts: int) -> dict:
    """MoE keywords of ``jc.TransformerConfig.create`` from the row's MoE columns.

    ``moe_ffn_hidden`` blank: the experts have the dense ``ffn_hidden`` (Megatron's
    default). ``moe_shared_ffn`` is the total inner size of the shared experts
    (Megatron's ``--moe-shared-expert-intermediate-size``); jaxcost counts shared
    experts of size ``moe_d_ff``, so it is rounded to the nearest whole number of
    experts (at least one).
    """
    if experts <= 1:
        return {}
    moe_d_ff = _int(row, "moe_ffn_hidden", d_ff)
    shared_ffn = _int(row, "moe_shared_ffn", 0)
    shared = max(1, round(shared_ffn / moe_d_ff)) if shared_ffn else 0
    return dict(moe_d_ff=moe_d_ff, num_shared_experts=shared,
                num_dense_layers=_int(row, "moe_dense_layers", 0))


def _plan_ep(row: dict, tp: int) -> int:
    """Expert-parallel degree in jaxcost's convention.

    jaxcost shards the routed experts over tp·ep and their optimizer state over
    dp·cp/ep ranks. Megatron with an expert-tensor-parallel size etp != tp shards
    them over etp·ep, with an expert-data-parallel group of tp·dp·cp/(etp·ep);
    ep' = etp·ep/tp gives the same expert shard and the same expert-DP group (and
    the same count of expert activation elements per chip). ``etp`` blank means
    etp = tp.
    """
    ep = _int(row, "ep", 1)
    etp = _int(row, "etp", tp)
    if etp == tp:
        return ep
    if (etp * ep) % tp:
        raise ValueError(f"{row['row_id']}: etp*ep = {etp * ep} is not a multiple "
                         f"of tp = {tp}; no jaxcost ep matches")
    return etp * ep // tp


def build(row: dict, *, package_grads: bool):
    """(TransformerConfig, ParallelPlan, grad_bytes) for one row."""
    tags = _tags(row.get("notes", ""))
    arch = (row.get("arch_model") or "").strip()
    if arch:
        base = jc.get_model(arch)
        mlp, tied = base.mlp, base.tied_embeddings
    else:
        if "mlp" not in tags or "tied" not in tags:
            raise ValueError(
                f"{row['row_id']}: no arch_model and no [mlp=.. tied=..] tag")
        mlp, tied = tags["mlp"], tags["tied"].lower() == "true"
    hidden, heads = _int(row, "hidden"), _int(row, "heads")
    experts = _int(row, "experts", 1)
    d_ff = _int(row, "ffn_hidden")
    w = jc.TransformerConfig.create(
        name=row["model"], num_layers=_int(row, "layers"), d_model=hidden,
        num_heads=heads, num_kv_heads=_int(row, "kv_heads", heads),
        head_dim=int(tags.get("head_dim", hidden // heads)), d_ff=d_ff,
        vocab_size=_int(row, "vocab"), seq_len=_int(row, "seq_len"),
        global_batch_seqs=_int(row, "gbs_seqs"), num_experts=experts,
        top_k=_int(row, "topk", 1), mlp=mlp, tied_embeddings=tied,
        **{k: int(tags[k]) for k in MLA_FIELDS if k in tags},
        **_moe_fields(row, d_ff, experts))
    tp = _int(row, "tp", 1)
    rec = (row.get("recompute") or "none").strip()
    modules = (row.get("recompute_modules") or "").strip()
    # a module list (Megatron-Core --recompute-modules) is read as the recompute
    # text: core_attn is the selective recompute, norms and activation functions
    # the plan's recompute_lite
    text = f"--recompute-modules {modules}" if modules else rec
    rec, rec_lite = recompute_setting(text)
    plan = jc.ParallelPlan.create(
        dp=_int(row, "dp"), tp=tp, pp=_int(row, "pp", 1),
        cp=_int(row, "cp", 1), ep=_plan_ep(row, tp), vpp=_int(row, "vpp", 1),
        mbs=_int(row, "mbs"), zero=_int(row, "zero_fsdp", 0),
        recompute=rec,
        recompute_lite=rec_lite,
        sp=(row.get("sp") or "").strip().lower() == "yes",
        flash_attn=tags.get("flash", "1") != "0",
        fp8=(row.get("precision") or "").strip().lower() == "fp8")
    grad_bytes = 2.0 if package_grads else float(tags.get("grad_bytes", 2))
    return w, plan, grad_bytes


def predict(row: dict, *, package_grads: bool) -> tuple[str, float]:
    w, plan, g = build(row, package_grads=package_grads)
    mem = jc.memory_bytes(w, plan, grad_bytes_per_param=g)
    acts_only = row["measured"].strip() == "activations_only"
    value = mem.activations if acts_only else mem.total
    return jc.plan_to_str(plan) + ("-g4" if g == 4.0 else ""), float(value)


def _summary(label: str, errs: list[float]) -> str:
    if not errs:
        return f"{label}: no rows"
    ape = [abs(e) for e in errs]
    return (f"{label}: n={len(errs)}  median APE {100 * statistics.median(ape):.1f}%  "
            f"MAPE {100 * statistics.fmean(ape):.1f}%  "
            f"median signed error {100 * statistics.median(errs):+.1f}%")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--package-grads", action="store_true",
                    help="ignore grad_bytes tags (use memory_bytes' default of 2 B)")
    args = ap.parse_args(argv)

    with open(args.csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))

    print(f"{'row':6} {'group':20} {'model':28} {'plan':40} {'what':6} "
          f"{'meas GiB':>8} {'pred GiB':>8} {'ratio':>6} {'err':>7}")
    errs: list[float] = []
    by_group: dict[str, list[float]] = defaultdict(list)
    default_errs: list[float] = []
    for row in rows:
        measured = float(row["measured_bytes_per_chip"])
        try:
            plan_s, pred = predict(row, package_grads=args.package_grads)
        except (ValueError, jc.JaxcostError) as exc:
            print(f"{row['row_id']:6} skipped: {exc}")
            continue
        err = pred / measured - 1.0
        errs.append(err)
        by_group[row["group"]].append(err)
        if not args.package_grads:
            _, pred_default = predict(row, package_grads=True)
            default_errs.append(pred_default / measured - 1.0)
        what = "act" if row["measured"].strip() == "activations_only" else "total"
        print(f"{row['row_id']:6} {row['group'][:20]:20} {row['model'][:28]:28} "
              f"{plan_s:40} {what:6} {measured / GIB:8.1f} {pred / GIB:8.1f} "
              f"{pred / measured:6.2f} {100 * err:+6.1f}%")

    print()
    print(_summary("all rows", errs))
    for group, e in by_group.items():
        print("  " + _summary(group, e))
    if default_errs:
        print(_summary("all rows, package default grad_bytes_per_param=2",
                       default_errs))
    _print_split(rows, package_grads=args.package_grads)
    return 0


def _print_split(rows: list[dict], *, package_grads: bool) -> None:
    """Steady (between-step) and transient (peak − steady) parts, measured vs model."""
    split = [r for r in rows if (r.get("steady_allocated_bytes") or "").strip()]
    if not split:
        return
    print()
    print("split of the peak (rows with steady_allocated_bytes), GiB: steady = "
          "allocated between steps vs weights + grads + optimizer; transient = "
          "peak - steady vs activations")
    print(f"{'row':6} {'steady':>7} {'w+g+o':>7} {'err':>7} {'transnt':>7} "
          f"{'acts':>7} {'err':>7}")
    for row in split:
        try:
            w, plan, g = build(row, package_grads=package_grads)
        except (ValueError, jc.JaxcostError):
            continue
        mem = jc.memory_bytes(w, plan, grad_bytes_per_param=g)
        peak = float(row["measured_bytes_per_chip"])
        steady = float(row["steady_allocated_bytes"])
        static = float(mem.weights + mem.grads + mem.optimizer)
        acts = float(mem.activations)
        print(f"{row['row_id']:6} {steady / GIB:7.3f} {static / GIB:7.3f} "
              f"{100 * (static / steady - 1):+6.1f}% {(peak - steady) / GIB:7.3f} "
              f"{acts / GIB:7.3f} {100 * (acts / (peak - steady) - 1):+6.1f}%")


if __name__ == "__main__":
    sys.exit(main())
