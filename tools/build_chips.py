"""Build ``data/chips.csv`` and ``data/chip_classifications.csv`` from the reference.

Inputs (read-only): ``chips.csv`` and ``chip_sources.csv`` of the reference folder
(default ``../shared/reference`` next to the repository). The output is deterministic:
running the script twice gives byte-identical files.

Conversions (the CSV boundary, see ``data/README.md``):
  * TFLOPS / TOPS x 1e12 -> FLOP/s (op/s), dense;
  * memory GB x 1e9 -> bytes (decimal gigabytes, as vendors quote them);
  * memory TB/s x 1e12 -> bytes/s;
  * scale-up GB/s *bidirectional* -> bytes/s *per direction* = / 2 x 1e9;
  * scale-out NIC Gbit/s -> bytes/s = x 1e9 / 8;
  * 2022-rule I/O GB/s bidirectional -> bytes/s, kept bidirectional (the rule's
    quantity);
  * die area mm^2 x 1e-6 -> m^2.

Usage: ``python tools/build_chips.py [--reference DIR] [--out-dir data]``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import re
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _module(name: str):
    """Import one dependency-free jaxcost module by path (no jax import needed)."""
    spec = importlib.util.spec_from_file_location(f"_build_{name.replace('/', '_')}",
                                                  REPO / "jaxcost" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


units = _module("units")
atomic_write_text = _module("io/atomic").atomic_write_text

# Identifiers, not published numbers: the short key (matching the benchmark files'
# ``chip_key``) and the architecture family used to pool fitted parameters.
KEYS_FAMILIES = {
    "NVIDIA P100 SXM2": ("P100", "pascal"),
    "NVIDIA V100 SXM2 32GB": ("V100", "volta"),
    "NVIDIA A100 SXM 40GB": ("A100-SXM-40GB", "ampere"),
    "NVIDIA A100 SXM 80GB": ("A100-SXM", "ampere"),
    "NVIDIA A800 SXM 80GB": ("A800-SXM", "ampere"),
    "NVIDIA H100 SXM5": ("H100-SXM", "hopper"),
    "NVIDIA H100 PCIe": ("H100-PCIe", "hopper"),
    "NVIDIA H800 SXM5": ("H800-SXM", "hopper"),
    "NVIDIA H20": ("H20", "hopper"),
    "NVIDIA H200 SXM": ("H200", "hopper"),
    "NVIDIA B200 (HGX)": ("B200", "blackwell"),
    "NVIDIA L40S": ("L40S", "ada"),
    "NVIDIA L20": ("L20", "ada"),
    "NVIDIA RTX 4090": ("RTX4090", "ada"),
    "NVIDIA RTX 4090D": ("RTX4090D", "ada"),
    "AMD MI250X": ("MI250X", "cdna"),
    "AMD MI300X": ("MI300X", "cdna"),
    "AMD MI308X": ("MI308X", "cdna"),
    "Intel Gaudi2 (HL-225H)": ("Gaudi2", "gaudi"),
    "Intel Gaudi3 (HL-325L)": ("Gaudi3", "gaudi"),
    "Huawei Ascend 910 (2019)": ("Ascend910A", "ascend"),
    "Huawei Ascend 910B": ("Ascend910B", "ascend"),
    "Huawei Ascend 910C": ("Ascend910C", "ascend"),
    "Cambricon MLU370-X8": ("MLU370-X8", "cambricon"),
    "Cambricon MLU590": ("MLU590", "cambricon"),
    "Hygon DCU Z100 (Shensuan-1)": ("Z100", "hygon"),
    "Hygon DCU K100-AI": ("K100-AI", "hygon"),
    "Biren BR100": ("BR100", "biren"),
    "Google TPU v4": ("TPUv4", "tpu"),
    "Google TPU v5p": ("TPUv5p", "tpu"),
}

# Capabilities that are absent in hardware (value 0, not unknown). Architecture facts:
# FP8 tensor formats arrived with Hopper/Ada (NVIDIA) and CDNA3 (AMD); FP4 with
# Blackwell; TPUs have no FP64 units.
ABSENT = {
    "peak_flop_per_s_fp8": {
        "families": {"pascal", "volta", "ampere"},
        "keys": {"MI250X"},
        "why": "no FP8 format in hardware (pre-Hopper NVIDIA / CDNA2)",
    },
    "peak_flop_per_s_fp4": {
        "families": {"pascal", "volta", "ampere", "hopper", "ada", "cdna"},
        "keys": set(),
        "why": "no FP4 format in hardware (NVIDIA before Blackwell, AMD before CDNA4)",
    },
    "peak_flop_per_s_fp64": {
        "families": {"tpu"},
        "keys": set(),
        "why": "no FP64 units on TPUs",
    },
}

# Reference cells whose classification rests on numbers the reference itself flags as
# uncertain (the class could change if the estimate is wrong).
UNCERTAIN_CHIPS = {
    "MI308X": "compute figures are estimates (TPP designed just under 4800); "
    "if TPP < 2400 it would be uncontrolled",
    "Ascend910A": "applicable die area uncertain (456 vs ~624 vs 1228 mm^2): "
    "3A090.a.2 vs .b.2",
}

REGIME_COLUMNS = [
    ("baseline", None),
    ("2022-10", "cls_oct2022"),
    ("2023-10", "cls_oct2023"),
    ("2024-12", "cls_dec2024_hbm"),
    ("2025-01", "cls_jan2025_diffusion"),
    ("2025-04", "cls_apr2025_h20letter"),
    ("2025-08", "cls_aug2025"),
    ("2026-01", "cls_jan2026_h200rule"),
]

OUT_COLUMNS = [
    "name", "key", "vendor", "family", "year", "process_node", "datacenter",
    "peak_flop_per_s_fp64", "peak_flop_per_s_fp32", "peak_flop_per_s_bf16",
    "peak_flop_per_s_fp8", "peak_op_per_s_int8", "peak_flop_per_s_fp4",
    "hbm_capacity_bytes", "hbm_bytes_per_s", "memory_type", "scaleup_bytes_per_s",
    "scaleup_tech", "scaleup_domain_size", "scaleout_bytes_per_s",
    "io_bidir_bytes_per_s", "die_area_m2", "tdp_w", "price_usd", "estimated_fields",
    "source", "source_locator", "kind", "notes",
]

# reference column -> (output column, factor); None factor = copied as text.
NUMERIC = {
    "fp64_tflops": ("peak_flop_per_s_fp64", units.TERA),
    "fp32_tflops": ("peak_flop_per_s_fp32", units.TERA),
    "bf16_fp16_dense_tflops": ("peak_flop_per_s_bf16", units.TERA),
    "fp8_dense_tflops": ("peak_flop_per_s_fp8", units.TERA),
    "int8_dense_tops": ("peak_op_per_s_int8", units.TERA),
    "fp4_dense_tflops": ("peak_flop_per_s_fp4", units.TERA),
    "memory_gb": ("hbm_capacity_bytes", units.GIGA),
    "memory_bw_tbs": ("hbm_bytes_per_s", units.TERA),
    "scaleup_bidir_gbs": ("scaleup_bytes_per_s", units.GIGA / 2),
    "scaleup_domain": ("scaleup_domain_size", 1.0),
    "scaleout_nic_gbps_per_chip": ("scaleout_bytes_per_s",
                                   units.GIGA / units.BITS_PER_BYTE),
    "io_bidir_gbs_for_2022_test": ("io_bidir_bytes_per_s", units.GIGA),
    "applicable_die_area_mm2": ("die_area_m2", units.MM2),
    "tdp_w": ("tdp_w", 1.0),
    "price_usd": ("price_usd", 1.0),
}
# Where each regime's expected classes come from (the rule text behind the table).
REGIME_SOURCES = {
    "baseline": "no advanced-computing controls (Entity List only)",
    "2022-10": "87 FR 62186 (FR Doc 2022-21658)",
    "2023-10": "88 FR 73458 (FR Doc 2023-23055); 89 FR 23876",
    "2024-12": "89 FR 96790 (FR Doc 2024-28270)",
    "2025-01": "90 FR 4544 (FR Doc 2025-00636)",
    "2025-04": "NVIDIA Form 8-K 2025-04-15; AMD Form 8-K 2025-04-16",
    "2025-08": "press reports 2025-07-14..2025-08-11 (15% revenue share)",
    "2026-01": "91 FR 1684 (FR Doc 2026-00789); Proclamation 2026-01-14 Annex",
}
# Reference columns re-derived by code (never stored: "no derived columns").
DERIVED = {"tpp", "pd", "h100_equiv_tpp"}
CLASS_COLUMNS = {c for _, c in REGIME_COLUMNS if c} | {"cls_prc_side_2025"}
TEXT_KEEP = ["die_area_note", "price_note", "tpp_basis", "classification_caveat",
             "scope_note", "sources"]


def _sci(value: str, factor: float) -> str:
    """``value x factor`` in scientific notation, computed exactly in decimal."""
    d = (Decimal(value) * Decimal(repr(factor))).normalize()
    if d == 0:
        return "0"
    mant, exp = format(d, "e").split("e")
    return f"{mant}e{int(exp)}"


def _resolve_sources(keys_text: str, citations: dict[str, str]) -> str:
    parts = []
    for raw in keys_text.split(";"):
        token = raw.strip()
        if not token:
            continue
        base = re.match(r"[A-Z0-9_]+", token)
        if base and base.group(0) in citations:
            cite = citations[base.group(0)]
            rest = token[len(base.group(0)):].strip()
            parts.append(f"{cite} {rest}".strip())
        else:
            parts.append(token)
    return " | ".join(parts)


def _kind(estimated_fields: str) -> str:
    """``estimated`` when the reference flags the whole row as secondary/estimated."""
    text = estimated_fields.lower()
    if re.search(r"\ball\b", text) or "no official" in text:
        return "estimated"
    return "vendor_spec"


def _expected(text: str, oct2023: str | None) -> tuple[str, str]:
    """Map a reference classification text to (consequence, effects)."""
    t = text.strip()
    effects = ""
    if t.startswith("no change to chip class"):
        return (oct2023 or "", effects)
    if t.startswith("HBM supply constrained"):
        return (oct2023 or "", "hbm_supply_constrained")
    m = re.match(r"Tier3\(PRC\):\s*([^;]*)", t)
    if m:
        t = m.group(1)
    m = re.search(r"as-if class:\s*(.*)$", t)
    if m:
        t = m.group(1)
    low = t.lower()
    for prefix, cons in [
        ("indeterminate", "indeterminate"),
        ("n/a", "not_applicable"),
        ("notify", "notify"),
        ("prohibited", "prohibited"),
        ("license", "license"),
        ("allowed", "allowed"),
    ]:
        if low.startswith(prefix):
            return (cons, effects)
    raise SystemExit(f"cannot map reference classification {text!r}")


def build(reference: Path) -> tuple[str, str]:
    with open(reference / "chip_sources.csv", newline="") as f:
        citations = {r["key"]: r["citation"] for r in csv.DictReader(f)}
    with open(reference / "chips.csv", newline="") as f:
        reader = csv.DictReader(f)
        ref_columns = list(reader.fieldnames or [])
        rows = list(reader)
    if len(rows) != len(KEYS_FAMILIES):
        raise SystemExit(f"expected {len(KEYS_FAMILIES)} chips, found {len(rows)}")

    text_extra = TEXT_KEEP + [
        c for c in ref_columns
        if c not in NUMERIC and c not in DERIVED and c not in CLASS_COLUMNS
        and c not in TEXT_KEEP and c not in OUT_COLUMNS
    ]
    header = OUT_COLUMNS + text_extra
    out_rows = []
    cls_rows = []
    for i, ref in enumerate(rows, start=2):  # line 1 is the header
        name = ref["name"]
        key, family = KEYS_FAMILIES[name]
        row = {c: "" for c in header}
        row.update(name=name, key=key, family=family, vendor=ref["vendor"],
                   year=ref["year"], process_node=ref["process_node"],
                   datacenter=ref["datacenter"], memory_type=ref["memory_type"],
                   scaleup_tech=ref["scaleup_tech"],
                   estimated_fields=ref["estimated_fields"])
        for src, (dst, factor) in NUMERIC.items():
            value = ref[src].strip()
            row[dst] = _sci(value, factor) if value else ""
        notes = []
        for col, spec in ABSENT.items():
            if family in spec["families"] or key in spec["keys"]:
                if row[col] not in ("", "0"):
                    raise SystemExit(f"{name}: {col} marked absent but has a value")
                row[col] = "0"
                notes.append(f"{col}=0: {spec['why']}")
        if ref["scaleup_bidir_gbs"].strip() == "0":
            notes.append(f"scaleup_bytes_per_s=0: no scale-up fabric "
                         f"({ref['scaleup_tech']})")
        row["notes"] = "; ".join(notes)
        for col in text_extra:
            row[col] = ref[col]
        row["source"] = _resolve_sources(ref["sources"], citations)
        row["source_locator"] = (f"reference chips.csv line {i} "
                                 f"(sources: {ref['sources']})")
        row["kind"] = _kind(ref["estimated_fields"])
        out_rows.append(row)

        oct2023, _ = _expected(ref["cls_oct2023"], None)
        for regime_id, col in REGIME_COLUMNS:
            if col is None:
                cons, effects, text = "allowed", "", "baseline: no controls"
                locator = "reference regimes.yaml regime pre_oct2022"
            else:
                text = ref[col]
                cons, effects = _expected(text, oct2023)
                locator = f"reference chips.csv line {i} column {col}"
            reason = ""
            if cons == "indeterminate":
                reason = "reference cannot decide (die area unknown)"
            elif key in UNCERTAIN_CHIPS and regime_id not in ("baseline",):
                reason = UNCERTAIN_CHIPS[key]
            cls_rows.append({
                "chip_key": key, "regime_id": regime_id,
                "expected_consequence": cons, "expected_effects": effects,
                "reference_text": text, "uncertain": "True" if reason else "False",
                "uncertain_reason": reason,
                "source": REGIME_SOURCES[regime_id],
                "source_locator": locator, "kind": "estimated",
                "notes": "expected class transcribed from the reference classification "
                "table (export_controls.md sec. 5)",
            })

    def dump(header_: list[str], rows_: list[dict]) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header_, lineterminator="\n")
        w.writeheader()
        w.writerows(rows_)
        return buf.getvalue()

    cls_header = list(cls_rows[0].keys())
    return dump(header, out_rows), dump(cls_header, cls_rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", type=Path,
                   default=REPO.parent / "shared" / "reference")
    p.add_argument("--out-dir", type=Path, default=REPO / "data")
    args = p.parse_args(argv)
    chips_text, cls_text = build(args.reference)
    atomic_write_text(args.out_dir / "chips.csv", chips_text)
    atomic_write_text(args.out_dir / "chip_classifications.csv", cls_text)
    print(f"wrote {args.out_dir / 'chips.csv'} and "
          f"{args.out_dir / 'chip_classifications.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
