"""The training-run input: its schema and the one reader of a user's runs.

The input of ``jaxcost predict`` / ``validate`` / ``fit`` and
``tools/build_benchmarks.py`` is :data:`RUN_COLUMNS` (a schema of
:class:`jaxcost.io.schema.Column`), read by :func:`read_runs`: a small required core
(the model by name *or* by architecture, the chip by key *or* label, the chip count,
the global batch, the sequence length and a measured value) and optional columns
with stated defaults. Cells are parsed and problems collected by the generic
:func:`jaxcost.io.schema.validate_rows` (rows numbered as everywhere: ``runs.csv row 3
(line 4), column 'chip': ...``); this module adds what is particular to runs.

Published notations (``3.2M tokens``, ``41%``, ``256 routed + 1 shared``,
``2 layers/virtual stage``, ``ZeRO (DP 128)``, ``none at 8K``, ``moe (MLA)``,
``FP8-CS``, ...) are read by :mod:`jaxcost.io.notation` here and nowhere else. Model
names resolve through ``data/models.csv`` and ``data/benchmarks/model_aliases.csv``,
chip labels through ``data/chips.csv`` keys and ``data/benchmarks/chip_aliases.csv``
(normalised: case, separators, vendor names and asides do not matter; a unique prefix
such as ``H800`` resolves; otherwise "did you mean"). A given cell is never
overwritten; every value the reader fills in (from the model table, from another
column, from a framework default of ``data/benchmarks/framework_defaults.csv`` or
from a stated default) is listed in the row's ``fills``.

Pure stdlib; :mod:`jaxcost.io.benchmarks` turns the records into frames.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jaxcost import units
from jaxcost.errors import DataError
from jaxcost.io import notation
from jaxcost.io.paths import data_dir
from jaxcost.io.schema import (
    BLANK,
    Column,
    Problem,
    Table,
    read_csv_rows,
    validate_rows,
)

__all__ = [
    "RUN_COLUMNS",
    "RUN_REQUIRED_CORE",
    "MEASURED_COLUMNS",
    "DEFAULT_VOCAB",
    "DEFAULT_HEAD_DIM",
    "read_runs",
    "chip_tables",
    "model_tables",
    "resolve_chip",
    "resolve_model",
]


# ------------------------------------------------------------------ cell parsers


def _count(text: str) -> int:
    v = notation.parse_count(text)
    if not (float(v).is_integer() and v >= 1):
        raise DataError(f"cannot read '{text}'; expected a whole number >= 1")
    return int(v)


def _binary_count(text: str) -> int:
    """Sequence lengths and vocabularies: ``4K`` = 4,096."""
    v = notation.parse_count(text, binary=True)
    if not (float(v).is_integer() and v >= 1):
        raise DataError(f"cannot read '{text}'; expected a whole number >= 1")
    return int(v)


def _positive(text: str) -> float:
    v = float(notation.parse_count(text))
    if not v > 0:
        raise DataError(f"value '{text}' must be > 0")
    return v


def _text(text: str) -> str:
    return text


def _yes_no(text: str) -> str:
    s = text.strip().lower()
    if s in ("yes", "y", "true", "on", "1", "enabled"):
        return "yes"
    if s in ("no", "n", "false", "off", "0", "disabled", "none"):
        return "no"
    raise DataError(f"cannot read '{text}'; expected yes or no")


def _one_of(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        s = text.strip().lower()
        if s not in allowed:
            raise DataError(
                f"value '{text}' is not allowed; expected one of "
                f"{', '.join(allowed)} or blank"
            )
        return s

    return parse


def _zero(text: str) -> str:
    spec = notation.parse_zero(text)
    return f"ZeRO-{spec.stage}"


def _arch(text: str) -> str:
    return notation.parse_arch(text).kind


def _experts(text: str) -> int:
    return notation.parse_experts(text).routed


def _target(text: str) -> str:
    s = text.strip()
    if s not in MEASURED_COLUMNS:
        raise DataError(
            f"value '{text}' is not a target; expected one of "
            f"{', '.join(MEASURED_COLUMNS)}"
        )
    return s


_DIGITS = re.compile(r"^\s*(19|20)\d\d\s*$")


def _year(text: str) -> int:
    if not _DIGITS.match(text):
        raise DataError(f"cannot read '{text}'; expected a year such as 2022")
    return int(text)


#: Measured columns a training-run row may give, in the order a blank ``target`` is
#: inferred from (the first one given is the target).
MEASURED_COLUMNS = (
    "step_time_s",
    "tokens_per_s_per_chip",
    "mfu",
    "hfu",
    "flop_per_s_per_chip",
)

#: Vocabulary of a row that neither gives one nor names a known model: the GPT-2 BPE
#: (50,257 tokens; GPT-3, arXiv:2005.14165 Sec. 2.1), the vocabulary of most GPT-style
#: benchmark runs. Reported as a fill.
DEFAULT_VOCAB = 50257
#: Head dimension assumed where a row gives the width but not the heads (heads =
#: hidden / 128, the head size of GPT-3 175B, Llama 2/3 and most models since).
#: Reported as a fill.
DEFAULT_HEAD_DIM = 128

#: The training-run input schema. ``required`` marks the core; ``model`` *or* the
#: architecture (layers, hidden, heads), and ``chip_key`` *or* ``chip``, and one
#: measured column (or ``target``) are required too (checked by :func:`read_runs`).
RUN_COLUMNS: tuple[Column, ...] = (
    Column("row_id", _text, doc="row id (default: the data row number)"),
    Column(
        "group", _text, doc="group for grouped cross-validation (default: file name)"
    ),
    Column(
        "model",
        _text,
        doc="model name, resolved through data/models.csv with "
        "normalised aliases ('LLaMA-2-70B' = 'llama2-70b'); or give the "
        "architecture columns",
    ),
    Column(
        "arch_model",
        _text,
        doc="the data/models.csv name whose MLP, embedding "
        "tying and MoE layout apply (default: the resolved model)",
    ),
    Column(
        "arch",
        _arch,
        doc="dense or moe (e.g. 'moe (MLA)'); default: moe when experts > 1",
    ),
    Column("layers", _count, doc="transformer layers L (default: model table)"),
    Column("hidden", _count, doc="model width D (default: model table)"),
    Column(
        "ffn_hidden",
        _count,
        doc="MLP width F, per expert for MoE (default: model table, else 4 D)",
    ),
    Column(
        "heads",
        _count,
        doc="attention heads N (default: model table, else D / 128, reported)",
    ),
    Column("kv_heads", _count, doc="key/value heads (default: model table, else N)"),
    Column("head_dim", _count, doc="head dimension (default: model table, else D / N)"),
    Column(
        "seq_len",
        _binary_count,
        required=True,
        doc="sequence length T, tokens ('4K' = 4,096; default: model table)",
    ),
    Column(
        "vocab",
        _binary_count,
        doc="vocabulary V ('128K' = 131,072; default: model "
        f"table, else {DEFAULT_VOCAB}, reported)",
    ),
    Column(
        "experts",
        _experts,
        doc="routed experts per MoE layer ('256 routed + 1 "
        "shared'; default: model table, else 1 = dense)",
    ),
    Column("topk", _count, doc="experts per token (default: model table, else 1)"),
    Column(
        "chip",
        _text,
        doc="chip label as printed, resolved through "
        "data/benchmarks/chip_aliases.csv and data/chips.csv keys",
    ),
    Column("chip_key", _text, doc="key of data/chips.csv (wins over chip)"),
    Column("n_chips", _count, required=True, doc="chips in the run ('96 x 8' = 768)"),
    Column(
        "scaleout_bytes_per_s",
        _positive,
        doc="NIC bandwidth per chip and direction, bytes/s (default: the chip's)",
    ),
    Column(
        "precision",
        notation.parse_precision,
        default="fp16_bf16",
        doc="GEMM precision: fp32, tf32, bf16/fp16/mixed/amp, any FP8 form "
        "(default bf16)",
    ),
    Column(
        "framework",
        _text,
        doc="training framework as printed; selects framework "
        "defaults for blank recompute / ZeRO / overlap",
    ),
    Column("year", _year, doc="year of the run; selects framework defaults"),
    Column(
        "gbs_seqs",
        _count,
        required=True,
        doc="global batch in sequences ('3072 "
        "-> 15360' reads the final value; default: gbs_tokens / seq_len)",
    ),
    Column("gbs_tokens", _count, doc="global batch in tokens ('3.2M tokens')"),
    Column(
        "mbs",
        _count,
        doc="micro-batch (default: searched when the plan is blank, else 1)",
    ),
    Column("tp", _count, doc="tensor parallel degree ('1 (no TP)')"),
    Column("pp", _count, doc="pipeline parallel degree ('16 (zero-bubble)')"),
    Column(
        "vpp",
        _text,
        doc="virtual stages per pipeline rank ('interleaved (4 "
        "chunks)', '2 layers/virtual stage'; default 1)",
    ),
    Column("dp", _count, doc="data parallel degree (default: n_chips / (tp pp cp))"),
    Column("cp", _count, doc="context parallel degree (default 1)"),
    Column("ep", _count, doc="expert parallel degree (default 1)"),
    Column("sp", _yes_no, doc="sequence parallelism yes/no (default no)"),
    Column(
        "zero_fsdp",
        _zero,
        doc="ZeRO / FSDP ('zero1=8', 'distributed optimizer', "
        "'FSDP (no reshard after forward)'; default: framework, else none)",
    ),
    Column(
        "recompute",
        notation.parse_recompute,
        doc="none / selective / full ('none at 8K', 'activation checkpointing'), or "
        "a module list ('RMSNorm and MLA up-projection', '--recompute-modules "
        "layernorm moe_act': the cheap-module recompute); default: framework, "
        "else none",
    ),
    Column(
        "attention", _one_of("flash", "unfused"), doc="attention kernel (default flash)"
    ),
    Column(
        "ep_dispatcher", _one_of("nccl", "fused"), doc="MoE dispatch (default nccl)"
    ),
    Column(
        "tp_comm_overlap",
        _yes_no,
        doc="TP communication overlapped (default: framework, else no)",
    ),
    Column(
        "dp_comm_overlap",
        _yes_no,
        doc="DP gradient reduction overlapped (default: framework, else no)",
    ),
    Column(
        "pp_layout",
        _one_of("uniform", "balanced"),
        doc="layers over stages (default uniform)",
    ),
    Column("step_time_s", _positive, doc="measured step time, s"),
    Column("tokens_per_s_per_chip", _positive, doc="measured tokens/s per chip"),
    Column(
        "tflops_per_chip",
        _positive,
        doc="achieved model TFLOP/s per chip (-> flop_per_s_per_chip)",
    ),
    Column("flop_per_s_per_chip", _positive, doc="achieved model FLOP/s per chip"),
    Column(
        "mfu", notation.parse_fraction, doc="model FLOPs utilisation ('41%', '0.41')"
    ),
    Column("hfu", notation.parse_fraction, doc="hardware FLOPs utilisation"),
    Column(
        "mfu_peak_flop_per_s",
        _positive,
        doc="the peak the source divided by, "
        "FLOP/s (default: the chip's peak at the run's precision)",
    ),
    Column(
        "target",
        _target,
        doc="which measured column to fit (default: the first "
        "given of " + ", ".join(MEASURED_COLUMNS) + ")",
    ),
    Column("weight", _positive, default=1.0, doc="fit weight (default 1)"),
)

#: The required core, as the documentation states it.
RUN_REQUIRED_CORE = (
    "model or (layers, hidden, heads)",
    "chip_key or chip",
    "n_chips",
    "gbs_seqs or gbs_tokens",
    "seq_len",
    "a measured value (" + " / ".join(MEASURED_COLUMNS) + ", tflops_per_chip)",
)

#: columns of a training run <- data/models.csv columns
_MODEL_FILLS = (
    ("layers", "num_layers"),
    ("hidden", "d_model"),
    ("heads", "num_heads"),
    ("kv_heads", "num_kv_heads"),
    ("head_dim", "head_dim"),
    ("vocab", "vocab_size"),
    ("seq_len", "seq_len"),
)


# ------------------------------------------------------------------ lookup tables


def _csv_dicts(path: Path) -> list[dict[str, str]]:
    _, rows, _ = read_csv_rows(path)
    return rows


def model_tables(root: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(label -> models.csv name, name -> models.csv row) of the data folder ``root``
    (``models.csv`` and ``benchmarks/model_aliases.csv``)."""
    models = {
        r["name"].strip(): r
        for r in _csv_dicts(root / "models.csv")
        if r.get("name", "").strip()
    }
    labels = {name: name for name in models}
    alias_path = root / "benchmarks" / "model_aliases.csv"
    if alias_path.exists():
        for r in _csv_dicts(alias_path):
            name = r.get("model_name", "").strip()
            if name in models:
                labels[r["model_label"].strip()] = name
    return labels, models


