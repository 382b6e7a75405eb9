"""Build data/benchmarks/{training_runs,collectives,kernels}.csv from the reference set.

Inputs (read-only):
  * the reference benchmarks: ``<reference>/{e2e_training,collectives,kernels}.csv``
    (default ``/work/shared/reference/benchmarks``, or
    ``$JAXCOST_REFERENCE_BENCHMARKS``);
  * additions: ``data/benchmarks/additions/{e2e_training,collectives,kernels}*.csv``
    (same columns as the reference files; the file name prefix says which);
  * ``data/benchmarks/chip_aliases.csv`` (chip label as printed -> chip key);
  * ``data/benchmarks/model_aliases.csv`` (model label as printed -> ``data/models.csv``
    name) and ``data/models.csv`` (published architectures, each with its source);
  * ``data/chips.csv`` (the chip database: keys that exist);
  * ``data/benchmarks/row_fills.csv`` (row id, column, value, reason): a cell the
    source leaves blank or marks "(not stated" is filled, the original kept in
    ``derivation`` with the reason;
  * ``data/benchmarks/software_rules.csv`` (group [, framework] [, row ids] -> column =
    value, with the reason): software settings the sources imply (attention kernel,
    expert dispatcher, TP overlap, sequence parallelism, distributed optimizer); adds
    the ``jaxcost.io.benchmarks.SOFTWARE_DEFAULTS`` columns;
  * ``data/benchmarks/fabrics.csv`` (inter-node fabric as printed, chips per node ->
    ``scaleout_bytes_per_s`` per chip and direction, with the source): the measured
    cluster's network, where the row's fabric is in the table (blank otherwise: the
    chip's own scale-out bandwidth applies).

Every source column is kept. The build adds SI columns (via ``jaxcost.data``), maps
chip labels to keys (rows whose chip is not in the database keep a blank ``chip_key``
and a note), fills blank architecture columns from the model's published architecture
in ``data/models.csv`` (never overwriting a printed value; disagreements are noted),
fills batch columns that the row's own notes state, derives
``step_time_s`` where the source gives tokens/s and the batch, sets ``weight`` and
``target``, and appends ``[build]`` notes for inconsistencies it finds. The result is
validated with ``jaxcost.io.benchmarks.load_benchmarks`` before it is written
(atomically).

Usage:  python tools/build_benchmarks.py [--reference DIR] [--check]
  --check: build in memory and compare with the files on disk (exit 1 if they differ).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from pathlib import Path

import pandas as pd

from jaxcost import units
from jaxcost.errors import DataError
from jaxcost.io import benchmarks as jd
from jaxcost.io import notation, runs
from jaxcost.model.parallel import uneven_layer_split

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "data" / "benchmarks"
MODELS_CSV = ROOT / "data" / "models.csv"
#: training-run column <- data/models.csv column (ffn_hidden is the expert FFN of MoE
#: rows).
ARCH_COLUMNS = {
    "layers": "num_layers",
    "hidden": "d_model",
    "ffn_hidden": None,  # d_ff (dense) or moe_d_ff (MoE)
    "heads": "num_heads",
    "kv_heads": "num_kv_heads",
    "vocab": "vocab_size",
    "experts": "num_experts",
    "topk": "top_k",
}
REFERENCE_NAMES = {
    "training_runs": "e2e_training",
    "collectives": "collectives",
    "kernels": "kernels",
}
#: Relative tolerance above which two printed figures that should agree are flagged.
FLAG_RTOL = 0.03


def _blank(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or (
        isinstance(x, str) and not x.strip()
    )


def _note(df: pd.DataFrame, i, text: str) -> None:
    old = df.at[i, "notes"]
    df.at[i, "notes"] = (f"{old} " if not _blank(old) else "") + f"[build] {text}"


def _derive(df: pd.DataFrame, i, text: str) -> None:
    old = df.at[i, "derivation"]
    df.at[i, "derivation"] = (f"{old}; " if not _blank(old) else "") + f"{text} (build)"


def read_inputs(kind: str, reference: Path) -> pd.DataFrame:
    """Reference rows followed by the additions, checked for columns and unique ids."""
    name = REFERENCE_NAMES[kind]
    ref = pd.read_csv(reference / f"{name}.csv")
    frames = [ref]
    for f in sorted((BENCH / "additions").glob(f"{name}*.csv")):
        add = pd.read_csv(f)
        missing = [c for c in ref.columns if c not in add.columns]
        if missing:
            sys.exit(f"{f}: missing columns {missing}; expected the reference columns")
        frames.append(add[list(ref.columns)])
    df = pd.concat(frames, ignore_index=True)
    dup = df["row_id"][df["row_id"].duplicated()]
    if len(dup):
        sys.exit(
            f"{name}: duplicated row_id {list(dup)} across reference and additions"
        )
    # object dtype for text so that notes can be appended
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


#: Numeric training-run columns whose cells may be printed in a source's own notation
#: (``2 layers/virtual stage``, ``64 (8 nodes)``, ``41%``, ``256 routed + 1 shared``).
NOTATION_COLUMNS = (
    "layers", "hidden", "ffn_hidden", "heads", "kv_heads", "seq_len", "vocab",
    "experts", "topk", "n_chips", "gbs_seqs", "gbs_tokens", "mbs", "tp", "pp", "vpp",
    "dp", "cp", "ep", "step_time_s", "tokens_per_s_per_chip", "tflops_per_chip",
    "mfu", "hfu",
)


def read_notations(df: pd.DataFrame) -> None:
    """Read cells printed in a published notation with the one parser of the package
    (:data:`jaxcost.io.runs.RUN_COLUMNS`, :mod:`jaxcost.io.notation`): the number
    replaces the text, which is kept in ``derivation``. A cell no parser reads stops
    the build with one line naming the row and column (never a traceback)."""
    parsers = {c.name: c.parse for c in runs.RUN_COLUMNS}
    for col in NOTATION_COLUMNS:
        if col not in df.columns or pd.api.types.is_numeric_dtype(df[col]):
            continue
        changed = False
        for i in df.index:
            text = df.at[i, col]
            if _blank(text):
                continue
            try:
                float(str(text))
                continue
            except ValueError:
                pass
            try:
                if col == "vpp":
                    layers, pp = (
                        None if _blank(df.at[i, c]) else int(float(df.at[i, c]))
                        for c in ("layers", "pp")
                    )
                    value = notation.parse_vpp(text, layers=layers, pp=pp)
                else:
                    value = parsers[col](str(text).strip())
            except (DataError, ValueError) as err:
                detail = getattr(err, "detail", str(err))
                sys.exit(f"training runs, row_id {df.at[i, 'row_id']}, column "
                         f"'{col}': {detail}")
            df.at[i, col] = value
            _derive(df, i, f"{col} '{text}' read as {value:g} (jaxcost.io.notation)")
            changed = True
        if changed:
            df[col] = pd.to_numeric(df[col], errors="coerce")


def map_chips(df: pd.DataFrame, aliases: pd.DataFrame, chip_keys: set[str]) -> None:
    """Replace ``chip_key`` by the alias table's key; blank it (with a note) if
    unknown."""
    table = dict(zip(aliases["chip_label"], aliases["chip_key"], strict=True))
    unknown = sorted(set(df["chip"]) - set(table))
    if unknown:
        sys.exit(
            f"chip labels missing from data/benchmarks/chip_aliases.csv: {unknown}"
        )
    for i in df.index:
        ref_key = df.at[i, "chip_key"]
        key = table[df.at[i, "chip"]]
        key = None if _blank(key) else str(key)
        if key is not None and key not in chip_keys:
            _note(df, i, f"chip '{key}' is not in data/chips.csv: row kept, "
                         "chip_key left blank, excluded from fitting.")
            key = None
        elif key is None:
            _note(df, i, f"chip label ambiguous (reference key '{ref_key}'): chip_key "
                         "left blank, excluded from fitting.")
        elif key != ref_key:
            _note(
                df, i, f"chip_key {key} from the chip label (reference key {ref_key})."
            )
        df.at[i, "chip_key"] = key


def load_model_table(
    aliases_path: Path, models_path: Path
) -> dict[str, tuple[str, dict]]:
    """Benchmark model label -> (models.csv name, architecture values) from the alias
    table."""
    aliases = pd.read_csv(aliases_path, dtype=str, keep_default_na=False)
    for col in ("model_label", "model_name", "notes"):
        if col not in aliases.columns:
            sys.exit(f"{aliases_path}: missing column '{col}'")
    models = pd.read_csv(models_path, dtype=str, keep_default_na=False).set_index(
        "name"
    )
    table = {}
    for k, (label, name) in enumerate(zip(aliases["model_label"], aliases["model_name"],
                                          strict=True)):
        if label in table:
            sys.exit(f"{aliases_path}: row {k + 2}: duplicated model_label '{label}'")
        if name not in models.index:
            sys.exit(
                f"{aliases_path}: row {k + 2}, column 'model_name': '{name}' is not a "
                f"name in {models_path.name}"
            )
        m = models.loc[name]
        moe = int(m["num_experts"]) > 1
        vals = {
            col: float(m[src]) for col, src in ARCH_COLUMNS.items() if src is not None
        }
        vals["ffn_hidden"] = float(m["moe_d_ff"] if moe else m["d_ff"])
        if not moe:  # dense rows leave experts/topk blank (read as 1)
            del vals["experts"], vals["topk"]
        vals["head_dim"] = float(m["head_dim"])
        table[label] = (name, vals)
    return table


def fill_architecture(df: pd.DataFrame, table: dict[str, tuple[str, dict]]) -> None:
    """Fill blank architecture cells from data/models.csv via the model alias table.

    A printed value is never overwritten; where it differs from the table, the row's
    value is kept and a note names both. ``head_dim`` is filled only where the row's
    hidden and heads equal the table's (else D/N is implied). Adds ``arch_model`` (the
    models.csv name) and ``head_dim`` columns.
    """
    arch_model, head_dim = [], []
    for i in df.index:
        hit = table.get(str(df.at[i, "model"]))
        if hit is None:
            arch_model.append(None)
            head_dim.append(float("nan"))
            continue
        name, vals = hit
        filled, differ = [], []
        for col in ARCH_COLUMNS:
            if col not in vals:
                continue
            cur = df.at[i, col]
            if _blank(cur):
                df.at[i, col] = vals[col]
                filled.append(col)
            elif float(cur) != vals[col]:
                differ.append(f"{col} {float(cur):g} (data/models.csv: {vals[col]:g})")
        same_shape = all(float(df.at[i, c]) == vals[c] for c in ("hidden", "heads"))
        head_dim.append(vals["head_dim"] if same_shape else float("nan"))
        arch_model.append(name)
        if filled:
            _derive(df, i, f"{', '.join(filled)} from data/models.csv ({name})")
            df.at[i, "provenance"] = (f"{df.at[i, 'provenance']}; architecture from "
                                      f"data/models.csv ({name})")
        if differ:
            _note(
                df,
                i,
                f"row differs from data/models.csv ({name}): {'; '.join(differ)}; "
                "row values kept.",
            )
    df.insert(df.columns.get_loc("model") + 1, "arch_model", arch_model)
    df.insert(df.columns.get_loc("kv_heads") + 1, "head_dim", head_dim)


def apply_row_fills(df: pd.DataFrame, path: Path) -> None:
    """Fill cells named by ``row_fills.csv`` where the source left them blank or wrote
    "(not stated ...)"; the original text and the reason go to ``derivation``. A fill
    for a row or column that does not exist, or for a cell with a printed value, is an
    error (the table must not overwrite the source)."""
    fills = pd.read_csv(path, dtype=str, keep_default_na=False)
    for k, f in fills.iterrows():
        hit = df.index[df["row_id"] == f["row_id"]]
        if len(hit) != 1 or f["column"] not in df.columns:
            raise SystemExit(f"{path}: row {k + 2}: no row '{f['row_id']}' or column "
                             f"'{f['column']}' in the training runs")
        i = hit[0]
        old = df.at[i, f["column"]]
        if not (_blank(old) or str(old).strip().lower().startswith("(not stated")):
            raise SystemExit(
                f"{path}: row {k + 2}: {f['row_id']} {f['column']} has the "
                f"printed value {old!r}; a fill may not overwrite it"
            )
        value: object = f["value"]
        if df[f["column"]].dtype.kind in "fi":  # a numeric column takes a number
            value = float(value)
        df.at[i, f["column"]] = value
        _derive(df, i, f"{f['column']} '{f['value']}' filled (source: "
                       f"{'blank' if _blank(old) else repr(str(old))}): {f['reason']}")


def apply_software_rules(df: pd.DataFrame, rules_path: Path) -> None:
    """Fill software settings the sources imply but do not tabulate, from
    ``software_rules.csv`` (group [, framework] [, row ids] -> column = value, with the
    reason).

    Adds the software-setting columns ``jaxcost.io.benchmarks.SOFTWARE_DEFAULTS`` (after
    ``recompute``; where no rule sets them, their default: flash attention, NCCL
    dispatcher, no pipelined TP overlap). A rule fills a cell only where the source
    left it blank; the reason is appended to ``derivation``.
    """
    rules = pd.read_csv(rules_path, dtype=str, keep_default_na=False)
    at = df.columns.get_loc("recompute")
    for j, name in enumerate(jd.SOFTWARE_DEFAULTS):
        df.insert(at + 1 + j, name, "")
    for k, r in rules.iterrows():
        col = r["column"]
        if col not in df.columns:
            raise SystemExit(f"{rules_path}: row {k + 2}: no column '{col}'")
        for i in df.index:
            if str(df.at[i, "group"]) != r["group"]:
                continue
            if r["framework"] and str(df.at[i, "framework"]).strip() != r["framework"]:
                continue
            if r["row_ids"] and str(df.at[i, "row_id"]) not in r["row_ids"].split():
                continue
            if not _blank(df.at[i, col]):
                continue
            if df[col].dtype != object:  # an all-blank column reads as float
                df[col] = df[col].astype(object)
            df.at[i, col] = r["value"]
            _derive(df, i, f"{col} {r['value']}: {r['reason']}")
    infer_pp_layout(df)
    for name, default in jd.SOFTWARE_DEFAULTS.items():
        df.loc[df[name] == "", name] = default


def apply_fabrics(df: pd.DataFrame, path: Path) -> None:
    """Add ``scaleout_bytes_per_s`` (after ``inter_node_fabric``): the NIC bandwidth per
    chip and direction of the row's cluster, from ``fabrics.csv`` (fabric text as
    printed and chips per node -> bytes/s, with the source, appended to
    ``derivation``). Rows whose fabric is blank or not in the table stay blank."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    values: list[float] = [math.nan] * len(df)
    for k, f in table.iterrows():
        try:
            v = float(f["scaleout_bytes_per_s"])
        except ValueError:
            v = math.nan
        if not v > 0:
            raise SystemExit(f"{path}: row {k + 2}: column scaleout_bytes_per_s: "
                             "expected a positive number, got "
                             f"{f['scaleout_bytes_per_s']!r}")
        hits = 0
        for pos, i in enumerate(df.index):
            if (str(df.at[i, "inter_node_fabric"]).strip() == f["inter_node_fabric"]
                    and str(_int_or_none(df.at[i, "chips_per_node"]))
                    == f["chips_per_node"]):
                values[pos] = v
                _derive(df, i, f"scaleout_bytes_per_s {v:g}: {f['source']}")
                hits += 1
        if not hits:
            raise SystemExit(f"{path}: row {k + 2}: no training run has "
                             f"inter_node_fabric '{f['inter_node_fabric']}' with "
                             f"{f['chips_per_node']} "
                             "chips per node")
    df.insert(df.columns.get_loc("inter_node_fabric") + 1, "scaleout_bytes_per_s",
              values)


