"""Export-control metrics and rules: TPP, performance density, regimes, classification.

Owns:
  * the rule metrics computed from a :class:`~jaxcost.model.hardware.ChipSpec`:
    ``tpp`` (Total Processing Performance, 3A090 Technical Note) and
    ``performance_density`` (TPP per mm^2 of applicable die area);
  * :class:`Regime`: one export-control regime loaded from ``data/regimes/<id>.toml``
    (rules as data, conditions in the safe expression language of ``jaxcost._expr``);
  * the hard classifier :func:`classify` (Python, first matching rule wins, three-valued
    logic so that an unknown die area gives ``indeterminate``);
  * smooth versions for optimisation: :func:`smooth_allowed_frac` and
    :func:`smooth_license_cost_frac`, where every numeric threshold of every rule is a
    leaf of a :class:`RegimeThresholds` pytree, so ``jax.grad`` with respect to the
    thresholds is finite.

Symbols: TPP = max_b (dense peak at bit length b in T(FL)OP/s) x b; PD = TPP / A_mm2.

Condition variables (the names a rule may use; quantities in the units the rules are
written in, converted here from the SI fields of ``ChipSpec``):

  ``tpp`` (TPP, dimensionless), ``pd`` (TPP per mm^2; NaN = unknown if the die area is
  unknown), ``io_bidir_gbs`` (aggregate bidirectional I/O, GB/s, the 2022 rule's
  quantity), ``mem_bw_gbs`` (total DRAM bandwidth, GB/s), ``year``, ``datacenter``
  (bool), ``hbm`` (bool: the memory type contains "HBM"), ``product`` (full chip name),
  ``key``, ``vendor``, ``family``, ``memory_type`` (strings), plus every name declared
  in the regime's ``[refs]`` table (the consequence, a string, of another regime for the
  same chip; unknown when that regime is indeterminate).

References: 87 FR 62186 (2022); 88 FR 73458 (2023), Technical Notes to 3A090.a/.b;
89 FR 96790 (2024); 90 FR 4544 (2025); 91 FR 1684 (2026).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxcost import units
from jaxcost.errors import RegimeError
from jaxcost.io.paths import data_dir
from jaxcost.model.hardware import ChipSpec
from jaxcost.model.numerics import pow2_scale, tiny_like
from jaxcost.policy import expr as _expr

__all__ = [
    "Consequence",
    "BASE_NAME_TYPES",
    "tpp",
    "performance_density",
    "Rule",
    "Effect",
    "Regime",
    "Classification",
    "regimes_dir",
    "load_regime",
    "load_regimes",
    "classify",
    "tpp_cap_units",
    "ChipQuantities",
    "chip_quantities",
    "RegimeThresholds",
    "regime_thresholds",
    "smooth_consequence_probs",
    "smooth_allowed_frac",
    "smooth_license_cost_frac",
]


class Consequence(enum.StrEnum):
    """What a regime means for exporting a chip to the regime's destination."""

    #: licence required, presumption of denial (a de-facto ban)
    PROHIBITED = "prohibited"
    #: licence required, case-by-case review (possibly with tariff / revenue share)
    LICENSE = "license"
    #: licence exception with prior notification (NAC)
    NOTIFY = "notify"
    #: no advanced-computing licence requirement
    ALLOWED = "allowed"
    #: the regime does not govern this chip (e.g. PRC-designed, not a US export)
    NOT_APPLICABLE = "not_applicable"
    #: a rule needs a quantity that is unknown for this chip (e.g. die area)
    INDETERMINATE = "indeterminate"


_RULE_CONSEQUENCES = {c.value for c in Consequence} - {Consequence.INDETERMINATE.value}
_NUM_NAMES = ("tpp", "pd", "io_bidir_gbs", "mem_bw_gbs", "year")
_BOOL_NAMES = ("datacenter", "hbm")
_STR_NAMES = ("product", "key", "vendor", "family", "memory_type")
#: Names available to every condition, with their types.
BASE_NAME_TYPES: dict[str, str] = (
    {n: "num" for n in _NUM_NAMES}
    | {n: "bool" for n in _BOOL_NAMES}
    | {n: "str" for n in _STR_NAMES}
)


