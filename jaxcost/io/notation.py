"""Published training-run notation -> schema values.

Papers, vendor tables and framework configs print the same setting in many ways:
a batch of ``3.2M tokens``, an MFU of ``41%`` or ``0.41``, experts as ``256 routed +
1 shared``, ZeRO as ``zero1=8`` or ``distributed optimizer``. This module is the one
place that reads such cells. Every function is pure (stdlib and :mod:`re` only) and
raises :class:`~jaxcost.errors.DataError` with a one-line message naming what was
expected when a cell cannot be read; callers add the file, row and column
(``DataError.in_file`` or re-raising with ``file=``/``row=``/``column=``).

Conventions (decisions, not guesses):

* Counts: ``k``/``M``/``B``/``T`` suffixes are decimal (``16K`` = 16,000) unless the
  caller passes ``binary=True``, which makes them powers of 1024 (``8K`` = 8,192,
  ``128K`` = 131,072). Pass ``binary=True`` for sequence lengths and vocabularies
  printed as ``4K``/``128K``; a ``16M tokens`` batch label is a rounded figure either
  way, so prefer the sequence count where a source gives one.
* A ramp ``3072 -> 15360`` (or with ``→``) is read as its final, steady value.
* A bare ZeRO with no stage (``ZeRO (DP 128)``) is stage 1, the optimizer-state
  sharding every framework enables first; FSDP / ``FULL_SHARD`` is stage 3, FSDP that
  keeps parameters gathered after the forward pass (``SHARD_GRAD_OP``, "no reshard
  after forward") is stage 2.
* Recompute follows :mod:`jaxcost.io.benchmarks`: module lists that recompute only
  norms, activation functions or up-projections read as ``none`` (a few memory-bound
  passes); a whole-MoE-block recompute reads as ``full``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from jaxcost.errors import DataError

__all__ = [
    "PRECISION_KINDS",
    "RECOMPUTE_KINDS",
    "Arch",
    "Experts",
    "ZeroSpec",
    "normalise_label",
    "parse_arch",
    "parse_count",
    "parse_experts",
    "parse_fraction",
    "parse_precision",
    "parse_recompute",
    "parse_vpp",
    "parse_zero",
    "resolve_label",
]

PRECISION_KINDS = ("fp32", "tf32", "fp16_bf16", "fp8")
RECOMPUTE_KINDS = ("none", "selective", "full")


@dataclass(frozen=True)
class Experts:
    """Experts per MoE layer: ``routed`` (chosen by the router) and ``shared``."""

    routed: int
    shared: int = 0

    @property
    def total(self) -> int:
        """Routed plus shared experts."""
        return self.routed + self.shared


@dataclass(frozen=True)
class ZeroSpec:
    """ZeRO stage (0-3) and the group the states are sharded over (None: all DP)."""

    stage: int
    shard_group: int | None = None


@dataclass(frozen=True)
class Arch:
    """Architecture kind (``dense`` | ``moe``) and attention (``mha``, ``gqa``,
    ``mla`` or None when the cell does not say)."""

    kind: str
    attention: str | None = None


# ------------------------------------------------------------------ helpers

_SUFFIX = {"k": 1, "m": 2, "b": 3, "g": 3, "t": 4}
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?"
_APPROX = re.compile(r"^(?:~|≈|about|approx\.?|approximately|up to|circa|ca\.)\s*")
_RAMP = re.compile(r"\s*(?:->|→|=>|\bto\b)\s*")


def _text(text: object, expected: str) -> str:
    """The cell as stripped text; DataError on a blank cell."""
    s = "" if text is None else str(text).strip()
    if not s or (isinstance(text, float) and math.isnan(text)):
        raise DataError(f"empty cell; expected {expected}")
    return s


def _drop_qualifiers(s: str) -> str:
    """``s`` without parenthesised or bracketed asides."""
    return re.sub(r"\s*[(\[][^)\]]*[)\]]", " ", s).strip()


def _as_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _one_count(s: str, binary: bool, expected: str, original: str) -> float:
    m = re.fullmatch(rf"({_NUMBER})\s*([kmbgt])?\b\s*([a-z][a-z /_-]*)?", s)
    if not m:
        raise DataError(f"cannot read '{original}'; expected {expected}")
    value = float(m.group(1))
    if m.group(2):
        value *= (1024.0 if binary else 1000.0) ** _SUFFIX[m.group(2)]
    return value


# ------------------------------------------------------------------ numbers


def parse_count(text: object, *, binary: bool = False) -> int | float:
    """A count or measured quantity as printed.

    Reads ``2048``, ``2,048``, ``16_384``, ``16K``, ``3.2M tokens``, ``96 x 8`` (a
    product, e.g. nodes x GPUs), ``3072 -> 15360`` (a ramp: the final value),
    ``~147`` / ``up to 147`` (approximate figures as stated) and ignores a trailing
    unit word or parenthesised aside (``64 (8 nodes)``).

    Args:
      text: the cell.
      binary: read k/M/B/T as powers of 1024 (sequence lengths, vocabularies).

    Returns:
      An int when the value is whole, else a float.

    Raises:
      DataError: the cell is blank, negative or not a number in these forms.
    """
    expected = "a count such as 2,048, 16K, 3.2M tokens or 96 x 8"
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:
            raise DataError(f"cannot read '{text}'; expected {expected}")
        return _as_number(float(text))
    original = _text(text, expected)
    s = _APPROX.sub("", _drop_qualifiers(original).lower())
    s = re.sub(r"(?<=\d)[,_](?=\d{3}\b)", "", s)
    s = _RAMP.split(s)[-1].strip()
    factors = re.split(r"\s*[x×*]\s*(?=\d)", s)
    value = 1.0
    for factor in factors:
        value *= _one_count(factor.strip(), binary, expected, original)
    return _as_number(value)


def parse_fraction(text: object) -> float:
    """A utilisation (MFU, HFU) as a fraction in [0, 1].

    ``41%`` and ``41`` are percentages; ``0.41`` is a fraction (a bare number <= 1
    is taken as a fraction, above 1 and up to 100 as a percentage). A trailing aside
    such as the speed-up in ``63.5%(1.27×)`` is ignored.

    Raises:
      DataError: blank, not a number, or above 100%.
    """
    expected = "a fraction such as 41%, 0.41 or 41"
    original = _text(text, expected)
    s = _APPROX.sub("", _drop_qualifiers(original).lower())
    m = re.fullmatch(rf"({_NUMBER})\s*(%)?", s)
    if not m:
        raise DataError(f"cannot read '{original}'; expected {expected}")
    value = float(m.group(1))
    if m.group(2) or value > 1.0:
        value /= 100.0
    if value > 1.0:
        raise DataError(f"value '{original}' is above 100%; expected {expected}")
    return value


# ------------------------------------------------------------------ model


def parse_experts(text: object) -> Experts:
    """Experts per MoE layer: ``64``, ``8 experts``, ``256 routed + 1 shared``,
    ``1 shared + 64 routed`` (terms joined by ``+``, ``,`` or ``and``).

    Raises:
      DataError: no routed count, a term without a number, or a repeated kind.
    """
    expected = "experts such as 64, 8 experts or 256 routed + 1 shared"
    original = _text(text, expected)
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", _drop_qualifiers(original).lower())
    counts: dict[str, int] = {}
    for term in re.split(r"\s*(?:\+|,|\band\b)\s*", s):
        m = re.fullmatch(r"(\d+)\s*(shared|routed)?(?:\s*experts?)?", term)
        if not m:
            raise DataError(f"cannot read '{original}'; expected {expected}")
        kind = m.group(2) or "routed"
        if kind in counts:
            raise DataError(f"value '{original}' repeats '{kind}'; expected {expected}")
        counts[kind] = int(m.group(1))
    if not counts.get("routed"):
        raise DataError(
            f"value '{original}' has no routed experts; expected {expected}"
        )
    return Experts(routed=counts["routed"], shared=counts.get("shared", 0))


def parse_arch(text: object) -> Arch:
    """Architecture: ``dense``, ``MoE``, ``moe (MLA)``, ``dense (GQA, 8 KV heads)``.

    MQA is read as ``gqa`` (one key/value group).

    Raises:
      DataError: the cell names neither dense nor MoE.
    """
    expected = "dense or moe, optionally with attention, e.g. 'moe (MLA)'"
    original = _text(text, expected)
    s = original.lower()
    if re.search(r"\bmoe\b|mixture[- ]of[- ]experts|\bsparse\b", s):
        kind = "moe"
    elif re.search(r"\bdense\b", s):
        kind = "dense"
    else:
        raise DataError(
            f"value '{original}' is not an architecture; expected {expected}"
        )
    attention = None
    if re.search(r"\bmla\b|latent attention", s):
        attention = "mla"
    elif re.search(r"\b(gqa|mqa)\b|grouped[- ]query|multi[- ]query", s):
        attention = "gqa"
    elif re.search(r"\bmha\b|multi[- ]head attention", s):
        attention = "mha"
    return Arch(kind=kind, attention=attention)


# ------------------------------------------------------------------ plan


def parse_vpp(text: object, *, layers: int | None = None, pp: int | None = None) -> int:
    """Virtual pipeline stages (model chunks) per pipeline rank.

    Reads ``4``, ``vpp 4``, ``VP=4``, ``INTERLEAVED_PIPELINE=8``, ``interleaved (4
    chunks)``, ``6 interleaving stages``; ``none``/``off``/``non-interleaved`` give
    1. ``2 layers/virtual stage`` (Megatron's ``--num-layers-per-virtual-pipeline-
    stage``) needs ``layers`` and ``pp``: vpp = layers / (pp x layers per stage).

    Raises:
      DataError: no number, several numbers, or a layers-per-stage form that does
        not divide the layers (or lacks ``layers``/``pp``).
    """
    expected = (
        "virtual stages such as 4, vpp 4, interleaved (4 chunks) "
        "or 2 layers/virtual stage"
    )
    original = _text(text, expected)
    s = original.lower()
    if re.fullmatch(r"(none|no|off|false|non-interleaved|not interleaved|-)", s):
        return 1
    numbers = [int(n) for n in re.findall(r"(?<![\d.])(\d+)(?![\d.])", s)]
    if len(numbers) != 1 or numbers[0] < 1:
        raise DataError(f"cannot read '{original}'; expected {expected}")
    if re.search(r"layers?\s*(?:/|per)\s*(?:virtual|model)?\s*(?:pipeline\s*)?"
                 r"(?:stage|chunk)", s):
        if layers is None or pp is None:
            raise DataError(f"value '{original}' counts layers per virtual stage; "
                            "expected layers and pp to convert it")
        stages = layers / (pp * numbers[0])
        if not stages.is_integer() or stages < 1:
            raise DataError(f"value '{original}' does not divide {layers} layers "
                            f"over pp {pp}; expected layers = pp x vpp x layers/stage")
        return int(stages)
    return numbers[0]


def parse_zero(text: object) -> ZeroSpec:
    """Optimizer/gradient/parameter sharding as a ZeRO stage and shard group.

    Reads ``none``/``DDP`` (0), ``ZeRO-1``, ``ZeRO stage 2``, ``ZeRO-DP O3``,
    ``zero1=8`` (stage 1 over groups of 8; ``=-1`` means all DP ranks), ``ZeRO (DP
    128)`` (bare ZeRO = stage 1), ``distributed optimizer`` (1), ``SHARD_GRAD_OP`` /
    FSDP with "no reshard after forward" (2), ``FSDP``, ``FSDP2``, ``FULL_SHARD`` (3)
    and ``HSDP (8)`` / ``HYBRID_SHARD`` (3, sharded within groups of 8).

    Raises:
      DataError: no stage can be read.
    """
    expected = (
        "ZeRO sharding such as ZeRO-1, zero1=8, distributed optimizer, "
        "FSDP or HSDP (8)"
    )
    original = _text(text, expected)
    s = original.lower()
    group = None
    m = re.search(r"(?:=|\(\s*(?:dp\s*)?|within\s+|group(?:\s+of)?\s*)(-?\d+)", s)
    if m and int(m.group(1)) > 0:
        group = int(m.group(1))
    if re.fullmatch(r"(none|no|off|false|0|ddp|-)", s):
        return ZeroSpec(0)
    if re.search(r"shard_grad_op|no reshard|reshard_after_forward\s*=\s*false", s):
        return ZeroSpec(2, group)
    if re.search(r"\bhsdp\b|hybrid_shard|hybrid shard", s):
        return ZeroSpec(3, group)
    if re.search(r"fsdp|full_shard|fully sharded", s):
        return ZeroSpec(3, group)
    m = re.search(r"zero\W*(?:dp\W*)?(?:stage\W*|o)?([0-3])\b", s)
    if m:
        return ZeroSpec(int(m.group(1)), group)
    if re.search(r"distributed optimi[sz]er|\bzero\b", s):
        return ZeroSpec(1, group)
    raise DataError(f"value '{original}' is not a ZeRO stage; expected {expected}")


_CHEAP_MODULES = re.compile(
    r"(rms|layer)?\s*norm|\bact\b|moe_act|activation functions?|up-?projections?"
)


def parse_recompute(text: object) -> str:
    """Activation recompute as ``none``, ``selective``, ``full``, ``modules`` or
    ``selective+modules``.

    ``none``/``no``/``none at 8K``/``checkpoint=False`` -> none; ``full``,
    ``activation checkpointing``/``recomputation``, ``re-materialization``,
    ``True``, ``Activation Ckpt TRUE`` -> full; ``selective``, ``selective op``,
    ``selective layer``, ``partial`` -> selective. Lists of cheap modules only (norms,
    activation functions, up-projections: ``norm, act``; ``RMSNorm and MLA
    up-projection``; ``--recompute-modules moe_act layernorm``) -> modules (the plan's
    ``recompute_lite``); with the attention core as well (``core_attn``) ->
    selective+modules; a whole MoE block (``moe layernorm``) -> full.

    Raises:
      DataError: none of these forms.
    """
    expected = "recompute: none, selective, full or a list of modules"
    original = _text(text, expected)
    s = original.lower()
    if s.strip() in ("modules", "selective+modules"):  # already normalised
        return s.strip()
    head = s.split("(", 1)[0].strip()
    modules = s.split("(", 1)[1] if "(" in s else s
    flag = re.search(r"(?:checkpoint(?:ing)?|ckpt)\s*[=:]?\s*(true|false)\b", s)
    if re.match(r"(none|no|off|false|0|without)\b", head) or (
        flag and flag.group(1) == "false"
    ):
        return "none"
    if re.search(r"whole moe|moe layernorm|\bmoe\b\s+layernorm", modules):
        return "full"
    if re.match(r"(full|true|yes|on)\b", head) or (flag and flag.group(1) == "true"):
        return "full"
    core = re.search(r"core_attn|core attention", s)
    if re.match(r"(selective|partial|a portion)", head):
        if _CHEAP_MODULES.search(modules) and "(" in s:
            return "selective+modules" if core else "modules"
        return "selective"
    if _CHEAP_MODULES.search(s):
        return "selective+modules" if core else "modules"
    if re.search(r"(activation|gradient) (checkpointing|recomputation)"
                 r"|re-?materiali[sz]ation|\bac\b", s):
        return "full"
    raise DataError(f"value '{original}' is not a recompute mode; expected {expected}")


def parse_precision(text: object) -> str:
    """Compute precision kind: one of :data:`PRECISION_KINDS`.

    Any FP8 form (``FP8-CS``, ``FP8-MX``, ``FP8 blockwise``, ``fp8 (E4M3)``,
    ``amp_fp8``, ``bf16+fp8``) -> ``fp8``; ``tf32`` -> ``tf32``; BF16/FP16/mixed/
    amp -> ``fp16_bf16``; FP32 -> ``fp32``. The lowest-precision format named wins
    (``bf16, fp32 grad accumulation`` is ``fp16_bf16``).

    Raises:
      DataError: no known format (FP4/NVFP4 training is not a kind here).
    """
    expected = "a precision: fp32, tf32, bf16/fp16/mixed or fp8"
    original = _text(text, expected)
    s = original.lower()
    if re.search(r"fp8|float8|e4m3|e5m2", s):
        return "fp8"
    if re.search(r"fp4|nvfp4|mxfp4", s):
        raise DataError(f"value '{original}' is FP4, which has no precision kind; "
                        f"expected {expected}")
    if "tf32" in s:
        return "tf32"
    if re.search(r"bf16|fp16|bfloat16|float16|half|mixed|\bamp\b|amp_", s):
        return "fp16_bf16"
    if re.search(r"fp32|float32|single|full precision", s):
        return "fp32"
    raise DataError(f"value '{original}' is not a precision; expected {expected}")


# ------------------------------------------------------------------ labels

_VENDORS = r"\b(nvidia|amd|intel|huawei|google)\b"


def normalise_label(text: object) -> str:
    """A fallback key for a printed label: lowercase, without parenthesised
    qualifiers, vendor names and separators, and with ``40G`` spelled ``40gb``.

    ``'H100-SXM-80GB (DGX H100, Eos)'`` and ``'h100 sxm 80gb'`` both give
    ``'h100sxm80gb'``.
    """
    s = _drop_qualifiers(str(text)).lower()
    s = re.sub(_VENDORS, " ", s)
    s = re.sub(r"(\d)\s*g\b", r"\1gb", s)
    return re.sub(r"[^a-z0-9]", "", s)


def resolve_label(text: object, table: dict[str, str], *, what: str) -> str:
    """The key a printed label maps to in ``table`` (label -> key).

    Tries the exact label, then a key of the table, then :func:`normalise_label`
    of either. A label without a parenthesised qualifier wins over qualified ones
    that normalise alike; qualified labels that normalise alike but map to
    different keys make the cell ambiguous.

    Args:
      text: the printed label.
      table: label -> key (e.g. ``chip_label -> chip_key``).
      what: what the labels name, for the message (``"chip"``, ``"model"``).

    Raises:
      DataError: unknown or ambiguous label; the message suggests close labels.
    """
    original = _text(text, f"a {what} label")
    if original in table:
        return table[original]
    keys = set(table.values())
    if original in keys:
        return original
    plain: dict[str, set[str]] = {}
    qualified: dict[str, set[str]] = {}
    for label, key in table.items():
        index = qualified if re.search(r"[(\[]", label) else plain
        index.setdefault(normalise_label(label), set()).add(key)
    for key in keys:
        plain.setdefault(normalise_label(key), set()).add(key)
    norm = normalise_label(original)
    hits = plain.get(norm) or qualified.get(norm)
    if hits and len(hits) == 1:
        return next(iter(hits))
    if hits:
        raise DataError(f"{what} '{original}' is ambiguous: it could be "
                        f"{', '.join(sorted(hits))}; expected a more specific label")
    labels = sorted(set(table) | keys)
    by_norm = {normalise_label(label): label for label in labels}
    close = difflib.get_close_matches(norm, list(by_norm), n=3, cutoff=0.6)
    hint = ", ".join(f"'{by_norm[c]}'" for c in close)
    suggestion = f"did you mean {hint}?" if hint else f"expected a known {what} label"
    raise DataError(f"unknown {what} '{original}'; {suggestion}")