def infer_pp_layout(df: pd.DataFrame) -> None:
    """``pp_layout`` balanced where the layers cannot be split evenly: a run whose
    pp·vpp does not divide its layer count must give its stages unequal numbers of
    layers, and the frameworks' options for that (Megatron
    ``--decoder-first/last-pipeline-num-layers``, ``--account-for-embedding/loss-in-
    pipeline-split``; DeepSpeed ``type:transformer|embedding``) exist to take layers off
    the embedding and head stages. Cells set by a rule or the source are kept."""
    for i in df.index:
        if not _blank(df.at[i, "pp_layout"]):
            continue
        layers, pp = df.at[i, "layers"], df.at[i, "pp"]
        vpp = 1.0 if _blank(df.at[i, "vpp"]) else float(df.at[i, "vpp"])
        if _blank(layers) or _blank(pp):
            continue
        if uneven_layer_split(float(layers), float(pp), vpp):
            df.at[i, "pp_layout"] = "balanced"
            _derive(
                df,
                i,
                f"pp_layout balanced: {float(layers):g} layers do not divide "
                f"into pp x vpp = {float(pp) * vpp:g} stages, so the run "
                "splits them unevenly (the head and embedding stages get "
                "fewer)",
            )


def _int_or_none(x):
    return None if _blank(x) else int(x)