def chip_tables(root: Path) -> tuple[dict[str, str], set[str]]:
    """(label -> chip key, keys of chips.csv) of the data folder ``root``
    (``chips.csv`` and ``benchmarks/chip_aliases.csv``)."""
    keys = {
        r["key"].strip()
        for r in _csv_dicts(root / "chips.csv")
        if r.get("key", "").strip()
    }
    labels = {k: k for k in keys}
    alias_path = root / "benchmarks" / "chip_aliases.csv"
    if alias_path.exists():
        for r in _csv_dicts(alias_path):
            key = r.get("chip_key", "").strip()
            if key:
                labels[r["chip_label"].strip()] = key
    return labels, keys


def _framework_rules(root: Path) -> list[dict[str, str]]:
    path = root / "benchmarks" / "framework_defaults.csv"
    return _csv_dicts(path) if path.exists() else []


def resolve_model(text: str, labels: Mapping[str, str]) -> str:
    """The ``data/models.csv`` name a printed model name maps to.

    :func:`notation.resolve_label` over the names of ``data/models.csv`` and the
    labels of ``data/benchmarks/model_aliases.csv``: exact, then normalised (case,
    separators, vendor names and parenthesised asides do not matter).

    Raises:
      DataError: unknown or ambiguous; the message suggests close names.
    """
    return notation.resolve_label(text, dict(labels), what="model")