# --------------------------------------------------------------------------- metrics
def tpp(chip: ChipSpec) -> jax.Array:
    """Total Processing Performance of a chip (dimensionless).

    TPP = max over precisions of dense throughput [T(FL)OP/s] x bit length:
    FP4 x 4, INT8 and FP8 x 8, BF16/FP16 x 16, FP32 x 32, FP64 x 64. Unknown (NaN)
    throughputs are ignored; the result is NaN only if all are unknown.

    Args:
      chip: the chip (leaves may be batched or traced).

    Returns:
      TPP, same shape as the chip's leaves.

    References:
      88 FR 73458, Technical Note to 3A090.a/.b ("2 x MacTOPS x bit length", the
      highest value over supported bit lengths, dense).
    """
    terms = [
        (chip.peak_flop_per_s_fp4, 4),
        (chip.peak_op_per_s_int8, 8),
        (chip.peak_flop_per_s_fp8, 8),
        (chip.peak_flop_per_s_bf16, 16),
        (chip.peak_flop_per_s_fp32, 32),
        (chip.peak_flop_per_s_fp64, 64),
    ]
    out = None
    for peak, bits in terms:
        term = jnp.asarray(peak) / units.TERA * bits
        out = term if out is None else jnp.fmax(out, term)
    return out


def performance_density(chip: ChipSpec) -> jax.Array:
    """Performance density: TPP per mm^2 of applicable die area (NaN if area unknown).

    References:
      88 FR 73458, Technical Note to 3A090 ("TPP divided by applicable die area").
    """
    return tpp(chip) / (jnp.asarray(chip.die_area_m2) / units.MM2)


def _chip_env(chip: ChipSpec) -> dict[str, Any]:
    """Condition variables of one concrete chip (Python values, NaN = unknown)."""
    return {
        "tpp": float(tpp(chip)),
        "pd": float(performance_density(chip)),
        "io_bidir_gbs": float(chip.io_bidir_bytes_per_s) / units.GIGA,
        "mem_bw_gbs": float(chip.hbm_bytes_per_s) / units.GIGA,
        "year": float(chip.year),
        "datacenter": bool(chip.datacenter),
        "hbm": "HBM" in chip.memory_type.upper(),
        "product": chip.name,
        "key": chip.key,
        "vendor": chip.vendor,
        "family": chip.family,
        "memory_type": chip.memory_type,
    }


# ------------------------------------------------------------------------- records
@dataclasses.dataclass(frozen=True)
class Rule:
    """One ``[[rule]]`` of a regime file (``index`` is 1-based, as in messages)."""

    index: int
    when_text: str
    when: Any
    consequence: str | None
    inherit: str | None
    eccn: str
    note: str
    tariff_frac: float
    revenue_share_frac: float
    tariff_when_text: str | None
    tariff_when: Any


@dataclasses.dataclass(frozen=True)
class Effect:
    """One ``[[effect]]``: a named side effect (e.g. an HBM supply constraint)."""

    name: str
    when_text: str
    when: Any
    note: str