def fill_from_notes(df: pd.DataFrame) -> None:
    """Fill blank batch columns stated in the row's own notes or implied exactly."""
    for i in df.index:
        notes = str(df.at[i, "notes"] or "")
        if _blank(df.at[i, "gbs_seqs"]):
            m = re.search(r"\bGBS[ =]?(\d+)", notes)
            if m:
                df.at[i, "gbs_seqs"] = float(m.group(1))
                _derive(
                    df, i, f"gbs_seqs = {m.group(1)} from notes ('GBS {m.group(1)}')"
                )
        if _blank(df.at[i, "mbs"]):
            m = re.search(r"\bLBS[ =]?(\d+)", notes)
            if m:
                df.at[i, "mbs"] = float(m.group(1))
                _derive(df, i, f"mbs = local batch LBS {m.group(1)} from notes")
        if _blank(df.at[i, "gbs_seqs"]):
            m = re.search(r"\bGAS[ =]?(\d+)", notes)
            if m and not _blank(df.at[i, "mbs"]) and not _blank(df.at[i, "dp"]):
                gbs = df.at[i, "mbs"] * float(m.group(1)) * df.at[i, "dp"]
                df.at[i, "gbs_seqs"] = gbs
                _derive(df, i, f"gbs_seqs = LBS x GAS x dp = {df.at[i, 'mbs']:g} x "
                               f"{m.group(1)} x {df.at[i, 'dp']:g} (notes)")
        seq = df.at[i, "seq_len"]
        if (
            _blank(df.at[i, "gbs_seqs"])
            and not _blank(df.at[i, "gbs_tokens"])
            and not _blank(seq)
        ):
            g = df.at[i, "gbs_tokens"] / seq
            if g == round(g):
                df.at[i, "gbs_seqs"] = g
                _derive(df, i, "gbs_seqs = gbs_tokens / seq_len")
        if (
            _blank(df.at[i, "gbs_tokens"])
            and not _blank(df.at[i, "gbs_seqs"])
            and not _blank(seq)
        ):
            df.at[i, "gbs_tokens"] = df.at[i, "gbs_seqs"] * seq
            _derive(df, i, "gbs_tokens = gbs_seqs x seq_len")


