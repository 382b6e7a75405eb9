"""Fitted cost parameters: ``CostParams`` (learnable, unconstrained) and
``PhysicalParams``.

``CostParams`` holds only learnable leaves, in unconstrained ("raw") space, in three
levels: a global ``RawParams`` record, per-family offsets and per-chip offsets (dicts of
``RawParams`` keyed by ``ChipSpec.family`` and ``ChipSpec.key``). For one chip,

    raw = global + family[chip.family] + chip[chip.key]        (missing key: offset 0)

so a chip without data (H20, H200, Ascend 910C, ...) borrows from its family and from
the global prior, and is predicted from its specs. :func:`physical` maps ``raw`` to
constrained values: efficiencies and fractions via ``sigmoid``, latencies and fixed
overheads via ``softplus``, sizes via ``exp``, the roofline sharpness via
``1 + softplus``.

Default (prior) values and their sources are in ``data/priors.csv``; :func:`log_prior`
is Gaussian on the raw values: global around the defaults, offsets around 0, with
per-chip offsets held tighter than family offsets (hierarchical pooling).

Symbols: e (efficiency, 0-1), x_half (half-saturation size), alpha (latency, s).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import ParamsError
from jaxcost.io import schema
from jaxcost.io.atomic import atomic_write_text
from jaxcost.io.paths import data_dir
from jaxcost.model.hardware import ChipSpec

__all__ = [
    "PARAMS_FORMAT_VERSION",
    "FAMILY_SIGMA_SCALE",
    "CHIP_SIGMA_SCALE",
    "PhysicalParams",
    "RawParams",
    "CostParams",
    "PARAM_NAMES",
    "PRIOR_COLUMNS",
    "priors_path",
    "zero_offsets",
    "default_params",
    "prior_sigmas",
    "to_physical",
    "raw_for_chip",
    "physical",
    "with_offsets",
    "log_prior",
    "save_params",
    "load_params",
]

#: Version of the parameters JSON format written by :func:`save_params`.
PARAMS_FORMAT_VERSION = 1
_FORMAT_NAME = "jaxcost-params"

#: Prior standard deviation of a family offset, relative to the global raw sigma.
FAMILY_SIGMA_SCALE = 0.5
#: Prior standard deviation of a per-chip offset, relative to the global raw sigma
#: (tighter than the family: a chip deviates less from its family than a family from
#: the global mean).
CHIP_SIGMA_SCALE = 0.25


@struct.dataclass
class _ParamFields:
    """The cost-parameter fields, shared by the physical and the raw records."""

    mm_eff_max: jax.Array
    mm_half_flop: jax.Array
    attn_eff_max: jax.Array
    attn_half_flop: jax.Array
    hbm_eff_max: jax.Array
    hbm_half_bytes: jax.Array
    roofline_sharpness: jax.Array
    scaleup_latency_s: jax.Array
    scaleup_bw_eff: jax.Array
    scaleout_latency_s: jax.Array
    scaleout_bw_eff: jax.Array
    coll_half_bytes: jax.Array
    a2a_bw_eff: jax.Array
    fused_a2a_bw_eff: jax.Array
    tp_overlap_frac: jax.Array
    tp_pipelined_overlap_frac: jax.Array
    cp_overlap_frac: jax.Array
    ep_overlap_frac: jax.Array
    pp_overlap_frac: jax.Array
    dp_overlap_frac: jax.Array
    dp_bucketed_overlap_frac: jax.Array
    layer_overhead_s: jax.Array
    moe_layer_overhead_s: jax.Array
    optimizer_eff: jax.Array
    overhead_frac: jax.Array


@struct.dataclass
class PhysicalParams(_ParamFields):
    """Constrained cost parameters of one chip (or a batch: leaves of shape ``(n,)``).

    Attributes:
      mm_eff_max: plateau fraction of peak FLOP/s reached by large matmuls.
      mm_half_flop: matmul FLOP count at which efficiency is half the plateau, FLOP.
      attn_eff_max: plateau fraction of peak reached by the attention core.
      attn_half_flop: attention FLOP count at half the plateau, FLOP.
      hbm_eff_max: plateau fraction of HBM bandwidth reached by memory-bound kernels.
      hbm_half_bytes: bytes moved at which bandwidth is half the plateau, bytes.
      roofline_sharpness: p of the p-norm between compute and memory time (1 = sum,
        inf = max).
      scaleup_latency_s: latency per algorithm step on the scale-up fabric, s.
      scaleup_bw_eff: fraction of the scale-up bandwidth reached by collectives.
      scaleout_latency_s: latency per algorithm step on the scale-out network, s.
      scaleout_bw_eff: fraction of the scale-out bandwidth reached by collectives.
      coll_half_bytes: collective buffer size at which the bandwidth efficiency is half
        its plateau, bytes (e(V) = e_max V / (V + V_half)).
      a2a_bw_eff: extra efficiency factor of all-to-all over ring collectives.
      fused_a2a_bw_eff: the same for a fused expert dispatcher (scale-up and
        scale-out links driven at once).
      tp_overlap_frac, cp_overlap_frac, ep_overlap_frac, pp_overlap_frac,
        dp_overlap_frac: fraction of each axis' communication hidden under compute
        (TP: when its collectives run between the GEMMs, ``plan.tp_overlap`` = 0).
      tp_pipelined_overlap_frac: fraction of TP communication hidden when it is
        chunked and pipelined with the GEMMs (``plan.tp_overlap`` = 1).
      dp_bucketed_overlap_frac: fraction of the gradient reduction hidden when the
        framework launches it bucket by bucket during the backward pass
        (``plan.dp_overlap`` = 1; ``dp_overlap_frac`` otherwise).
      layer_overhead_s: fixed cost per layer, per micro-batch, per pass, s.
      moe_layer_overhead_s: extra fixed cost per MoE layer, per micro-batch, per pass,
        s: the router, permutation and per-expert kernels a dropless MoE block
        launches eagerly, and the device-to-host synchronisation of the per-expert
        token counts that sizes its all-to-all.
      optimizer_eff: fraction of HBM bandwidth reached by the optimizer step.
      overhead_frac: non-modelled share added to the step (data loading, logging).
    """


@struct.dataclass
class RawParams(_ParamFields):
    """The fields of :class:`PhysicalParams` in unconstrained space (or as offsets)."""


@struct.dataclass
class CostParams:
    """Learnable cost parameters, unconstrained, hierarchical.

    Attributes:
      global_raw: global raw values (:class:`RawParams`).
      family: family key -> raw offset record (missing = 0).
      chip: chip key -> raw offset record (missing = 0).
    """

    global_raw: RawParams
    family: dict[str, RawParams]
    chip: dict[str, RawParams]


#: Field names, in order.
PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RawParams))

_TRANSFORMS = ("sigmoid", "softplus", "exp", "one_plus_softplus")


def _softplus(x):
    return jnp.logaddexp(x, 0.0)


def _forward(transform: str, raw):
    if transform == "sigmoid":
        return jax.nn.sigmoid(raw)
    if transform == "softplus":
        return _softplus(raw)
    if transform == "exp":
        return jnp.exp(raw)
    return 1.0 + _softplus(raw)


def _inverse(transform: str, value: float) -> float:
    if transform == "sigmoid":
        return math.log(value) - math.log1p(-value)
    if transform == "softplus":
        return value + math.log(-math.expm1(-value))
    if transform == "exp":
        return math.log(value)
    v = value - 1.0
    return v + math.log(-math.expm1(-v))


def priors_path() -> Path:
    """The shipped priors table, ``data/priors.csv`` (resolved when called)."""
    return data_dir() / "priors.csv"


#: The schema of ``data/priors.csv``: one row per cost parameter (every field of
#: :class:`RawParams` exactly once), its default in physical units and the prior's
#: standard deviation in raw (unconstrained) space.
PRIOR_COLUMNS: tuple[schema.Column, ...] = (
    schema.Column(
        "name",
        schema.one_of(*PARAM_NAMES),
        required=True,
        present=True,
        doc="the cost parameter (a field of RawParams)",
    ),
    schema.Column(
        "value",
        schema.number(positive=True),
        required=True,
        present=True,
        doc="default, physical units (fraction in (0, 1), s, FLOP, bytes, ...)",
    ),
    schema.Column("unit", schema.text, doc="unit of value (documentation)"),
    schema.Column(
        "transform",
        schema.one_of(*_TRANSFORMS),
        required=True,
        present=True,
        doc="raw -> physical map; must be the field's (sigmoid, softplus, exp, "
        "one_plus_softplus)",
    ),
    schema.Column(
        "prior_sigma_raw",
        schema.number(positive=True),
        required=True,
        present=True,
        doc="prior standard deviation in raw space (> 0)",
    ),
    schema.Column(
        "source", schema.text, required=True, present=True, doc="URL or DOI"
    ),
    schema.Column("source_locator", schema.text, doc="table, figure or page"),
    schema.Column("kind", schema.text, doc="vendor_spec, measured or estimated"),
    schema.Column("notes", schema.text, doc="free text"),
)


def _read_priors(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read ``data/priors.csv`` (:data:`PRIOR_COLUMNS`): name -> {value, transform,
    sigma}. Every problem of the file is collected; the first one raises."""
    path = Path(path) if path is not None else priors_path()
    table = schema.read_table(path, PRIOR_COLUMNS, unique=("name",))
    problems = table.all_problems()
    out: dict[str, dict] = {}
    for i, v in enumerate(table.values):
        if table.problems[i]:
            continue
        name, value, transform = v["name"], v["value"], v["transform"]
        column, message = None, None
        if transform != _FIELD_TRANSFORM[name]:
            column = "transform"
            message = (
                f"transform '{transform}' of {name}; expected "
                f"'{_FIELD_TRANSFORM[name]}'"
            )
        elif transform == "sigmoid" and value >= 1.0:
            column = "value"
            message = f"value {value:g} is not a fraction; expected 0 < value < 1"
        elif transform == "one_plus_softplus" and value <= 1.0:
            column = "value"
            message = f"value {value:g} must be > 1; expected a value > 1"
        if message is not None:
            problems.append(
                schema.Problem(table.file, i + 1, column, message, table.lines[i])
            )
        out[name] = {
            "value": value,
            "transform": transform,
            "sigma": v["prior_sigma_raw"],
        }
    missing = [n for n in PARAM_NAMES if n not in out]
    if missing and not problems:
        problems.append(
            schema.Problem(
                table.file,
                None,
                "name",
                f"missing rows for {', '.join(missing)}; expected one row per "
                "cost parameter",
            )
        )
    schema.raise_problems(problems)
    return out


