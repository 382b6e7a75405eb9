"""The ``jaxcost`` command: parse arguments, call the library, print or write files.

One function per subcommand, ``_cmd_<name>(args) -> int``, registered in
:func:`_build_parser`. No modelling logic lives here. Input errors
(:class:`~jaxcost.errors.JaxcostError`) are printed as one line ``jaxcost: <message>``
on stderr with exit status 2, without a traceback; every output file is written
atomically, so a failed command leaves no partial file.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
from collections.abc import Sequence

from jaxcost._io import atomic_write_text
from jaxcost.errors import JaxcostError


def _fmt(value: float, scale: float = 1.0, digits: int = 4) -> str:
    """Human-readable number (``-`` for unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / scale:.{digits}g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An aligned plain-text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths,
                                                                 strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _sci(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6e}"


# ---------------------------------------------------------------------- subcommands
_CHIP_SI_FIELDS = [
    "peak_flop_per_s_fp64", "peak_flop_per_s_fp32", "peak_flop_per_s_bf16",
    "peak_flop_per_s_fp8", "peak_op_per_s_int8", "peak_flop_per_s_fp4",
    "hbm_capacity_bytes", "hbm_bytes_per_s", "scaleup_bytes_per_s",
    "scaleup_domain_size", "scaleout_bytes_per_s", "io_bidir_bytes_per_s",
    "die_area_m2", "tdp_w", "price_usd", "year",
]


def _cmd_chips(args: argparse.Namespace) -> int:
    """``jaxcost chips``: the chip table in human units, with TPP and PD."""
    from jaxcost import units
    from jaxcost.export_control import performance_density, tpp
    from jaxcost.hardware import load_chips

    chips = load_chips(args.chips)
    rows, si_rows = [], []
    for chip in chips.values():
        t, p = float(tpp(chip)), float(performance_density(chip))
        rows.append([
            chip.key, chip.vendor, chip.family, _fmt(float(chip.year), digits=4),
            _fmt(float(chip.peak_flop_per_s_bf16), units.TERA),
            _fmt(float(chip.peak_flop_per_s_fp8), units.TERA),
            _fmt(float(chip.hbm_capacity_bytes), units.GIGA),
            _fmt(float(chip.hbm_bytes_per_s), units.TERA),
            _fmt(float(chip.scaleup_bytes_per_s), units.GIGA),
            _fmt(float(chip.scaleout_bytes_per_s), units.GIGA),
            _fmt(float(chip.tdp_w)), _fmt(float(chip.price_usd), digits=5),
            _fmt(t, digits=5), _fmt(p),
        ])
        si_rows.append([chip.key, chip.name, chip.vendor, chip.family,
                        str(chip.datacenter), chip.memory_type]
                       + [_sci(float(getattr(chip, f))) for f in _CHIP_SI_FIELDS]
                       + [_sci(t), _sci(p)])
    header = ["key", "vendor", "family", "year", "bf16_TFLOP/s", "fp8_TFLOP/s",
              "HBM_GB", "HBM_TB/s", "scaleup_GB/s/dir", "scaleout_GB/s/dir", "TDP_W",
              "price_USD", "TPP", "PD"]
    if args.out:
        si_header = (["key", "name", "vendor", "family", "datacenter", "memory_type"]
                     + _CHIP_SI_FIELDS + ["tpp", "performance_density_per_mm2"])
        atomic_write_text(args.out, _csv_text(si_header, si_rows))
        print(f"wrote {args.out}", file=sys.stderr)
    print(_table(header, rows))
    return 0


_SHORT = {"prohibited": "PROHIBITED", "license": "license", "notify": "notify",
          "allowed": "allowed", "not_applicable": "n/a",
          "indeterminate": "indeterminate"}


def _cell(c) -> str:
    text = _SHORT[c.consequence.value]
    extras = []
    if c.tariff_frac:
        extras.append(f"{c.tariff_frac:.0%} tariff")
    if c.revenue_share_frac:
        extras.append(f"{c.revenue_share_frac:.0%} share")
    if c.effects:
        extras.append("HBM-constr." if c.effects == ("hbm_supply_constrained",)
                      else ",".join(c.effects))
    return f"{text} ({', '.join(extras)})" if extras else text


def _cmd_classify(args: argparse.Namespace) -> int:
    """``jaxcost classify``: chips x regimes matrix of consequences."""
    from jaxcost.errors import RegimeError
    from jaxcost.export_control import classify, load_regimes
    from jaxcost.hardware import load_chips

    chips = load_chips(args.chips)
    regimes = load_regimes(args.regimes_dir)
    if args.regime and not args.all:
        unknown = [r for r in args.regime if r not in regimes]
        if unknown:
            raise RegimeError(f"unknown regime {unknown[0]!r} (known: "
                              f"{', '.join(regimes)})")
        regimes = {r: regimes[r] for r in args.regime}
    ids = list(regimes)
    rows, long_rows = [], []
    for chip in chips.values():
        cells = []
        for rid in ids:
            c = classify(chip, regimes[rid])
            cells.append(_cell(c))
            long_rows.append([chip.key, chip.name, rid, c.consequence.value, c.eccn,
                              c.rule_index, c.matched, c.tariff_frac,
                              c.revenue_share_frac, ";".join(c.effects), c.note])
        rows.append([chip.key] + cells)
    if args.out:
        header = ["chip_key", "chip_name", "regime_id", "consequence", "eccn",
                  "rule_index", "matched", "tariff_frac", "revenue_share_frac",
                  "effects", "note"]
        atomic_write_text(args.out, _csv_text(header, long_rows))
        print(f"wrote {args.out}", file=sys.stderr)
    print(_table(["chip"] + ids, rows))
    return 0


# --------------------------------------------------------------------------- parser
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcost",
        description="Differentiable cost models of AI accelerators under export "
                    "controls.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("chips", help="table of chip specifications with TPP and PD")
    p.add_argument("--chips", metavar="PATH", help="chips CSV (default: shipped)")
    p.add_argument("--out", metavar="CSV", help="also write the specs in SI units")
    p.set_defaults(func=_cmd_chips)

    p = sub.add_parser("classify", help="classify chips under export-control regimes")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--regime", metavar="ID", action="append",
                       help="regime id (repeatable); default: all")
    group.add_argument("--all", action="store_true", help="every regime (default)")
    p.add_argument("--chips", metavar="PATH", help="chips CSV (default: shipped)")
    p.add_argument("--regimes-dir", metavar="PATH",
                   help="folder of regime TOML files (default: shipped)")
    p.add_argument("--out", metavar="CSV",
                   help="write one row per chip and regime (tidy CSV)")
    p.set_defaults(func=_cmd_classify)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxcost`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        return args.func(args)
    except JaxcostError as err:
        print(f"jaxcost: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