def check_plans(df: pd.DataFrame) -> None:
    """Flag printed dp that contradicts n_chips / (tp*pp*cp); the printed dp goes to
    notes."""
    for i in df.index:
        tp, pp, dp, n = (df.at[i, c] for c in ("tp", "pp", "dp", "n_chips"))
        cp = 1.0 if _blank(df.at[i, "cp"]) else df.at[i, "cp"]
        if any(_blank(v) for v in (tp, pp, dp, n)):
            continue
        if tp * pp * dp * cp != n:
            _note(df, i, f"printed dp={dp:g} contradicts n_chips/(tp*pp*cp) = "
                         f"{n / (tp * pp * cp):g}; dp left blank.")
            df.at[i, "dp"] = float("nan")
        m = re.search(r"\bGA=(\d+)", str(df.at[i, "notes"] or ""))
        mbs, gbs = df.at[i, "mbs"], df.at[i, "gbs_seqs"]
        if (
            m
            and not _blank(mbs)
            and not _blank(gbs)
            and mbs * int(m.group(1)) * dp != gbs
        ):
            _note(
                df,
                i,
                f"inconsistent batch: mbs x GA x dp = {mbs:g} x {m.group(1)} x "
                f"{dp:g} = {mbs * int(m.group(1)) * dp:g} but gbs_seqs = {gbs:g}.",
            )