#: The constraint of each field (structural: part of the model, not data).
_FIELD_TRANSFORM: dict[str, str] = {
    "mm_eff_max": "sigmoid",
    "mm_half_flop": "exp",
    "attn_eff_max": "sigmoid",
    "attn_half_flop": "exp",
    "hbm_eff_max": "sigmoid",
    "hbm_half_bytes": "exp",
    "roofline_sharpness": "one_plus_softplus",
    "scaleup_latency_s": "softplus",
    "scaleup_bw_eff": "sigmoid",
    "scaleout_latency_s": "softplus",
    "scaleout_bw_eff": "sigmoid",
    "coll_half_bytes": "exp",
    "a2a_bw_eff": "sigmoid",
    "fused_a2a_bw_eff": "sigmoid",
    "tp_overlap_frac": "sigmoid",
    "tp_pipelined_overlap_frac": "sigmoid",
    "cp_overlap_frac": "sigmoid",
    "ep_overlap_frac": "sigmoid",
    "pp_overlap_frac": "sigmoid",
    "dp_overlap_frac": "sigmoid",
    "dp_bucketed_overlap_frac": "sigmoid",
    "layer_overhead_s": "softplus",
    "moe_layer_overhead_s": "softplus",
    "optimizer_eff": "sigmoid",
    "overhead_frac": "sigmoid",
}


