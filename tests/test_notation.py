"""Published training-run notation -> schema values (jaxcost.io.notation).

The unit cases are the notations users type from papers; the last tests read every
notation-bearing cell of tests/data/published_runs_raw.csv (57 runs typed from
papers, vendor tables and framework docs in their own notation).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from jaxcost.errors import DataError
from jaxcost.io.notation import (
    PRECISION_KINDS,
    Arch,
    Experts,
    ZeroSpec,
    normalise_label,
    parse_arch,
    parse_count,
    parse_experts,
    parse_fraction,
    parse_precision,
    parse_recompute,
    parse_vpp,
    parse_zero,
    resolve_label,
)

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "tests" / "data" / "published_runs_raw.csv"


# ------------------------------------------------------------------ unit cases


@pytest.mark.parametrize(
    "text, binary, expected",
    [
        ("2048", False, 2048),
        ("2,048", False, 2048),
        ("16_384", False, 16384),
        ("16k", False, 16_000),
        ("16K", False, 16_000),
        ("16K", True, 16_384),
        ("8K", True, 8192),
        ("128K", True, 131_072),
        ("3.2M tokens", False, 3_200_000),
        ("16M", False, 16_000_000),
        ("96 × 8", False, 768),
        ("32 x 8", False, 256),
        ("3072 → 15360", False, 15360),
        ("2304 -> 9216", False, 9216),
        ("up to 147", False, 147),
        ("~380", False, 380),
        ("1 (no TP)", False, 1),
        ("64 (8 nodes)", False, 64),
        ("1,607.5", False, 1607.5),
        ("27.634", False, 27.634),
        ("992 GPUs", False, 992),
        (4096, False, 4096),
        (1.5, False, 1.5),
    ],
)
def test_parse_count(text, binary, expected):
    got = parse_count(text, binary=binary)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("41%", 0.41),
        ("0.41", 0.41),
        ("41", 0.41),
        ("42.57", 0.4257),
        ("63.5%(1.27×)", 0.635),
        ("55.2% (1.34×)", 0.552),
        ("1", 1.0),
        ("100%", 1.0),
    ],
)
def test_parse_fraction(text, expected):
    assert parse_fraction(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("256 routed + 1 shared", Experts(256, 1)),
        ("1 shared + 64 routed", Experts(64, 1)),
        ("2 shared + 160 routed", Experts(160, 2)),
        ("64", Experts(64, 0)),
        ("8 experts", Experts(8, 0)),
        ("256 routed experts + 1 shared expert", Experts(256, 1)),
        ("1,024 routed", Experts(1024, 0)),
    ],
)
def test_parse_experts(text, expected):
    got = parse_experts(text)
    assert got == expected
    assert got.total == expected.routed + expected.shared


@pytest.mark.parametrize(
    "text, layers, pp, expected",
    [
        ("4", None, None, 4),
        ("vpp 4", None, None, 4),
        ("VP=6", None, None, 6),
        ("INTERLEAVED_PIPELINE=8", None, None, 8),
        ("interleaved (4 chunks)", None, None, 4),
        ("6 interleaving stages", None, None, 6),
        ("none", None, None, 1),
        ("2 layers/virtual stage", 96, 8, 6),
        ("1 layer per virtual stage", 96, 8, 12),
    ],
)
def test_parse_vpp(text, layers, pp, expected):
    assert parse_vpp(text, layers=layers, pp=pp) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ZeRO (DP 128)", ZeroSpec(1, 128)),
        ("ZeRO-1", ZeroSpec(1)),
        ("ZeRO stage 2", ZeroSpec(2)),
        ("ZeRO-3", ZeroSpec(3)),
        ("ZeRO-DP O3", ZeroSpec(3)),
        ("zero1=8", ZeroSpec(1, 8)),
        ("zero1=-1 (all DP ranks)", ZeroSpec(1)),
        ("zero1=8 (within 8 GPUs)", ZeroSpec(1, 8)),
        ("distributed optimizer", ZeroSpec(1)),
        ("ZeRO-1 (distributed optimizer)", ZeroSpec(1)),
        ("FSDP", ZeroSpec(3)),
        ("FSDP2", ZeroSpec(3)),
        ("FSDP on", ZeroSpec(3)),
        ("FULL_SHARD", ZeroSpec(3)),
        ("SHARD_GRAD_OP", ZeroSpec(2)),
        ("FSDP (no reshard after forward)", ZeroSpec(2)),
        ("HSDP (8)", ZeroSpec(3, 8)),
        ("none", ZeroSpec(0)),
        ("DDP", ZeroSpec(0)),
    ],
)
def test_parse_zero(text, expected):
    assert parse_zero(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("none at 8K", "none"),
        ("no", "none"),
        ("none", "none"),
        ("False", "none"),
        ("checkpoint=False", "none"),
        ("norm, act", "modules"),
        ("RMSNorm and MLA up-projection", "modules"),
        ("selective (moe_act, layernorm: --recompute-modules moe_act layernorm)",
         "modules"),
        ("--recompute-modules core_attn moe_act layernorm", "selective+modules"),
        ("selective", "selective"),
        ("selective op", "selective"),
        ("selective layer", "selective"),
        ("partial (a portion of the operators is recomputed)", "selective"),
        ("selective (saves expensive activations)", "selective"),
        ("full", "full"),
        ("True", "full"),
        ("Activation Ckpt TRUE", "full"),
        ("activation checkpointing", "full"),
        ("activation recomputation", "full"),
        ("re-materialization", "full"),
        ("selective (whole MoE block and layernorm: --recompute-modules moe layernorm)",
         "full"),
    ],
)
def test_parse_recompute(text, expected):
    assert parse_recompute(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("fp32", "fp32"),
        ("tf32", "tf32"),
        ("mixed (fp16)", "fp16_bf16"),
        ("BF16", "fp16_bf16"),
        ("bf16 (BF16 optimizer, fp32 grad accumulation)", "fp16_bf16"),
        ("amp_bf16", "fp16_bf16"),
        ("amp", "fp16_bf16"),
        ("FP8-CS", "fp8"),
        ("FP8-MX", "fp8"),
        ("FP8 blockwise", "fp8"),
        ("fp8 (E4M3)", "fp8"),
        ("amp_fp8", "fp8"),
        ("bf16+fp8", "fp8"),
    ],
)
def test_parse_precision(text, expected):
    assert parse_precision(text) == expected
    assert parse_precision(text) in PRECISION_KINDS


@pytest.mark.parametrize(
    "text, expected",
    [
        ("moe (MLA)", Arch("moe", "mla")),
        ("MoE", Arch("moe", None)),
        ("dense", Arch("dense", None)),
        ("dense (GQA, 8 KV heads)", Arch("dense", "gqa")),
        ("dense, MQA", Arch("dense", "gqa")),
        ("Mixture-of-Experts", Arch("moe", None)),
    ],
)
def test_parse_arch(text, expected):
    assert parse_arch(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("H100-SXM-80GB (DGX H100, Eos)", "h100sxm80gb"),
        ("h100 sxm 80gb", "h100sxm80gb"),
        ("NVIDIA A100 40GB", "a10040gb"),
        ("A100 40G", "a10040gb"),
        ("LLaMA-2-70B", "llama270b"),
    ],
)
def test_normalise_label(text, expected):
    assert normalise_label(text) == expected


TABLE = {
    "H100-SXM-80GB": "H100-SXM",
    "A100-80GB": "A100-SXM",
    "A100-80GB (row label; README lists A800)": "A800-SXM",
    "A800 (x)": "A800-SXM",
    "A800 (y)": "A800-PCIe",
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("H100-SXM-80GB", "H100-SXM"),
        ("H100-SXM-80GB (Azure ND H100 v5)", "H100-SXM"),
        ("h100 sxm 80GB", "H100-SXM"),
        ("H100-SXM", "H100-SXM"),  # a key of the table
        ("A100 80GB (Selene)", "A100-SXM"),  # a plain label wins over qualified ones
    ],
)
def test_resolve_label(text, expected):
    assert resolve_label(text, TABLE, what="chip") == expected


# ------------------------------------------------------------------ bad cells


@pytest.mark.parametrize(
    "func, text, expected_phrase",
    [
        (parse_count, "lots", "cannot read 'lots'; expected a count"),
        (parse_count, "", "empty cell; expected a count"),
        (parse_count, -3, "expected a count"),
        (parse_fraction, "150%", "above 100%"),
        (parse_fraction, "high", "expected a fraction"),
        (parse_experts, "top-2", "expected experts such as"),
        (parse_experts, "1 shared", "no routed experts"),
        (parse_experts, "8 routed + 8 routed", "repeats 'routed'"),
        (parse_vpp, "interleaved", "expected virtual stages such as"),
        (parse_vpp, "2 layers/virtual stage", "expected layers and pp"),
        (parse_zero, "sharded", "is not a ZeRO stage"),
        (parse_recompute, "sometimes",
         "expected recompute: none, selective, full or a list of modules"),
        (parse_precision, "NVFP4", "FP4"),
        (parse_precision, "int8", "is not a precision"),
        (parse_arch, "transformer", "expected dense or moe"),
    ],
)
def test_bad_cells_raise_dataerror_naming_expectation(func, text, expected_phrase):
    with pytest.raises(DataError, match=expected_phrase) as info:
        func(text)
    assert "\n" not in str(info.value)


def test_vpp_layers_per_stage_must_divide():
    with pytest.raises(DataError, match="does not divide 94 layers"):
        parse_vpp("2 layers/virtual stage", layers=94, pp=8)


def test_resolve_label_suggests_close_labels():
    with pytest.raises(DataError, match=r"unknown chip 'H100 SXM5 80G'; did you mean"):
        resolve_label("H100 SXM5 80G", TABLE, what="chip")


def test_resolve_label_ambiguous():
    with pytest.raises(DataError, match="ambiguous: it could be A800-PCIe, A800-SXM"):
        resolve_label("A800 (z)", TABLE, what="chip")


def test_error_gains_file_row_column():
    with pytest.raises(DataError) as info:
        parse_fraction("lots")
    located = DataError(info.value.detail, file="runs.csv", row=3, column="mfu")
    assert str(located).startswith(
        "runs.csv row 3 (line 4), column 'mfu': cannot read 'lots'")


# ------------------------------------------------------------------ the raw CSV

COUNT_COLUMNS = ("layers", "hidden", "ffn_hidden", "heads", "kv_heads", "topk",
                 "n_chips", "gbs_seqs", "gbs_tokens", "mbs", "tp", "pp", "dp", "cp",
                 "ep")
BINARY_COLUMNS = ("seq_len", "vocab")  # '4K' / '128K' are powers of two
MEASURED = ("step_time_s", "tokens_per_s_per_chip", "tflops_per_chip", "mfu")

# Labels the alias tables cannot resolve, with the reason. A model label need not
# resolve where the row prints its own dimensions (layers and hidden).
# (resolve_label alone; jaxcost.io.schema.resolve_chip reads these two by their
# unique prefix once the memory size is dropped, SXM assumed for h100_80gb)
UNRESOLVED_CHIPS = {
    "h100_80gb": "llm-foundry label: H100 80GB form factor (SXM/PCIe) not stated",
    "80GB A100": "OPT word order (memory first); needs a chip_aliases.csv row",
}
UNRESOLVED_MODELS = {
    "PaLM 540B": "MFU-only row; PaLM is not in data/models.csv",
}
# Printed plans whose degrees do not multiply to the chip count.
PLAN_EXCEPTIONS = {
    "P003": "Llama 3 Table 4 prints DP 4 for the 128K stage; TPxCPxPPxDP = 8,192",
}


def _raw_rows() -> list[dict[str, str]]:
    with RAW.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _table(path: Path, label: str, key: str) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as f:
        return {r[label]: r[key] for r in csv.DictReader(f) if r[key]}


def _parse_row(r: dict[str, str]) -> dict[str, object]:
    """Every non-blank notation-bearing cell of one row, parsed."""
    out: dict[str, object] = {}
    for col in COUNT_COLUMNS:
        if r[col]:
            out[col] = parse_count(r[col])
    for col in BINARY_COLUMNS:
        if r[col]:
            out[col] = parse_count(r[col], binary=True)
    for col in ("step_time_s", "tokens_per_s_per_chip", "tflops_per_chip"):
        if r[col]:
            out[col] = parse_count(r[col])
    if r["mfu"]:
        out["mfu"] = parse_fraction(r["mfu"])
    if r["experts"]:
        out["experts"] = parse_experts(r["experts"])
    if r["vpp"]:
        out["vpp"] = parse_vpp(r["vpp"], layers=out.get("layers"), pp=out.get("pp"))
    if r["zero_fsdp"]:
        out["zero_fsdp"] = parse_zero(r["zero_fsdp"])
    if r["recompute"]:
        out["recompute"] = parse_recompute(r["recompute"])
    if r["precision"]:
        out["precision"] = parse_precision(r["precision"])
    if r["arch"]:
        out["arch"] = parse_arch(r["arch"])
    return out


def test_raw_csv_shape():
    rows = _raw_rows()
    assert len(rows) >= 35
    assert len({r["row_id"] for r in rows}) == len(rows)
    assert len({r["group"] for r in rows}) >= 15
    for r in rows:
        assert r["source_url"].startswith("https://"), r["row_id"]
        assert r["source_locator"], r["row_id"]
        measured = [c for c in MEASURED if r[c]]
        assert len(measured) == 1, (r["row_id"], measured)
        assert r["sp"] in ("", "yes", "no"), r["row_id"]


@pytest.mark.parametrize("row", _raw_rows(), ids=lambda r: r["row_id"])
def test_raw_csv_every_notation_cell_parses(row):
    try:
        parsed = _parse_row(row)
    except DataError as err:
        raise AssertionError(f"{RAW.name}, {row['row_id']}: {err}") from err
    if "mfu" in parsed:
        assert 0.0 < parsed["mfu"] <= 1.0
    if "experts" in parsed:
        assert parsed["arch"].kind == "moe"
    degrees = [parsed.get(c) for c in ("tp", "pp", "dp", "n_chips")]
    if all(d is not None for d in degrees) and row["row_id"] not in PLAN_EXCEPTIONS:
        tp, pp, dp, n = degrees
        assert tp * pp * dp * parsed.get("cp", 1) == n, row["row_id"]


def test_raw_csv_labels_resolve_or_are_documented():
    chips = _table(ROOT / "data/benchmarks/chip_aliases.csv", "chip_label", "chip_key")
    chips |= _table(ROOT / "data/chips.csv", "name", "key")
    models = _table(ROOT / "data/benchmarks/model_aliases.csv", "model_label",
                    "model_name")
    models |= _table(ROOT / "data/models.csv", "name", "name")
    unexplained = []
    for r in _raw_rows():
        try:
            resolve_label(r["chip"], chips, what="chip")
        except DataError:
            if r["chip"] not in UNRESOLVED_CHIPS:
                unexplained.append((r["row_id"], "chip", r["chip"]))
        try:
            resolve_label(r["model"], models, what="model")
        except DataError:
            inline = r["layers"] and r["hidden"]
            if not inline and r["model"] not in UNRESOLVED_MODELS:
                unexplained.append((r["row_id"], "model", r["model"]))
    assert not unexplained
    for label in UNRESOLVED_CHIPS:  # documented failures still fail (no stale list)
        with pytest.raises(DataError):
            resolve_label(label, chips, what="chip")