def derive_step_time(df: pd.DataFrame) -> None:
    """step_time_s = gbs_tokens / (tokens_per_s_per_chip * n_chips) where blank."""
    for i in df.index:
        tok, tps, n, st = (
            df.at[i, c]
            for c in ("gbs_tokens", "tokens_per_s_per_chip", "n_chips", "step_time_s")
        )
        if any(_blank(v) for v in (tok, tps, n)):
            continue
        der = tok / (tps * n)
        if _blank(st):
            df.at[i, "step_time_s"] = der
            _derive(
                df,
                i,
                "step_time_s = gbs_tokens / (tokens_per_s_per_chip x n_chips); "
                f"provenance before: {df.at[i, 'provenance']}",
            )
            df.at[i, "provenance"] = "derived"
        elif abs(der / st - 1) > FLAG_RTOL:
            _note(
                df,
                i,
                f"step_time_s {st:g} disagrees with gbs_tokens/(tokens/s x n) = "
                f"{der:.4g}.",
            )


def check_utilisation(df: pd.DataFrame, chips: pd.DataFrame) -> None:
    """Flag MFU/HFU that disagree with tflops/peak, and FLOP/s above the chip's peak."""
    peak = dict(
        zip(chips["key"], pd.to_numeric(chips["peak_flop_per_s_bf16"]), strict=True)
    )
    peak8 = dict(
        zip(chips["key"], pd.to_numeric(chips["peak_flop_per_s_fp8"]), strict=True)
    )
    for i in df.index:
        tf, pk = df.at[i, "tflops_per_chip"], df.at[i, "mfu_peak_tflops"]
        for col in ("mfu", "hfu"):
            u = df.at[i, col]
            if (
                not any(_blank(v) for v in (tf, pk, u))
                and abs(tf / pk / u - 1) > FLAG_RTOL
            ):
                _note(
                    df,
                    i,
                    f"{col} {u:g} disagrees with tflops_per_chip/mfu_peak_tflops = "
                    f"{tf / pk:.3f}.",
                )
        key = df.at[i, "chip_key"]
        if _blank(tf) or _blank(key) or key not in peak:
            continue
        fp8 = "fp8" in str(df.at[i, "precision"] or "").lower()
        cap = peak8[key] if fp8 and peak8[key] > 0 else peak[key]
        if tf * units.TERA > cap:
            _note(
                df,
                i,
                f"tflops_per_chip {tf:g} exceeds the chip's dense "
                f"{'FP8' if fp8 else 'BF16'} peak {cap / units.TERA:g} TFLOP/s.",
            )