def zero_offsets() -> RawParams:
    """A :class:`RawParams` of zeros (a neutral family or chip offset)."""
    return RawParams(**{n: jnp.zeros(()) for n in PARAM_NAMES})


def default_params(priors_file: str | os.PathLike | None = None) -> CostParams:
    """Hand-set prior parameters from ``data/priors.csv`` (every value has a source).

    Returns:
      ``CostParams`` with the prior values as global raw values and no offsets.
    """
    pri = _read_priors(priors_file)
    raw = RawParams(
        **{
            n: jnp.asarray(_inverse(pri[n]["transform"], pri[n]["value"]))
            for n in PARAM_NAMES
        }
    )
    return CostParams(global_raw=raw, family={}, chip={})


def prior_sigmas(priors_file: str | os.PathLike | None = None) -> RawParams:
    """Prior standard deviations of the global raw values (from ``data/priors.csv``)."""
    pri = _read_priors(priors_file)
    return RawParams(**{n: jnp.asarray(pri[n]["sigma"]) for n in PARAM_NAMES})


def to_physical(raw: RawParams) -> PhysicalParams:
    """Map raw (unconstrained) values to constrained physical values."""
    return PhysicalParams(
        **{n: _forward(_FIELD_TRANSFORM[n], getattr(raw, n)) for n in PARAM_NAMES}
    )


