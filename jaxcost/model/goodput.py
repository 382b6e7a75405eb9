"""Goodput: the fraction of wall-clock time that a training job makes progress.

This module owns the failure/checkpoint/restart model that turns failure-free compute
time into expected wall-clock time. A synchronous job on N chips stops whenever any
chip fails, so with a per-chip failure rate lambda (failures per chip-second) the
cluster fails at rate Lambda = N * lambda (MTBF M = 1 / Lambda). The job writes a
checkpoint (cost delta seconds) after every tau seconds of work; a failure loses the
work since the last checkpoint and costs a restart of R seconds. With tau at Young's
optimum, tau = sqrt(2 delta M), Daly's expected wall time for exponential failures
gives

    goodput = tau / (M e^{R/M} (e^{(tau + delta)/M} - 1))
            = e^{-Lambda R} * h(s) / (1 + sqrt(Lambda delta / 2)),
    s = sqrt(2 Lambda delta) + Lambda delta,    h(s) = s / (e^s - 1),

and ``time_to_train = compute_time / goodput``. The first-order expansion is the
familiar waste ``1 - goodput ~ sqrt(2 delta / M) + R / M``.

Public symbols: :class:`GoodputParams`, :func:`load_goodput_params`,
:func:`goodput_frac`, :func:`optimal_checkpoint_interval_s`,
:func:`time_to_train_with_goodput_s`, :func:`goodput_variants`,
:func:`goodput_frac_range`. Parameter values and their sources are in
``data/goodput.csv``.

Symbols: N chips, lambda failure rate per chip-second, Lambda = N lambda cluster
failure rate (1/s), M = 1/Lambda cluster MTBF (s), delta checkpoint write time (s),
R restart time (s), tau checkpoint interval (s of work between checkpoints).

References:
  J. W. Young, "A first order approximation to the optimum checkpoint interval",
  Commun. ACM 17(9), 1974. J. T. Daly, "A higher order estimate of the optimum
  checkpoint interval for restart dumps", Future Gener. Comput. Syst. 22(3), 2006
  (expected wall time for exponential failures, which may also strike during
  restarts and checkpoint writes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxcost.errors import DataError
from jaxcost.io import schema
from jaxcost.io.paths import data_dir
from jaxcost.model.numerics import clamp_tiny, tiny_like

__all__ = [
    "GOODPUT_COLUMNS",
    "GoodputParams",
    "load_goodput_params",
    "goodput_frac",
    "optimal_checkpoint_interval_s",
    "time_to_train_with_goodput_s",
    "goodput_variants",
    "goodput_frac_range",
]

_SERIES_BELOW = 1e-4  # h(s) uses its Taylor series below this (error ~ s^4 / 720)

#: The CSV rows that make up a parameter set (the variant suffix is ``__<variant>``).
_FIELDS = ("failure_rate_per_chip_s", "restart_s", "checkpoint_write_s")
_UNITS = {
    "failure_rate_per_chip_s": "per_chip_s",
    "restart_s": "s",
    "checkpoint_write_s": "s",
}
_KINDS = ("measured", "estimated")

#: The schema of ``data/goodput.csv``: one named value per row. The rows
#: ``failure_rate_per_chip_s``, ``restart_s`` and ``checkpoint_write_s`` are the
#: default set, ``<field>__<variant>`` the variants; other names are observations
#: used by tests. Every column must be in the header.
GOODPUT_COLUMNS: tuple[schema.Column, ...] = (
    schema.Column(
        "name",
        schema.text,
        required=True,
        present=True,
        doc="<field> or <field>__<variant> (unique)",
    ),
    schema.Column(
        "value",
        schema.number(nonnegative=True),
        required=True,
        present=True,
        doc="finite, >= 0, in the unit of the 'unit' column",
    ),
    schema.Column(
        "unit",
        schema.text,
        present=True,
        doc="per_chip_s (failures per chip-second) or s; checked for the fields",
    ),
    *schema.provenance_columns(
        _KINDS,
        locator_doc="section, table or figure of the source",
        kind_doc="measured or estimated",
    ),
    schema.Column("notes", schema.text, present=True, doc="derivation, caveats"),
)


@struct.dataclass
class GoodputParams:
    """Failure, restart and checkpoint costs of a training job.

    Every field is a JAX leaf (may be batched with ``vmap`` or differentiated).
    Build it directly or with :func:`load_goodput_params`; there is no validation
    here (see the style guide): values must be >= 0, and the failure rate > 0 for a
    finite optimal checkpoint interval.

    Attributes:
      failure_rate_per_chip_s: failures per chip per second (1/s), every cause that
        stops the whole job, shape ().
      restart_s: time from a failure to training again, s (detection, replacement,
        relaunch, checkpoint load); failures may also strike during it.
      checkpoint_write_s: time training is blocked per checkpoint, s.
    """

    failure_rate_per_chip_s: jax.Array
    restart_s: jax.Array
    checkpoint_write_s: jax.Array


def _default_path() -> Path:
    """The shipped ``data/goodput.csv`` (resolved when called)."""
    return data_dir() / "goodput.csv"


def _read_rows(path: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """All rows of a goodput CSV, validated (:data:`GOODPUT_COLUMNS`), as
    ``{name: (data row, values)}``; every problem collected, the first raised."""
    table = schema.read_table(path, GOODPUT_COLUMNS, unique=("name",))
    problems = table.all_problems()
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, v in enumerate(table.values):
        if table.problems[i]:
            continue
        base = v["name"].split("__", 1)[0]
        unit = v["unit"] or ""
        if base in _UNITS and unit != _UNITS[base]:
            problems.append(
                schema.Problem(
                    table.file,
                    i + 1,
                    "unit",
                    f"unit '{unit}' of {base}; expected '{_UNITS[base]}'",
                    table.lines[i],
                )
            )
        rows[v["name"]] = (i + 1, v)
    schema.raise_problems(problems)
    return rows


def load_goodput_params(path: str | os.PathLike | None = None, *,
                        variant: str = "default") -> GoodputParams:
    """Load one parameter set from a goodput CSV (default ``data/goodput.csv``).

    The ``"default"`` set is the rows named ``failure_rate_per_chip_s``,
    ``restart_s`` and ``checkpoint_write_s``. Another variant ``v`` takes each field
    from the row ``<field>__v`` where one exists and from the default row otherwise
    (e.g. ``variant="opt175b"`` uses the OPT-175B failure rate and restart time with
    the default checkpoint write time). Rows with other names (observations used by
    tests) are validated but not returned.

    Args:
      path: CSV with the columns of :data:`GOODPUT_COLUMNS`; default the shipped
        ``data/goodput.csv`` (:func:`jaxcost.io.paths.data_dir`, resolved when
        called).
      variant: ``"default"`` or a suffix used in the file (``"opt175b"``, ...).

    Returns:
      the parameters as 0-d arrays (float64 when x64 is enabled, else float32).

    Raises:
      DataError: unreadable file, missing column, duplicate name, empty source, a
        value that is not a finite non-negative number, a wrong unit, a missing
        default row, or an unknown variant; the message names file, row and column.
    """
    path = Path(path) if path is not None else _default_path()
    file = str(path)
    rows = _read_rows(path)
    for field in _FIELDS:
        if field not in rows:
            raise DataError(f"missing default row {field!r}", file=file,
                            column="name")
    names = list(_FIELDS)
    if variant != "default":
        suffix = f"__{variant}"
        if not any(f"{field}{suffix}" in rows for field in _FIELDS):
            known = sorted({name.split("__", 1)[1] for name in rows
                            if "__" in name and name.split("__", 1)[0] in _FIELDS})
            raise DataError(f"unknown variant {variant!r}, expected 'default' or one "
                            f"of {', '.join(known)}", file=file, column="name")
        names = [f"{field}{suffix}" if f"{field}{suffix}" in rows else field
                 for field in _FIELDS]
    values = {
        field: jnp.asarray(rows[name][1]["value"])
        for field, name in zip(_FIELDS, names, strict=True)
    }
    return GoodputParams(**values)


def _cluster_failure_rate(params: GoodputParams,
                          num_chips: jax.typing.ArrayLike) -> jax.Array:
    """Lambda = N * lambda, failures per second of the whole job."""
    return jnp.asarray(num_chips) * jnp.asarray(params.failure_rate_per_chip_s)


def _safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt(x) for x >= 0 with a finite gradient at 0 (0 there).

    Below the dtype's guard (``numerics.tiny_like``) the value and gradient are 0;
    the double ``where`` (through ``clamp_tiny``) keeps the unused branch's infinite
    derivative out of the gradient in float32 and float64.
    """
    return jnp.where(x > tiny_like(x), jnp.sqrt(clamp_tiny(x)), 0.0)