def weight_and_target(df: pd.DataFrame) -> None:
    """weight: 0.3 for campaign averages (GPU-hour statements), else 1.0; target."""
    weights, targets = [], []
    for i in df.index:
        text = (f"{df.at[i, 'derivation'] or ''} {df.at[i, 'tflops_def'] or ''} "
                f"{df.at[i, 'group']}")
        campaign = "campaign average" in text or "gpuhours" in text
        weights.append(0.3 if campaign else 1.0)
        key = df.at[i, "chip_key"]
        ascend = str(df.at[i, "chip"]).lower().startswith(("ascend", "910")) or (
            not _blank(key) and str(key).startswith("Ascend")
        )
        order = (
            ["tokens_per_s_per_chip"]
            if ascend
            else [
                "step_time_s",
                "tokens_per_s_per_chip",
                "mfu",
                "hfu",
                "flop_per_s_per_chip",
            ]
        )
        t = next((c for c in order if not _blank(df.at[i, c])), None)
        targets.append(t)
    df["weight"] = weights
    df["target"] = targets


def collective_kind(text: str) -> str:
    s = text.lower()
    rules = [
        ("all_reduce", "all_reduce"), ("allreduce", "all_reduce"),
        ("all_gather", "all_gather"), ("reduce_scatter", "reduce_scatter"),
        ("moe_dispatch", "all_to_all"), ("moe_combine", "all_to_all"),
        ("all_to_all", "all_to_all"), ("alltoall", "all_to_all"),
        ("sendrecv", "send_recv"), ("p2p", "send_recv"),
        ("host_to_device", "memcpy_h2d"), ("device_to_host", "memcpy_d2h"),
        ("device_to_device", "memcpy_d2d"),
    ]
    return next((k for pat, k in rules if s.startswith(pat) or f" {pat}" in s), "other")