@dataclasses.dataclass(frozen=True)
class Regime:
    """An export-control regime: metadata, ordered rules, effects, data tables.

    ``deps`` holds every regime this one refers to (``inherits``, ``inherit`` rules,
    ``[refs]``), transitively, by id, so a ``Regime`` is self-contained.
    """

    id: str
    name: str
    citation: str
    date: str
    confidence: str
    source_urls: tuple[str, ...]
    destination: str
    inherits: str | None
    rules: tuple[Rule, ...]
    effects: tuple[Effect, ...]
    refs: Mapping[str, str]
    tables: Mapping[str, Any]
    path: str
    deps: Mapping[str, Regime] = dataclasses.field(repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Classification:
    """The result of classifying one chip under one regime.

    Attributes:
      regime_id: the regime classified under.
      consequence: see :class:`Consequence`.
      eccn: the export control classification (paragraph) that matched, if any.
      rule_index: 1-based index of the matching rule in ``regime_id``'s file (for an
        ``inherit`` rule, the rule that delegated; see ``matched`` for the chain).
      tariff_frac: ad-valorem tariff fraction that applies (0 if none).
      revenue_share_frac: fraction of revenue remitted as a licence condition.
      note: the rule's note.
      effects: names of the regime's effects that apply (e.g. hbm_supply_constrained).
      matched: the chain of rules, e.g. ``"2025-04 rule 2 > 2023-10 rule 1"``.
    """

    regime_id: str
    consequence: Consequence
    eccn: str
    rule_index: int
    tariff_frac: float
    revenue_share_frac: float
    note: str
    effects: tuple[str, ...] = ()
    matched: str = ""


# ------------------------------------------------------------------------- loading
def regimes_dir() -> Path:
    """The folder of the shipped regime files."""
    return data_dir() / "regimes"


_REGIME_KEYS = {"id", "name", "citation", "date", "confidence", "source_urls",
                "source_url", "destination", "inherits", "notes"}
_RULE_KEYS = {"when", "consequence", "inherit", "eccn", "note", "tariff_frac",
              "revenue_share_frac", "tariff_when"}
_EFFECT_KEYS = {"name", "when", "note"}
_TOP_KEYS = {"regime", "rule", "effect", "refs", "tables"}


def _parse_condition(text: Any, *, file: str, where: str, column: str,
                     name_types: dict[str, str], prefix: str | None) -> Any:
    if not isinstance(text, str):
        raise RegimeError(f"expected a condition string, got {type(text).__name__}",
                          file=file, row=where, column=column)
    try:
        node = _expr.parse(text)
        kind = _expr.check(node, name_types)
    except RecursionError:
        raise RegimeError("condition nested too deeply", file=file, row=where,
                          column=column) from None
    except _expr.ExprError as err:
        if err.message.startswith("unknown name"):
            raise RegimeError(f"{err.message} at position {err.position} in {text!r}",
                              file=file, row=where, column=column) from None
        raise RegimeError(f"syntax error at position {err.position}: {err.message} "
                          f"in {text!r}", file=file, row=where, column=column) from None
    if kind != "bool":
        raise RegimeError(f"condition must be true/false, got a {kind} in {text!r}",
                          file=file, row=where, column=column)
    if prefix is not None:
        _expr.assign_threshold_names(node, prefix)
    return node


def _frac(value: Any, *, file: str, where: str, column: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0.0 <= value <= 1.0):  # no float(): an integer may be too large for one
        raise RegimeError(f"expected a fraction between 0 and 1, got {value!r}",
                          file=file, row=where, column=column)
    return float(value)


def _text(value: Any, *, file: str, where: str, column: str) -> str:
    if not isinstance(value, str):
        raise RegimeError(f"expected a string, got {value!r}", file=file, row=where,
                          column=column)
    return value


def _load_file(path: Path, cache: dict[str, Regime], stack: tuple[str, ...]) -> Regime:
    file = str(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as err:
        raise RegimeError(f"cannot read regime file: {err.strerror}",
                          file=file) from None
    except tomllib.TOMLDecodeError as err:
        raise RegimeError(f"TOML syntax error: {err}", file=file) from None
    except UnicodeDecodeError:
        raise RegimeError("expected a UTF-8 text file", file=file) from None
    except RecursionError:
        raise RegimeError("arrays or inline tables nested too deeply; expected a "
                          "regime table", file=file) from None
    for key in doc:
        if key not in _TOP_KEYS:
            raise RegimeError(f"unknown table (expected one of {sorted(_TOP_KEYS)})",
                              file=file, column=key)
    meta = doc.get("regime")
    if not isinstance(meta, dict):
        raise RegimeError("missing [regime] table", file=file)
    for key in meta:
        if key not in _REGIME_KEYS:
            raise RegimeError(f"unknown key (expected one of {sorted(_REGIME_KEYS)})",
                              file=file, row="[regime]", column=key)
    for key in ("id", "name", "citation", "date", "confidence", "destination"):
        if key not in meta:
            raise RegimeError("missing required key", file=file, row="[regime]",
                              column=key)
    regime_id = _text(meta["id"], file=file, where="[regime]", column="id")
    if regime_id != path.stem:
        raise RegimeError(f"id {regime_id!r} must equal the file name stem "
                          f"{path.stem!r}", file=file, row="[regime]", column="id")
    urls = meta.get("source_urls", meta.get("source_url", []))
    urls = [urls] if isinstance(urls, str) else urls
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise RegimeError("expected a list of URL strings", file=file, row="[regime]",
                          column="source_urls")
    refs = doc.get("refs", {})
    if not isinstance(refs, dict) or not all(isinstance(v, str) for v in refs.values()):
        raise RegimeError("expected name = \"regime id\" entries", file=file,
                          row="[refs]")
    for ref_name in refs:
        if ref_name in BASE_NAME_TYPES:
            raise RegimeError(f"name {ref_name!r} is already a chip variable",
                              file=file, row="[refs]", column=ref_name)
    name_types = BASE_NAME_TYPES | {n: "str" for n in refs}

    raw_rules = doc.get("rule", [])
    inherits = meta.get("inherits")
    if inherits is not None:
        inherits = _text(inherits, file=file, where="[regime]", column="inherits")
    if not isinstance(raw_rules, list) or (not raw_rules and inherits is None):
        raise RegimeError("expected at least one [[rule]] (or [regime] inherits)",
                          file=file)
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules, start=1):
        where = f"rule {i}"
        if not isinstance(raw, dict):
            raise RegimeError(f"expected a [[rule]] table, got {raw!r}", file=file,
                              row=where)
        for key in raw:
            if key not in _RULE_KEYS:
                raise RegimeError(f"unknown key (expected one of {sorted(_RULE_KEYS)})",
                                  file=file, row=where, column=key)
        if "when" not in raw:
            raise RegimeError("missing required key (use when = \"True\" for a "
                              "catch-all)", file=file, row=where, column="when")
        when = _parse_condition(raw["when"], file=file, where=where, column="when",
                                name_types=name_types,
                                prefix=f"{regime_id}/rule {i}/when")
        has_cons, has_inherit = "consequence" in raw, "inherit" in raw
        if has_cons == has_inherit:
            raise RegimeError("expected exactly one of 'consequence' or 'inherit'",
                              file=file, row=where, column="consequence")
        consequence = None
        if has_cons:
            consequence = _text(raw["consequence"], file=file, where=where,
                                column="consequence")
            if consequence not in _RULE_CONSEQUENCES:
                raise RegimeError(f"unknown consequence {consequence!r} (expected one "
                                  f"of {sorted(_RULE_CONSEQUENCES)})", file=file,
                                  row=where, column="consequence")
        inherit = None
        if has_inherit:
            inherit = _text(raw["inherit"], file=file, where=where, column="inherit")
            for key in ("tariff_frac", "revenue_share_frac", "tariff_when"):
                if key in raw:
                    raise RegimeError("not allowed together with 'inherit'",
                                      file=file, row=where, column=key)
        tariff_when = None
        if "tariff_when" in raw:
            if "tariff_frac" not in raw:
                raise RegimeError("'tariff_when' needs 'tariff_frac'", file=file,
                                  row=where, column="tariff_when")
            tariff_when = _parse_condition(
                raw["tariff_when"], file=file, where=where, column="tariff_when",
                name_types=name_types, prefix=f"{regime_id}/rule {i}/tariff_when")
        rules.append(Rule(
            index=i, when_text=raw["when"], when=when, consequence=consequence,
            inherit=inherit,
            eccn=_text(raw.get("eccn", ""), file=file, where=where, column="eccn"),
            note=_text(raw.get("note", ""), file=file, where=where, column="note"),
            tariff_frac=_frac(raw.get("tariff_frac", 0.0), file=file, where=where,
                              column="tariff_frac"),
            revenue_share_frac=_frac(raw.get("revenue_share_frac", 0.0), file=file,
                                     where=where, column="revenue_share_frac"),
            tariff_when_text=raw.get("tariff_when"), tariff_when=tariff_when,
        ))
    if inherits is not None:
        i = len(rules) + 1
        rules.append(Rule(index=i, when_text="True", when=_expr.parse("True"),
                          consequence=None, inherit=inherits, eccn="",
                          note=f"inherits {inherits}", tariff_frac=0.0,
                          revenue_share_frac=0.0, tariff_when_text=None,
                          tariff_when=None))
    effects: list[Effect] = []
    raw_effects = doc.get("effect", [])
    if not isinstance(raw_effects, list) or not all(isinstance(e, dict)
                                                    for e in raw_effects):
        raise RegimeError("expected [[effect]] tables", file=file, row="[[effect]]")
    for raw in raw_effects:
        where = f"effect {raw.get('name', len(effects) + 1)!s}"
        for key in raw:
            if key not in _EFFECT_KEYS:
                raise RegimeError(f"unknown key (expected one of "
                                  f"{sorted(_EFFECT_KEYS)})", file=file, row=where,
                                  column=key)
        for key in ("name", "when"):
            if key not in raw:
                raise RegimeError("missing required key", file=file, row=where,
                                  column=key)
        effects.append(Effect(
            name=_text(raw["name"], file=file, where=where, column="name"),
            when_text=raw["when"],
            when=_parse_condition(raw["when"], file=file, where=where, column="when",
                                  name_types=name_types, prefix=None),
            note=_text(raw.get("note", ""), file=file, where=where, column="note")))

    # dependencies, loaded from the same folder
    needed: list[tuple[str, str, str]] = [
        (r.inherit, f"rule {r.index}", "inherit") for r in rules if r.inherit]
    needed += [(v, "[refs]", k) for k, v in refs.items()]
    deps: dict[str, Regime] = {}
    for dep_id, where, column in needed:
        if dep_id in stack or dep_id == regime_id:
            raise RegimeError(f"cyclic reference to regime {dep_id!r}", file=file,
                              row=where, column=column)
        dep = cache.get(dep_id)
        if dep is None:
            dep_path = path.parent / f"{dep_id}.toml"
            if not _is_file(dep_path):
                raise RegimeError(f"unknown regime {dep_id!r} (no file {dep_path})",
                                  file=file, row=where, column=column)
            dep = _load_file(dep_path, cache, stack + (regime_id,))
        deps[dep_id] = dep
        deps.update(dep.deps)
    tables = doc.get("tables", {})
    if not isinstance(tables, dict):
        raise RegimeError("expected [tables.<name>] tables", file=file, row="[tables]")
    regime = Regime(
        id=regime_id,
        name=_text(meta["name"], file=file, where="[regime]", column="name"),
        citation=_text(meta["citation"], file=file, where="[regime]",
                       column="citation"),
        date=str(meta["date"]),
        confidence=_text(meta["confidence"], file=file, where="[regime]",
                         column="confidence"),
        source_urls=tuple(urls),
        destination=_text(meta["destination"], file=file, where="[regime]",
                          column="destination"),
        inherits=inherits, rules=tuple(rules), effects=tuple(effects),
        refs=dict(refs), tables=tables, path=file, deps=deps,
    )
    cache[regime_id] = regime
    return regime


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for names the OS cannot even look up (too long,
    NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def load_regime(path_or_id: str | os.PathLike,
                *, directory: str | os.PathLike | None = None) -> Regime:
    """Load one regime from a TOML file, or by id from ``directory``.

    Args:
      path_or_id: a path to ``<id>.toml``, or a regime id such as ``"2023-10"``.
      directory: where ids (and the regimes a file refers to) are looked up; default
        the shipped ``data/regimes``.

    Raises:
      RegimeError: unknown id, unreadable file, TOML syntax error, unknown key, syntax
        error or unknown name in a condition (the message names the file, the rule and
        the key), or a reference to a missing regime.
    """
    text = os.fspath(path_or_id)
    path = Path(text)
    if not (text.endswith(".toml") or _is_file(path)):
        folder = Path(directory) if directory is not None else regimes_dir()
        path = folder / f"{text}.toml"
        if not _is_file(path):
            known = sorted(p.stem for p in folder.glob("*.toml"))
            raise RegimeError(f"unknown regime {text!r} (known: {', '.join(known)})",
                              file=str(folder))
    return _load_file(path, {}, ())


def load_regimes(directory: str | os.PathLike | None = None) -> dict[str, Regime]:
    """Load every ``*.toml`` regime in ``directory`` (default the shipped ones).

    Returns:
      ``{id: Regime}`` ordered by date, then id.

    Raises:
      RegimeError: as :func:`load_regime`, or an empty folder.
    """
    folder = Path(directory) if directory is not None else regimes_dir()
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise RegimeError("no regime files (*.toml) found", file=str(folder))
    cache: dict[str, Regime] = {}
    for path in files:
        if path.stem not in cache:
            _load_file(path, cache, ())
    ordered = sorted((cache[p.stem] for p in files), key=lambda r: (r.date, r.id))
    return {r.id: r for r in ordered}


# -------------------------------------------------------------------- hard classifier
def _unknown_names(node: Any, env: Mapping[str, Any]) -> list[str]:
    out = []
    for name, _ in _expr.names(node):
        v = env.get(name)
        if (v is None or (isinstance(v, float) and math.isnan(v))) and name not in out:
            out.append(name)
    return out


def _classify_env(env: dict[str, Any], regime: Regime,
                  memo: dict[str, Classification]) -> Classification:
    if regime.id in memo:
        return memo[regime.id]
    full = dict(env)
    for ref_name, ref_id in regime.refs.items():
        ref = _classify_env(env, regime.deps[ref_id], memo)
        full[ref_name] = (None if ref.consequence == Consequence.INDETERMINATE
                          else ref.consequence.value)
    result = None
    for rule in regime.rules:
        value = _expr.evaluate(rule.when, full)
        if value is None:
            unknown = ", ".join(_unknown_names(rule.when, full))
            result = Classification(
                regime_id=regime.id, consequence=Consequence.INDETERMINATE,
                eccn=rule.eccn, rule_index=rule.index, tariff_frac=0.0,
                revenue_share_frac=0.0,
                note=f"rule {rule.index} ({rule.when_text}) needs {unknown}, "
                     "unknown for this chip",
                matched=f"{regime.id} rule {rule.index}")
            break
        if not value:
            continue
        if rule.inherit is not None:
            sub = _classify_env(env, regime.deps[rule.inherit], memo)
            result = dataclasses.replace(
                sub, regime_id=regime.id, rule_index=rule.index,
                matched=f"{regime.id} rule {rule.index} > {sub.matched}")
            break
        tariff = rule.tariff_frac
        if rule.tariff_when is not None:
            tw = _expr.evaluate(rule.tariff_when, full)
            tariff = rule.tariff_frac if tw else 0.0
        result = Classification(
            regime_id=regime.id, consequence=Consequence(rule.consequence),
            eccn=rule.eccn, rule_index=rule.index, tariff_frac=tariff,
            revenue_share_frac=rule.revenue_share_frac, note=rule.note,
            matched=f"{regime.id} rule {rule.index}")
        break
    if result is None:
        result = Classification(
            regime_id=regime.id, consequence=Consequence.ALLOWED, eccn="",
            rule_index=0, tariff_frac=0.0, revenue_share_frac=0.0,
            note="no rule matched", matched=f"{regime.id} (no rule)")
    memo[regime.id] = result
    return result


def _inherited_effects(regime: Regime) -> list[Effect]:
    out: list[Effect] = list(regime.effects)
    for rule in regime.rules:
        if rule.inherit is not None:
            out += _inherited_effects(regime.deps[rule.inherit])
    return out


def classify(chip: ChipSpec, regime: Regime | str) -> Classification:
    """Classify one chip under one regime (hard, first matching rule wins).

    A rule whose condition is *unknown* (it needs, e.g., ``pd`` and the die area is
    unknown) and not decided by its other terms stops the evaluation with consequence
    ``indeterminate``. Effects are evaluated independently of the consequence.

    Args:
      chip: a single chip with concrete (non-traced) values.
      regime: a :class:`Regime` or a shipped regime id.

    Returns:
      the :class:`Classification`.
    """
    if isinstance(regime, str):
        regime = load_regime(regime)
    env = _chip_env(chip)
    result = _classify_env(env, regime, {})
    effects = []
    for effect in _inherited_effects(regime):
        if _expr.evaluate(effect.when, env) is True and effect.name not in effects:
            effects.append(effect.name)
    return dataclasses.replace(result, effects=tuple(effects))


def tpp_cap_units(chip: ChipSpec, regime: Regime) -> dict[str, float]:
    """Number of chips each TPP cap of ``regime`` (table ``tpp_caps``) allows.

    Returns:
      ``{cap name: cap_tpp / tpp(chip)}`` (e.g. the AI-diffusion country cap); empty if
      the regime has no ``[tables.tpp_caps]``.
    """
    chip_tpp = float(tpp(chip))
    caps = regime.tables.get("tpp_caps", {})
    return {name: float(value) / chip_tpp for name, value in caps.items()}


# ------------------------------------------------------------------ smooth versions
@struct.dataclass
class ChipQuantities:
    """What the rules look at, for one chip: numeric leaves + static labels.

    Attributes:
      tpp: TPP. pd: TPP per mm^2 (NaN if unknown). io_bidir_gbs: aggregate
      bidirectional I/O, GB/s. mem_bw_gbs: DRAM bandwidth, GB/s. year: year.
      datacenter, hbm, product, key, vendor, family, memory_type: static labels.
    """

    tpp: jax.Array | float
    pd: jax.Array | float
    io_bidir_gbs: jax.Array | float
    mem_bw_gbs: jax.Array | float
    year: jax.Array | float
    datacenter: bool = struct.field(pytree_node=False)
    hbm: bool = struct.field(pytree_node=False)
    product: str = struct.field(pytree_node=False)
    key: str = struct.field(pytree_node=False)
    vendor: str = struct.field(pytree_node=False)
    family: str = struct.field(pytree_node=False)
    memory_type: str = struct.field(pytree_node=False)


def chip_quantities(chip: ChipSpec) -> ChipQuantities:
    """The rule quantities of a chip (differentiable in the chip's leaves)."""
    return ChipQuantities(
        tpp=tpp(chip), pd=performance_density(chip),
        io_bidir_gbs=jnp.asarray(chip.io_bidir_bytes_per_s) / units.GIGA,
        mem_bw_gbs=jnp.asarray(chip.hbm_bytes_per_s) / units.GIGA,
        year=jnp.asarray(chip.year, dtype=float),
        datacenter=bool(chip.datacenter), hbm="HBM" in chip.memory_type.upper(),
        product=chip.name, key=chip.key, vendor=chip.vendor, family=chip.family,
        memory_type=chip.memory_type)


@struct.dataclass
class RegimeThresholds:
    """Every numeric threshold of a regime (and the regimes it refers to) as a leaf.

    ``values`` maps ``"<regime id>/rule <i>/<when|tariff_when>/<k>"`` (the k-th number
    compared against in that condition) to a scalar array.
    """

    values: dict[str, jax.Array]


def _all_regimes(regime: Regime) -> list[Regime]:
    return [regime] + [regime.deps[k] for k in sorted(regime.deps)]


def _threshold_consts(node: Any) -> list[_expr.Const]:
    out = []

    def walk(n: Any) -> None:
        if isinstance(n, _expr.Const) and n.leaf is not None:
            out.append(n)
        for child in _expr._children(n):
            walk(child)

    walk(node)
    return out


def regime_thresholds(regime: Regime) -> RegimeThresholds:
    """The thresholds of ``regime`` and its dependencies, at their file values."""
    values: dict[str, jax.Array] = {}
    for r in _all_regimes(regime):
        for rule in r.rules:
            for node in (rule.when, rule.tariff_when):
                if node is not None:
                    for const in _threshold_consts(node):
                        values[const.leaf] = jnp.asarray(const.value)
    return RegimeThresholds(values=values)


def _soft_ge(a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
    """Smooth indicator of a >= b: sigmoid of the relative margin / temperature.

    The margin (a - b) / ((|a| + |b|) / 2) is scale-free, so one temperature suits TPP,
    GB/s and PD alike. An unknown (NaN) operand gives 0.5 with a zero, finite gradient;
    a = b = 0 gives 0.5. a and b are first scaled by a power of two (exact: the same
    margin and gradient) so that the derivative of the ratio stays finite in float32
    at any magnitude.
    """
    bad = jnp.isnan(a) | jnp.isnan(b)
    a_safe = jnp.where(bad, 1.0, a)  # "double where": no NaN reaches the gradient
    b_safe = jnp.where(bad, 1.0, b)
    s = pow2_scale(jnp.maximum(jnp.abs(a_safe), jnp.abs(b_safe)))
    a_safe, b_safe = a_safe * s, b_safe * s
    scale = (jnp.abs(a_safe) + jnp.abs(b_safe)) / 2
    margin = (a_safe - b_safe) / jnp.where(scale > 0, scale, 1.0)  # a = b = 0: 0
    return jnp.where(bad, 0.5, jax.nn.sigmoid(margin / temperature))


class _Smooth:
    """Compiles rule conditions to smooth truth values in [0, 1]."""

    def __init__(self, q: ChipQuantities, thresholds: RegimeThresholds,
                 temperature: float) -> None:
        self.q = q
        self.th = thresholds.values
        self.t = temperature
        self.memo: dict[str, tuple[dict[str, jax.Array], jax.Array]] = {}
        self.regime: Regime | None = None

    # values are tagged: ("num", x), ("prob", p), ("str", s), ("list", [...]),
    # ("dist", {consequence: p})
    def value(self, node: Any, regime: Regime) -> tuple[str, Any]:
        if isinstance(node, _expr.Const):
            v = node.value
            if isinstance(v, bool):
                return ("prob", jnp.asarray(float(v)))
            if isinstance(v, str):
                return ("str", v)
            if node.leaf is not None and node.leaf in self.th:
                return ("num", self.th[node.leaf])
            return ("num", jnp.asarray(v))
        if isinstance(node, _expr.Name):
            if node.name in regime.refs:
                probs, _ = self.regime_probs(regime.deps[regime.refs[node.name]])
                return ("dist", probs)
            v = getattr(self.q, node.name)
            if node.name in _NUM_NAMES:
                return ("num", jnp.asarray(v))
            if isinstance(v, bool):
                return ("prob", jnp.asarray(float(v)))
            return ("str", v)
        if isinstance(node, _expr.ListExpr):
            return ("list", [self.value(i, regime) for i in node.items])
        if isinstance(node, _expr.Unary):
            _, x = self.value(node.operand, regime)
            return ("num", -x if node.op == "-" else x)
        if isinstance(node, _expr.BinOp):
            _, a = self.value(node.left, regime)
            _, b = self.value(node.right, regime)
            ops = {"+": jnp.add, "-": jnp.subtract, "*": jnp.multiply,
                   "/": lambda x, y: x / jnp.where(y == 0, tiny_like(y), y)}
            return ("num", ops[node.op](a, b))
        if isinstance(node, _expr.BoolOp):
            ps = [self.prob(o, regime) for o in node.operands]
            out = ps[0]
            for p in ps[1:]:
                out = out * p if node.op == "and" else 1 - (1 - out) * (1 - p)
            return ("prob", out)
        if isinstance(node, _expr.Not):
            return ("prob", 1 - self.prob(node.operand, regime))
        if isinstance(node, _expr.Compare):
            vals = [self.value(o, regime) for o in node.operands]
            out = jnp.asarray(1.0)
            for op, a, b in zip(node.ops, vals, vals[1:], strict=False):
                out = out * self.compare(op, a, b)
            return ("prob", out)
        if isinstance(node, _expr.In):
            left = self.value(node.left, regime)
            _, items = self.value(node.right, regime)
            miss = jnp.asarray(1.0)
            for item in items:
                miss = miss * (1 - self.compare("==", left, item))
            return ("prob", miss if node.negated else 1 - miss)
        raise TypeError(f"unsupported node {node!r}")  # pragma: no cover

    def compare(self, op: str, a: tuple[str, Any], b: tuple[str, Any]) -> jax.Array:
        (ka, va), (kb, vb) = a, b
        if ka == "num" and kb == "num":
            if op in (">", ">="):
                return _soft_ge(va, vb, self.t)
            if op in ("<", "<="):
                return _soft_ge(vb, va, self.t)
            eq = _soft_ge(va, vb, self.t) * _soft_ge(vb, va, self.t) * 4.0
            return eq if op == "==" else 1 - eq
        if ka == "dist" or kb == "dist":
            dist, s = (va, vb) if ka == "dist" else (vb, va)
            eq = dist.get(s, jnp.asarray(0.0))
            return eq if op == "==" else 1 - eq
        if ka == "prob" and kb == "prob":
            eq = va * vb + (1 - va) * (1 - vb)
            return eq if op == "==" else 1 - eq
        eq = jnp.asarray(float(va == vb))
        return eq if op == "==" else 1 - eq

    def prob(self, node: Any, regime: Regime) -> jax.Array:
        kind, v = self.value(node, regime)
        if kind != "prob":  # pragma: no cover - excluded by the load-time type check
            raise TypeError(f"expected a condition, got {kind}")
        return v

    def regime_probs(self, regime: Regime) -> tuple[dict[str, jax.Array], jax.Array]:
        """Probability of each consequence, and expected licence cost fraction."""
        if regime.id in self.memo:
            return self.memo[regime.id]
        probs = {c: jnp.asarray(0.0) for c in sorted(_RULE_CONSEQUENCES)}
        cost = jnp.asarray(0.0)
        remaining = jnp.asarray(1.0)
        for rule in regime.rules:
            m = self.prob(rule.when, regime)
            p = remaining * m
            if rule.inherit is not None:
                sub, sub_cost = self.regime_probs(regime.deps[rule.inherit])
                for c in probs:
                    probs[c] = probs[c] + p * sub[c]
                cost = cost + p * sub_cost
            else:
                probs[rule.consequence] = probs[rule.consequence] + p
                tariff_p = (jnp.asarray(1.0) if rule.tariff_when is None
                            else self.prob(rule.tariff_when, regime))
                cost = cost + p * (rule.revenue_share_frac
                                   + rule.tariff_frac * tariff_p)
            remaining = remaining * (1 - m)
        probs[Consequence.ALLOWED.value] = probs[Consequence.ALLOWED.value] + remaining
        self.memo[regime.id] = (probs, cost)
        return probs, cost


def _as_quantities(chip: ChipQuantities | ChipSpec) -> ChipQuantities:
    return chip_quantities(chip) if isinstance(chip, ChipSpec) else chip


def smooth_consequence_probs(
    chip: ChipQuantities | ChipSpec, regime: Regime, *,
    thresholds: RegimeThresholds | None = None, temperature: float = 0.05,
) -> dict[str, jax.Array]:
    """Smooth probability of each consequence (they sum to 1).

    Each numeric comparison becomes ``sigmoid(relative margin / temperature)``; ``and``
    a product, ``or`` ``1 - (1 - a)(1 - b)``, ``not`` ``1 - a``; string and flag
    conditions are exact 0/1. First-match-wins becomes
    ``P(rule i) = m_i * prod_{j<i} (1 - m_j)``; an ``inherit`` rule passes its weight to
    the other regime's distribution; a ``[refs]`` name compared with a consequence is
    that regime's probability of it. As ``temperature -> 0`` this tends to the hard
    classification wherever no quantity sits exactly on a threshold.

    Args:
      chip: the chip's rule quantities (or a ``ChipSpec``).
      regime: the regime.
      thresholds: threshold leaves (default: the file's values).
      temperature: relative width of the sigmoid (0.05 = 5 % of the threshold).
    """
    th = regime_thresholds(regime) if thresholds is None else thresholds
    probs, _ = _Smooth(_as_quantities(chip), th, temperature).regime_probs(regime)
    return probs


def smooth_allowed_frac(
    chip: ChipQuantities | ChipSpec, regime: Regime, *,
    thresholds: RegimeThresholds | None = None, temperature: float = 0.05,
) -> jax.Array:
    """Smooth degree (in [0, 1]) to which the chip may be obtained under ``regime``.

    ``1 - P(prohibited)``: licences, notification and "not applicable" count as
    obtainable (their cost is :func:`smooth_license_cost_frac`). Differentiable with
    respect to the chip quantities and to every threshold leaf.
    """
    probs = smooth_consequence_probs(chip, regime, thresholds=thresholds,
                                     temperature=temperature)
    return 1.0 - probs[Consequence.PROHIBITED.value]


def smooth_license_cost_frac(
    chip: ChipQuantities | ChipSpec, regime: Regime, *,
    thresholds: RegimeThresholds | None = None, temperature: float = 0.05,
) -> jax.Array:
    """Smooth expected tariff + revenue-share fraction of the chip's price.

    Sum over rules of P(rule) x (revenue_share_frac + tariff_frac x P(tariff_when)).
    """
    th = regime_thresholds(regime) if thresholds is None else thresholds
    _, cost = _Smooth(_as_quantities(chip), th, temperature).regime_probs(regime)
    return cost
