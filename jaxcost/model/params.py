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

import csv
import json
import math
import os
from dataclasses import fields
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcost.errors import DataError, ParamsError
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


def _read_priors(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """Read ``data/priors.csv``: name -> {value, transform, sigma}."""
    path = Path(path) if path is not None else priors_path()
    out: dict[str, dict] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for i, row in enumerate(reader, start=2):
            name = row.get("name", "")
            if name not in PARAM_NAMES:
                raise DataError(
                    f"unknown parameter '{name}', expected one of "
                    f"{', '.join(PARAM_NAMES)}",
                    file=str(path),
                    row=i,
                    column="name",
                )
            transform = row.get("transform", "")
            if transform not in _TRANSFORMS:
                raise DataError(
                    f"transform '{transform}' not in {_TRANSFORMS}",
                    file=str(path),
                    row=i,
                    column="transform",
                )
            for col in ("value", "prior_sigma_raw"):
                try:
                    v = float(row[col])
                except (TypeError, ValueError):
                    raise DataError(
                        f"expected a number, got {row.get(col)!r}",
                        file=str(path),
                        row=i,
                        column=col,
                    ) from None
                if not math.isfinite(v) or v <= 0:
                    raise DataError(
                        f"expected a positive finite number, got {v}",
                        file=str(path),
                        row=i,
                        column=col,
                    )
            if not row.get("source", "").strip():
                raise DataError("empty source", file=str(path), row=i, column="source")
            value = float(row["value"])
            if transform == "sigmoid" and value >= 1.0:
                raise DataError(
                    f"a fraction must lie in (0, 1), got {value}",
                    file=str(path),
                    row=i,
                    column="value",
                )
            if transform == "one_plus_softplus" and value <= 1.0:
                raise DataError(
                    f"expected a value > 1, got {value}",
                    file=str(path),
                    row=i,
                    column="value",
                )
            out[name] = {
                "value": value,
                "transform": transform,
                "sigma": float(row["prior_sigma_raw"]),
            }
    missing = [n for n in PARAM_NAMES if n not in out]
    if missing:
        raise DataError(
            f"missing rows for {', '.join(missing)}", file=str(path), column="name"
        )
    wrong = [n for n in PARAM_NAMES if out[n]["transform"] != _FIELD_TRANSFORM[n]]
    if wrong:
        raise DataError(
            f"transform of {', '.join(wrong)} must be "
            f"{[_FIELD_TRANSFORM[n] for n in wrong]}",
            file=str(path),
            column="transform",
        )
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