def check_collectives(df: pd.DataFrame) -> None:
    for i in df.index:
        b, t, alg, bus, n = (
            df.at[i, c]
            for c in ("message_bytes", "time_us", "algbw_GBps", "busbw_GBps", "n_ranks")
        )
        if not any(_blank(v) for v in (b, t, alg)) and alg >= 1.0:
            a = b / (t * units.MICRO) / units.GIGA
            if abs(a / alg - 1) > FLAG_RTOL:
                _note(
                    df,
                    i,
                    f"algbw {alg:g} GB/s disagrees with message_bytes/time = {a:.4g}.",
                )
        if (df.at[i, "collective_kind"] == "all_reduce"
                and not any(_blank(v) for v in (alg, bus, n)) and bus >= 1.0):
            exp = alg * 2 * (n - 1) / n
            if abs(exp / bus - 1) > FLAG_RTOL:
                _note(
                    df,
                    i,
                    f"busbw {bus:g} GB/s disagrees with algbw*2(n-1)/n = {exp:.4g}.",
                )


def kernel_kind(kernel: str, groups) -> str:
    s = kernel.lower()
    if s.startswith("gemm"):
        return "moe_gemm" if not _blank(groups) and groups > 1 else "gemm"
    if "mla" in s:
        return "mla"
    if s.startswith("attention"):
        return "attention"
    if s.startswith("hbm") or "memcpy" in s or "stream" in s or "elementwise" in s:
        return "hbm_stream"
    if s.startswith("transformer_layer"):
        return "transformer_layer"
    sys.exit(
        f"kernel '{kernel}': no kernel_kind rule; extend tools/build_benchmarks.py"
    )


def precision_kind(text) -> str | None:
    if _blank(text):
        return None
    s = str(text).lower()
    if "bf16 matmul" in s:
        return "fp16_bf16"
    for pat, k in (
        ("fp8", "fp8"),
        ("tf32", "tf32"),
        ("fp64", "fp64"),
        ("fp32", "fp32"),
        ("bf16", "fp16_bf16"),
        ("fp16", "fp16_bf16"),
        ("mixed", "fp16_bf16"),
    ):
        if pat in s:
            return k
    return None