def _memory_gb(text: str) -> str | None:
    m = re.search(r"(\d+)\s*g(?:b|ib)?\b", text, flags=re.IGNORECASE)
    return m.group(1) if m else None


def resolve_chip(
    text: str, labels: Mapping[str, str], keys: set[str]
) -> tuple[str, str]:
    """The ``data/chips.csv`` key a printed chip label maps to, and how.

    :func:`notation.resolve_label` first (exact label, key, normalised label);
    otherwise the label without its memory size (``h100_80gb`` -> ``h100``) as a
    prefix of the normalised keys and unqualified labels: one key resolves
    (``H800`` -> ``H800-SXM``); among several, keys of another memory size are
    dropped and a single SXM part is taken (the form factor of multi-node training
    clusters, as ``data/benchmarks/chip_aliases.csv`` assumes), which the second
    element reports.

    Returns:
      (key, note): note is "" for a table hit, else how the label was read.

    Raises:
      DataError: unknown, ambiguous, or a label of a chip not in ``data/chips.csv``;
        the message suggests close labels.
    """
    try:
        key = notation.resolve_label(text, dict(labels), what="chip")
    except DataError as first:
        memory = _memory_gb(text)
        bare = re.sub(r"[\s_-]*\d+\s*g(?:b|ib)?\b", " ", text, flags=re.IGNORECASE)
        norm = notation.normalise_label(bare)
        hits: set[str] = set()
        if len(norm) >= 3:
            for label, k in labels.items():
                plain = not re.search(r"[(\[]", label)
                full = notation.normalise_label(label)
                cut = full[len(norm) : len(norm) + 1]
                word = not (norm[-1].isdigit() and cut.isdigit())
                if k in keys and plain and full.startswith(norm) and word:
                    hits.add(k)
        if memory and len(hits) > 1:
            hits = {k for k in hits if _memory_gb(k) in (None, memory)}
        note = f"chip '{text}' read as the unique match"
        if len(hits) > 1:
            sxm = {k for k in hits if "sxm" in k.lower()}
            if len(sxm) == 1:
                hits = sxm
                note = (
                    f"chip '{text}': form factor not stated, SXM assumed "
                    "(multi-node training clusters)"
                )
        if len(hits) == 1:
            return next(iter(hits)), note
        if hits:
            raise DataError(
                f"chip '{text}' is ambiguous: it could be "
                f"{', '.join(sorted(hits))}; expected a chip key"
            ) from None
        raise first from None
    if key not in keys:
        raise DataError(
            f"chip '{text}' maps to '{key}', which is not in "
            "data/chips.csv; expected a chip of the database"
        )
    return key, ""


