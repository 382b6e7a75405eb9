"""``jaxcost chips`` and ``jaxcost classify``: the chip table and the export-control
matrix."""

from __future__ import annotations

import argparse
import sys

from jaxcost import units
from jaxcost.cli.common import csv_text, fmt, sci, text_table
from jaxcost.errors import RegimeError
from jaxcost.io.atomic import atomic_write_text
from jaxcost.model.hardware import load_chips
from jaxcost.policy.export_control import (
    classify,
    load_regimes,
    performance_density,
    tpp,
)

__all__ = ["cmd_chips", "cmd_classify"]

_CHIP_SI_FIELDS = [
    "peak_flop_per_s_fp64",
    "peak_flop_per_s_fp32",
    "peak_flop_per_s_bf16",
    "peak_flop_per_s_fp8",
    "peak_op_per_s_int8",
    "peak_flop_per_s_fp4",
    "hbm_capacity_bytes",
    "hbm_bytes_per_s",
    "scaleup_bytes_per_s",
    "scaleup_domain_size",
    "scaleout_bytes_per_s",
    "io_bidir_bytes_per_s",
    "die_area_m2",
    "tdp_w",
    "price_usd",
    "year",
]


def cmd_chips(args: argparse.Namespace) -> int:
    """``jaxcost chips``: the chip table in human units, with TPP and PD."""
    chips = load_chips(args.chips)
    rows, si_rows = [], []
    for chip in chips.values():
        t, p = float(tpp(chip)), float(performance_density(chip))
        rows.append(
            [
                chip.key,
                chip.vendor,
                chip.family,
                fmt(float(chip.year), digits=4),
                fmt(float(chip.peak_flop_per_s_bf16), units.TERA),
                fmt(float(chip.peak_flop_per_s_fp8), units.TERA),
                fmt(float(chip.hbm_capacity_bytes), units.GIGA),
                fmt(float(chip.hbm_bytes_per_s), units.TERA),
                fmt(float(chip.scaleup_bytes_per_s), units.GIGA),
                fmt(float(chip.scaleout_bytes_per_s), units.GIGA),
                fmt(float(chip.tdp_w)),
                fmt(float(chip.price_usd), digits=5),
                fmt(t, digits=5),
                fmt(p),
            ]
        )
        si_rows.append(
            [
                chip.key,
                chip.name,
                chip.vendor,
                chip.family,
                str(chip.datacenter),
                chip.memory_type,
            ]
            + [sci(float(getattr(chip, f))) for f in _CHIP_SI_FIELDS]
            + [sci(t), sci(p)]
        )
    header = [
        "key",
        "vendor",
        "family",
        "year",
        "bf16_TFLOP/s",
        "fp8_TFLOP/s",
        "HBM_GB",
        "HBM_TB/s",
        "scaleup_GB/s/dir",
        "scaleout_GB/s/dir",
        "TDP_W",
        "price_USD",
        "TPP",
        "PD",
    ]
    if args.out:
        si_header = (
            ["key", "name", "vendor", "family", "datacenter", "memory_type"]
            + _CHIP_SI_FIELDS
            + ["tpp", "performance_density_per_mm2"]
        )
        atomic_write_text(args.out, csv_text(si_header, si_rows))
        print(f"wrote {args.out}", file=sys.stderr)
    print(text_table(header, rows))
    return 0


_SHORT = {
    "prohibited": "PROHIBITED",
    "license": "license",
    "notify": "notify",
    "allowed": "allowed",
    "not_applicable": "n/a",
    "indeterminate": "indeterminate",
}


def _cell(c) -> str:
    text = _SHORT[c.consequence.value]
    extras = []
    if c.tariff_frac:
        extras.append(f"{c.tariff_frac:.0%} tariff")
    if c.revenue_share_frac:
        extras.append(f"{c.revenue_share_frac:.0%} share")
    if c.effects:
        extras.append(
            "HBM-constr."
            if c.effects == ("hbm_supply_constrained",)
            else ",".join(c.effects)
        )
    return f"{text} ({', '.join(extras)})" if extras else text


def cmd_classify(args: argparse.Namespace) -> int:
    """``jaxcost classify``: chips x regimes matrix of consequences."""
    chips = load_chips(args.chips)
    regimes = load_regimes(args.regimes_dir)
    if args.regime and not args.all:
        unknown = [r for r in args.regime if r not in regimes]
        if unknown:
            raise RegimeError(
                f"unknown regime {unknown[0]!r} (known: {', '.join(regimes)})"
            )
        regimes = {r: regimes[r] for r in args.regime}
    ids = list(regimes)
    rows, long_rows = [], []
    for chip in chips.values():
        cells = []
        for rid in ids:
            c = classify(chip, regimes[rid])
            cells.append(_cell(c))
            long_rows.append(
                [
                    chip.key,
                    chip.name,
                    rid,
                    c.consequence.value,
                    c.eccn,
                    c.rule_index,
                    c.matched,
                    c.tariff_frac,
                    c.revenue_share_frac,
                    ";".join(c.effects),
                    c.note,
                ]
            )
        rows.append([chip.key] + cells)
    if args.out:
        header = [
            "chip_key",
            "chip_name",
            "regime_id",
            "consequence",
            "eccn",
            "rule_index",
            "matched",
            "tariff_frac",
            "revenue_share_frac",
            "effects",
            "note",
        ]
        atomic_write_text(args.out, csv_text(header, long_rows))
        print(f"wrote {args.out}", file=sys.stderr)
    print(text_table(["chip"] + ids, rows))
    return 0
