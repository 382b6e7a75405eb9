"""Unit factors: the only place in jaxcost with prefix and bit factors.

Everything inside the package is in SI base units (seconds, bytes, FLOP, FLOP/s,
bytes/s, watts, USD, square metres). Decimal and binary prefixes are never mixed.
"""

__all__ = [
    "KILO",
    "MEGA",
    "GIGA",
    "TERA",
    "PETA",
    "MILLI",
    "MICRO",
    "NANO",
    "KIB",
    "MIB",
    "GIB",
    "BITS_PER_BYTE",
    "MM2",
    "SECONDS_PER_HOUR",
    "SECONDS_PER_DAY",
]

KILO = 1e3
MEGA = 1e6
GIGA = 1e9
TERA = 1e12
PETA = 1e15

MILLI = 1e-3
MICRO = 1e-6
NANO = 1e-9

KIB = 2**10
MIB = 2**20
GIB = 2**30

BITS_PER_BYTE = 8

#: One square millimetre in square metres (die areas are quoted in mm^2).
MM2 = 1e-6

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0