def raw_for_chip(params: CostParams, chip: ChipSpec) -> RawParams:
    """Global + family offset + chip offset (static dict lookups; missing = 0)."""
    raw = params.global_raw
    fam = params.family.get(chip.family)
    if fam is not None:
        raw = jax.tree.map(jnp.add, raw, fam)
    off = params.chip.get(chip.key)
    if off is not None:
        raw = jax.tree.map(jnp.add, raw, off)
    return raw


def physical(params: CostParams, chip: ChipSpec) -> PhysicalParams:
    """Constrained parameters of one chip type.

    The lookups use the static ``chip.family`` / ``chip.key``; for a stacked batch of
    different chips, call this per chip and stack the results.
    """
    return to_physical(raw_for_chip(params, chip))


def with_offsets(
    params: CostParams, *, families: tuple[str, ...] = (), chips: tuple[str, ...] = ()
) -> CostParams:
    """Register zero offsets for new families / chip keys (existing ones are kept).

    A registered offset becomes a learnable leaf; its prior pulls it to 0.
    """
    fam = dict(params.family)
    for f in families:
        fam.setdefault(f, zero_offsets())
    chp = dict(params.chip)
    for c in chips:
        chp.setdefault(c, zero_offsets())
    return params.replace(family=fam, chip=chp)


def log_prior(
    params: CostParams,
    *,
    defaults: CostParams | None = None,
    sigmas: RawParams | None = None,
) -> jax.Array:
    """Gaussian log prior (up to a constant) on the raw values.

    Global raw values ~ N(default, sigma); family offsets ~ N(0, FAMILY_SIGMA_SCALE *
    sigma); chip offsets ~ N(0, CHIP_SIGMA_SCALE * sigma).
    """
    defaults = default_params() if defaults is None else defaults
    sigmas = prior_sigmas() if sigmas is None else sigmas

    def gauss(x, mu, s):
        return -0.5 * jnp.sum(((x - mu) / s) ** 2)

    total = sum(
        gauss(
            getattr(params.global_raw, n),
            getattr(defaults.global_raw, n),
            getattr(sigmas, n),
        )
        for n in PARAM_NAMES
    )
    for off in params.family.values():
        total = total + sum(
            gauss(getattr(off, n), 0.0, FAMILY_SIGMA_SCALE * getattr(sigmas, n))
            for n in PARAM_NAMES
        )
    for off in params.chip.values():
        total = total + sum(
            gauss(getattr(off, n), 0.0, CHIP_SIGMA_SCALE * getattr(sigmas, n))
            for n in PARAM_NAMES
        )
    return jnp.asarray(total)