def _x_over_expm1(s: jax.Array) -> jax.Array:
    """h(s) = s / (e^s - 1) for s >= 0; h(0) = 1; stable for large s."""
    big = s > _SERIES_BELOW
    s_big = jnp.where(big, s, 1.0)  # "double where": no 0/0 in the unused branch
    exact = s_big * jnp.exp(-s_big) / (-jnp.expm1(-s_big))
    series = 1.0 - s / 2.0 + s * s / 12.0
    return jnp.where(big, exact, series)


def optimal_checkpoint_interval_s(params: GoodputParams,
                                  num_chips: jax.typing.ArrayLike) -> jax.Array:
    """Young's optimal checkpoint interval tau = sqrt(2 delta M), in s.

    M = 1 / (N lambda) is the cluster MTBF. tau is the work between two checkpoint
    writes (not counting the write itself). A zero failure rate is clamped to the
    dtype's guard (``numerics.tiny_like``: about 1e-19 /s in float32, 1.5e-154 /s in
    float64), which gives a huge but finite interval; the gradient is finite
    everywhere in both dtypes (0 at delta = 0, and 0 with respect to a clamped rate).

    Args:
      params: failure rate, restart and checkpoint costs (scalar leaves).
      num_chips: N, number of chips in the job (>= 1; a float is accepted).

    Returns:
      the interval in s.

    References:
      Young (1974), Commun. ACM 17(9); Daly (2006), FGCS 22(3) (the same interval
      is Daly's optimum to first order in delta / M).
    """
    rate = _cluster_failure_rate(params, num_chips)
    delta = jnp.asarray(params.checkpoint_write_s)
    return _safe_sqrt(2.0 * delta / clamp_tiny(rate))