# ------------------------------------------------------------------ training runs


def _matches(rule: Mapping[str, str], framework: str | None, year: int | None) -> bool:
    pattern = rule.get("framework_pattern", "").strip()
    if not pattern or framework is None:
        return False
    if not re.search(pattern, framework, flags=re.IGNORECASE):
        return False
    lo, hi = rule.get("year_min", "").strip(), rule.get("year_max", "").strip()
    if (lo or hi) and year is None:  # a rule limited to some years needs the year
        return False
    if lo and year < int(lo):
        return False
    return not (hi and year > int(hi))


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _check_row(
    v: dict[str, Any],
    fills: list[str],
    probs: list[Problem],
    raw: Mapping[str, str],
    where: tuple[str, int, int],
    *,
    model_labels,
    models,
    chip_labels,
    chip_keys,
    rules,
    require_measured: bool,
) -> None:
    """Resolve, fill and cross-check one parsed training run in place."""
    file, row, line = where

    def problem(column: str | None, message: str) -> None:
        probs.append(Problem(file, row, column, message, line))

    def fill(column: str, value: Any, reason: str) -> None:
        v[column] = value
        fills.append(f"{column}={_fmt(value)} ({reason})")

    bad = {p.column for p in probs}
    # ---- model: by name or by architecture
    name = None
    if v.get("arch_model"):
        try:
            name = resolve_model(v["arch_model"], model_labels)
        except DataError as e:
            problem("arch_model", e.detail)
    elif v.get("model"):
        try:
            name = resolve_model(v["model"], model_labels)
            fill("arch_model", name, f"model '{v['model']}' in data/models.csv")
        except DataError as e:
            if any(v.get(c) is None and c not in bad for c in ("layers", "hidden")):
                problem("model", e.detail + "; or give layers, hidden and heads")
    if name is not None:
        m = models[name]
        moe = float(m.get("num_experts") or 1) > 1
        pairs = list(_MODEL_FILLS) + [("ffn_hidden", "moe_d_ff" if moe else "d_ff")]
        if moe:
            pairs += [("experts", "num_experts"), ("topk", "top_k")]
        for col, src in pairs:
            if v.get(col) is None and col not in bad and m.get(src, "").strip():
                fill(col, int(float(m[src])), f"data/models.csv {name}")
    for col in ("layers", "hidden"):
        if (
            v.get(col) is None
            and col not in bad
            and not any(p.column == "model" for p in probs)
        ):
            problem(
                col,
                "blank; expected the architecture or a model of "
                "data/models.csv in 'model'",
            )
    if v.get("heads") is None and "heads" not in bad and v.get("hidden"):
        if v["hidden"] % DEFAULT_HEAD_DIM == 0:
            fill(
                "heads",
                v["hidden"] // DEFAULT_HEAD_DIM,
                f"hidden / {DEFAULT_HEAD_DIM}: default head size",
            )
        else:
            problem("heads", "blank; expected the number of attention heads")
    if v.get("vocab") is None and "vocab" not in bad:
        fill("vocab", DEFAULT_VOCAB, "default: GPT-2 BPE")
    if v.get("arch") is None and (v.get("experts") or 1) > 1:
        v["arch"] = "moe"
    if v.get("arch") == "moe" and (v.get("experts") or 1) <= 1 and "experts" not in bad:
        problem("experts", "blank for an MoE run; expected the routed experts")
    # ---- chip: by key or label
    if v.get("chip_key"):
        try:
            key, _ = resolve_chip(v["chip_key"], {k: k for k in chip_keys}, chip_keys)
            if key != v["chip_key"]:
                problem(
                    "chip_key",
                    f"'{v['chip_key']}' is not a key of "
                    f"data/chips.csv; did you mean '{key}'?",
                )
        except DataError as e:
            problem("chip_key", e.detail)
    elif v.get("chip"):
        try:
            key, how = resolve_chip(v["chip"], chip_labels, chip_keys)
            fill("chip_key", key, how or f"chip '{v['chip']}'")
        except DataError as e:
            problem("chip", e.detail)
    else:
        problem(
            "chip_key",
            "blank; expected a chip key of data/chips.csv or a chip label in 'chip'",
        )
    # ---- batch
    if v.get("gbs_seqs") is None and "gbs_seqs" not in bad:
        tokens, seq = v.get("gbs_tokens"), v.get("seq_len")
        text = str(raw.get("gbs_tokens", "")).strip()
        if tokens and seq:
            seqs = tokens / seq
            binary = notation.parse_count(text, binary=True) / seq if text else seqs
            if seqs.is_integer():
                fill("gbs_seqs", int(seqs), "gbs_tokens / seq_len")
            elif float(binary).is_integer():
                fill(
                    "gbs_seqs",
                    int(binary),
                    f"gbs_tokens '{text}' read as binary (2^20 per M) / seq_len",
                )
            else:
                fill("gbs_seqs", max(1, round(seqs)), "gbs_tokens / seq_len, rounded")
        elif name is not None and models[name].get("global_batch_seqs", "").strip():
            batch = int(float(models[name]["global_batch_seqs"]))
            fill("gbs_seqs", batch, f"data/models.csv {name}: the published batch")
        else:
            problem(
                "gbs_seqs",
                "blank; expected the global batch in sequences "
                "(gbs_seqs) or tokens (gbs_tokens)",
            )
    if v.get("seq_len") is None and "seq_len" not in bad:
        problem("seq_len", "blank; expected the sequence length")
    # ---- plan
    if v.get("vpp") is not None:
        try:
            v["vpp"] = notation.parse_vpp(
                v["vpp"], layers=v.get("layers"), pp=v.get("pp")
            )
        except DataError as e:
            problem("vpp", e.detail)
            v["vpp"] = None
    if v.get("dp") is None and v.get("tp") and v.get("pp") and v.get("n_chips"):
        rest = v["n_chips"] / (v["tp"] * v["pp"] * (v.get("cp") or 1))
        if rest.is_integer() and rest >= 1:
            fill("dp", int(rest), "n_chips / (tp pp cp)")
    if all(v.get(c) for c in ("tp", "pp", "dp", "n_chips")):
        prod = v["tp"] * v["pp"] * v["dp"] * (v.get("cp") or 1)
        if prod != v["n_chips"]:
            problem(
                "dp",
                f"tp*pp*dp*cp = {prod} but n_chips = {v['n_chips']}; "
                "expected the product of the degrees to equal the chip count",
            )
    # ---- framework defaults for blank software settings
    for rule in rules:
        col = rule.get("column", "").strip()
        if (
            col
            and v.get(col) is None
            and _matches(rule, v.get("framework"), v.get("year"))
        ):
            val = rule["value"].strip()
            if col == "recompute":
                val = notation.parse_recompute(val)
            elif col == "zero_fsdp":
                val = _zero(val)
            fill(
                col,
                val,
                f"framework default for '{rule['framework_pattern']}' "
                "in data/benchmarks/framework_defaults.csv",
            )
    # ---- measured value
    if v.get("tflops_per_chip") is not None and v.get("flop_per_s_per_chip") is None:
        v["flop_per_s_per_chip"] = v["tflops_per_chip"] * units.TERA
    if v.get("target") is None:
        given_m = [c for c in MEASURED_COLUMNS if v.get(c) is not None]
        if given_m:
            v["target"] = given_m[0]
        elif require_measured and not any(c in bad for c in MEASURED_COLUMNS):
            problem(
                "target",
                "no measured value; expected one of "
                + ", ".join(MEASURED_COLUMNS)
                + " or tflops_per_chip",
            )
    elif v.get(v["target"]) is None and v["target"] not in bad:
        problem(
            v["target"],
            f"blank, but target names it; expected a value in '{v['target']}'",
        )