def _record_to_json(raw: RawParams) -> dict[str, float]:
    return {n: float(np.asarray(getattr(raw, n))) for n in PARAM_NAMES}


def save_params(path: str | os.PathLike, params: CostParams, provenance: dict) -> None:
    """Write parameters (raw values) and provenance as JSON, atomically.

    Raises:
      ParamsError: a value is not finite (nothing is written).
    """
    doc = {
        "format": _FORMAT_NAME,
        "version": PARAMS_FORMAT_VERSION,
        "space": "unconstrained",
        "transforms": dict(_FIELD_TRANSFORM),
        "provenance": provenance,
        "global": _record_to_json(params.global_raw),
        "family": {k: _record_to_json(v) for k, v in sorted(params.family.items())},
        "chip": {k: _record_to_json(v) for k, v in sorted(params.chip.items())},
    }
    for section in ("family", "chip"):
        for k, rec in doc[section].items():
            _check_finite(rec, path, f"{section}.{k}")
    _check_finite(doc["global"], path, "global")
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")


def _check_finite(rec: dict, path, where: str) -> None:
    for n, v in rec.items():
        try:
            ok = (
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
            )
        except OverflowError:  # an integer too large for a float
            ok = False
        if not ok:
            raise ParamsError(
                f"expected a finite number, got {v!r}",
                file=str(path),
                row=f"key '{where}.{n}'",
            )


def _record_from_json(rec, path, where: str) -> RawParams:
    if not isinstance(rec, dict):
        raise ParamsError(
            "expected an object of parameter values",
            file=str(path),
            row=f"key '{where}'",
        )
    unknown = sorted(set(rec) - set(PARAM_NAMES))
    if unknown:
        raise ParamsError(
            f"unknown parameter '{unknown[0]}'",
            file=str(path),
            row=f"key '{where}.{unknown[0]}'",
        )
    missing = [n for n in PARAM_NAMES if n not in rec]
    if missing:
        raise ParamsError(
            "missing parameter", file=str(path), row=f"key '{where}.{missing[0]}'"
        )
    _check_finite(rec, path, where)
    return RawParams(**{n: jnp.asarray(float(rec[n])) for n in PARAM_NAMES})


def load_params(path: str | os.PathLike) -> tuple[CostParams, dict]:
    """Read a parameters JSON file written by :func:`save_params`.

    Returns:
      ``(params, provenance)``.

    Raises:
      ParamsError: unreadable JSON, wrong format or version, unknown / missing keys,
        non-finite values; the message names the file and the key.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ParamsError(
            f"cannot read parameters JSON ({err})", file=str(path)
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT_NAME:
        raise ParamsError(
            f"expected format '{_FORMAT_NAME}'", file=str(path), row="key 'format'"
        )
    if doc.get("version") != PARAMS_FORMAT_VERSION:
        raise ParamsError(
            f"expected version {PARAMS_FORMAT_VERSION}, got {doc.get('version')!r}",
            file=str(path),
            row="key 'version'",
        )
    for section in ("family", "chip", "provenance"):
        if not isinstance(doc.get(section) or {}, dict):
            raise ParamsError(
                "expected an object", file=str(path), row=f"key '{section}'"
            )
    glob = _record_from_json(doc.get("global"), path, "global")
    fam = {
        str(k): _record_from_json(v, path, f"family.{k}")
        for k, v in (doc.get("family") or {}).items()
    }
    chp = {
        str(k): _record_from_json(v, path, f"chip.{k}")
        for k, v in (doc.get("chip") or {}).items()
    }
    prov = doc.get("provenance") or {}
    return CostParams(global_raw=glob, family=fam, chip=chp), prov