def goodput_frac(params: GoodputParams, num_chips: jax.typing.ArrayLike) -> jax.Array:
    """Fraction of wall-clock time spent on useful training, in (0, 1].

    With Lambda = N lambda, delta the checkpoint write time, R the restart time and
    the checkpoint interval at Young's optimum tau = sqrt(2 delta / Lambda), Daly's
    expected wall time per unit of work for exponential failures gives

        goodput = Lambda tau e^{-Lambda R} / (e^{Lambda (tau + delta)} - 1)
                = e^{-Lambda R} h(s) / (1 + sqrt(Lambda delta / 2)),

    where s = sqrt(2 Lambda delta) + Lambda delta and h(s) = s / (e^s - 1). It counts
    the checkpoint writes, the work lost since the last checkpoint (about tau / 2
    per failure), the restart, and failures during restarts and writes. It is 1 at
    Lambda = 0 or delta = R = 0, strictly decreasing in N, lambda, delta and R,
    smooth for N >= 1, and has finite gradients in float32 and float64. To first
    order, 1 - goodput ~ sqrt(2 delta Lambda) + Lambda R.

    Args:
      params: failure rate (1/(chip s)), restart time (s), checkpoint write time
        (s); scalar leaves (``vmap`` to batch).
      num_chips: N, number of chips in the synchronous job (>= 1).

    Returns:
      the goodput fraction (dimensionless), dtype of the inputs.

    References:
      Daly (2006), "A higher order estimate of the optimum checkpoint interval for
      restart dumps", FGCS 22(3), expected wall time
      T_w = M e^{R/M} (e^{(tau + delta)/M} - 1) T_s / tau; Young (1974), Commun. ACM
      17(9), tau_opt = sqrt(2 delta M).
    """
    rate = _cluster_failure_rate(params, num_chips)
    delta = jnp.asarray(params.checkpoint_write_s)
    restart = jnp.asarray(params.restart_s)
    x = rate * delta  # Lambda delta, dimensionless
    root = _safe_sqrt(x / 2.0)  # sqrt(Lambda delta / 2) = delta / tau
    s = 2.0 * root + x  # Lambda (tau + delta)
    return jnp.exp(-rate * restart) * _x_over_expm1(s) / (1.0 + root)


def time_to_train_with_goodput_s(compute_s: jax.typing.ArrayLike,
                                 params: GoodputParams,
                                 num_chips: jax.typing.ArrayLike) -> jax.Array:
    """Expected wall-clock time to finish ``compute_s`` of failure-free work, in s.

        time_to_train = compute_s / goodput_frac(params, num_chips)

    Args:
      compute_s: failure-free training time on ``num_chips`` chips, s.
      params: failure, restart and checkpoint costs.
      num_chips: N, number of chips in the job (>= 1).

    Returns:
      the expected wall-clock time in s.

    References:
      Daly (2006), FGCS 22(3); see :func:`goodput_frac`.
    """
    return jnp.asarray(compute_s) / goodput_frac(params, num_chips)


def goodput_variants(path: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Names of the parameter sets in a goodput CSV: ``"default"``, then every
    variant suffix ``v`` of a row named ``<field>__v`` (sorted).

    Args:
      path: the goodput CSV (default ``data/goodput.csv``).

    Returns:
      the names accepted by :func:`load_goodput_params`'s ``variant``.

    Raises:
      DataError: as :func:`load_goodput_params`.
    """
    path = Path(path) if path is not None else _default_path()
    rows = _read_rows(path)
    suffixes = sorted({name.split("__", 1)[1] for name in rows
                       if "__" in name and name.split("__", 1)[0] in _FIELDS})
    return ("default", *suffixes)


def goodput_frac_range(num_chips: float, path: str | os.PathLike | None = None
                       ) -> tuple[float, float, float]:
    """(lowest, default, highest) goodput of a job on ``num_chips`` chips over every
    sourced parameter set of the goodput CSV (:func:`goodput_variants`).

    The sets are the published failure rates, restart and checkpoint costs (Llama 3,
    OPT-175B, BLOOM, MegaScale, Kokolis et al.), each completed by the default rows;
    their spread is the range used for the interval of a time to train,
    ``compute_s / hi`` to ``compute_s / lo``. Runs eagerly on concrete values (a
    reporting helper, not a traced cost function).

    Args:
      num_chips: N, chips in the synchronous job.
      path: the goodput CSV (default ``data/goodput.csv``).

    Returns:
      ``(lo, default, hi)`` goodput fractions, dimensionless.

    Raises:
      DataError: as :func:`load_goodput_params`.
    """
    values = {v: float(goodput_frac(load_goodput_params(path, variant=v), num_chips))
              for v in goodput_variants(path)}
    return min(values.values()), values["default"], max(values.values())