def check_kernel_peaks(df: pd.DataFrame, chips: pd.DataFrame) -> None:
    cols = {"fp16_bf16": "peak_flop_per_s_bf16", "fp8": "peak_flop_per_s_fp8",
            "fp32": "peak_flop_per_s_fp32", "fp64": "peak_flop_per_s_fp64"}
    table = chips.set_index("key")
    for i in df.index:
        key, pk, fps = (
            df.at[i, "chip_key"],
            df.at[i, "precision_kind"],
            df.at[i, "flop_per_s"],
        )
        if _blank(key) or pk not in cols or _blank(fps):
            continue
        cap = pd.to_numeric(table.at[key, cols[pk]], errors="coerce")
        if cap and cap > 0 and fps > cap * (1 + 1e-9):
            _note(
                df,
                i,
                f"{fps / units.TERA:g} TFLOP/s exceeds the chip's dense {pk} peak "
                f"{cap / units.TERA:g} TFLOP/s in data/chips.csv.",
            )


def build(reference: Path) -> dict[str, pd.DataFrame]:
    chips = jd.load_chips_frame()
    keys = set(chips["key"])
    aliases = jd.load_csv(
        BENCH / "chip_aliases.csv", jd.CHIP_ALIASES_SCHEMA, chips=None
    )
    out = {}

    df = read_inputs("training_runs", reference)
    read_notations(df)
    map_chips(df, aliases, keys)
    fill_from_notes(df)
    apply_row_fills(df, BENCH / "row_fills.csv")
    check_plans(df)
    derive_step_time(df)
    fill_architecture(df, load_model_table(BENCH / "model_aliases.csv", MODELS_CSV))
    apply_software_rules(df, BENCH / "software_rules.csv")
    apply_fabrics(df, BENCH / "fabrics.csv")
    df = jd.add_si_columns(df, "training_runs")
    check_utilisation(df, chips)
    weight_and_target(df)
    cols = [
        c for c in df.columns if c not in ("derivation", "notes", "weight", "target")
    ]
    out["training_runs"] = df[cols + ["derivation", "notes", "weight", "target"]]

    df = read_inputs("collectives", reference)
    map_chips(df, aliases, keys)
    kinds = [collective_kind(str(c)) for c in df["collective"]]
    df.insert(df.columns.get_loc("collective") + 1, "collective_kind", kinds)
    check_collectives(df)
    df = jd.add_si_columns(df, "collectives")
    out["collectives"] = df[[c for c in df.columns if c != "notes"] + ["notes"]]

    df = read_inputs("kernels", reference)
    map_chips(df, aliases, keys)
    df.insert(
        df.columns.get_loc("kernel") + 1,
        "kernel_kind",
        [
            kernel_kind(str(k), g)
            for k, g in zip(df["kernel"], df["groups"], strict=True)
        ],
    )
    df.insert(df.columns.get_loc("precision") + 1, "precision_kind",
              [precision_kind(p) for p in df["precision"]])
    df = jd.add_si_columns(df, "kernels")
    check_kernel_peaks(df, chips)
    out["kernels"] = df[[c for c in df.columns if c != "notes"] + ["notes"]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=Path(os.environ.get(
        "JAXCOST_REFERENCE_BENCHMARKS", "/work/shared/reference/benchmarks")))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    frames = build(args.reference)
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for kind, df in frames.items():
            staged = Path(tmp) / f"{kind}.csv"
            jd.write_csv_atomic(df, staged)
            jd.load_benchmarks(kind, staged)  # the shipped file must pass the loader
            target = BENCH / f"{kind}.csv"
            if args.check:
                same = target.exists() and target.read_bytes() == staged.read_bytes()
                print(
                    f"{target.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}"
                )
                status |= 0 if same else 1
            else:
                jd.write_csv_atomic(df, target)
                n_key = int(
                    pd.Series(df["chip_key"]).map(lambda x: not _blank(x)).sum()
                )
                print(
                    f"{target.relative_to(ROOT)}: {len(df)} rows, "
                    f"{n_key} with a known chip"
                )
    return status


if __name__ == "__main__":
    sys.exit(main())