def read_runs(
    path: str | Path,
    *,
    require_measured: bool = True,
    data_root: str | Path | None = None,
) -> Table:
    """Read and validate a training-run CSV of :data:`RUN_COLUMNS`, every row at once.

    Every cell is parsed (published notations through :mod:`jaxcost.io.notation`);
    the model and chip are resolved; blank cells are filled from the model table,
    from other columns, from framework defaults and from stated defaults (each fill
    listed in ``Table.fills``; a given cell is never overwritten); and the plan is
    checked against the chip count. Columns not in the schema are kept in
    ``Table.raw``.

    Args:
      path: the CSV.
      require_measured: a row must give a measured value (``fit``, ``validate``);
        ``predict`` passes False.
      data_root: folder with ``models.csv``, ``chips.csv`` and ``benchmarks/``
        (default: the shipped ``data/``).

    Returns:
      A :class:`Table`; a row with problems is kept with them.

    Raises:
      DataError: the file cannot be read or has no data row (problems of rows are
        not raised).
    """
    file = str(path)
    root = Path(data_root) if data_root is not None else data_dir()
    header, rows, lines = read_csv_rows(path)
    if not rows:
        raise DataError(
            "no data rows; expected at least one run under the header", file=file
        )
    model_labels, models = model_tables(root)
    chip_labels, chip_keys = chip_tables(root)
    rules = _framework_rules(root)
    # required cells are checked after the fills (model table, gbs_tokens)
    values, problems = validate_rows(
        rows, RUN_COLUMNS, file=file, lines=lines, check_required=False
    )
    all_fills: list[tuple[str, ...]] = []
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        fills: list[str] = []
        probs = problems[i]
        _check_row(
            v,
            fills,
            probs,
            rows[i],
            (file, i + 1, lines[i]),
            model_labels=model_labels,
            models=models,
            chip_labels=chip_labels,
            chip_keys=chip_keys,
            rules=rules,
            require_measured=require_measured,
        )
        for col in RUN_COLUMNS:
            if (
                col.required
                and v.get(col.name) is None
                and not any(p.column == col.name for p in probs)
            ):
                probs.append(Problem(file, i + 1, col.name, BLANK, lines[i]))
        if v.get("group") is None:
            v["group"] = Path(file).stem
        rid = v.get("row_id")
        if rid is not None:
            if rid in seen:
                probs.append(
                    Problem(
                        file,
                        i + 1,
                        "row_id",
                        f"duplicated row_id "
                        f"'{rid}' (first at row {seen[rid]}); expected "
                        "unique row ids",
                        lines[i],
                    )
                )
            seen.setdefault(rid, i + 1)
        all_fills.append(tuple(fills))
    return Table(
        file=file,
        header=header,
        raw=tuple(dict(r) for r in rows),
        values=tuple(values),
        problems=tuple(tuple(p) for p in problems),
        fills=tuple(all_fills),
        lines=tuple(lines),
    )
