"""Error tables and interval coverage of step-time predictions.

APE = |T_pred / T_obs − 1| per row; tables give the median and mean per chip and
overall; coverage is the share of held-out rows inside the predicted interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxcost.calibrate.rows import FitData

__all__ = [
    "ErrorRow",
    "error_table",
    "format_error_table",
    "CoverageRow",
    "interval_coverage",
    "format_coverage_table",
]


@dataclasses.dataclass(frozen=True)
class ErrorRow:
    """Absolute percentage errors of step time over a set of training rows."""

    level: str  # "overall", "family", "chip", "group"
    key: str
    n: int
    median_ape: float
    mean_ape: float


def _ape(step_log_res: np.ndarray) -> np.ndarray:
    return np.abs(np.expm1(step_log_res))


def error_table(step_log_residuals: np.ndarray, data: FitData) -> tuple[ErrorRow, ...]:
    """Median and mean APE of step time: overall, per family, per chip, per group."""
    ape = _ape(np.asarray(step_log_residuals, dtype=float))
    lab = dict(dict(data.labels)["runs"])
    rows = [
        ErrorRow(
            "overall", "all", int(ape.size), float(np.median(ape)), float(np.mean(ape))
        )
    ]
    for level, col in (("family", "family"), ("chip", "chip"), ("group", "group")):
        keys = np.asarray(lab[col], dtype=object)
        for k in sorted(set(lab[col])):
            a = ape[keys == k]
            rows.append(
                ErrorRow(level, k, int(a.size), float(np.median(a)), float(np.mean(a)))
            )
    return tuple(rows)


def format_error_table(rows: Sequence[ErrorRow], title: str) -> str:
    """Plain-text table of :class:`ErrorRow` (APE in percent)."""
    lines = [title, f"{'level':<8} {'key':<28} {'n':>4} {'median%':>8} {'mean%':>8}"]
    for r in rows:
        lines.append(
            f"{r.level:<8} {r.key:<28} {r.n:>4} {100 * r.median_ape:>8.1f} "
            f"{100 * r.mean_ape:>8.1f}"
        )
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class CoverageRow:
    """Held-out coverage of the step-time interval over a set of training rows."""

    level: str  # "overall", "family", "chip"
    key: str
    n: int
    coverage: float  # fraction of rows whose measurement lies inside their interval


def interval_coverage(
    step_log_residuals: np.ndarray,
    data: FitData,
    interval: tuple[float, float] = (0.05, 0.95),
) -> tuple[CoverageRow, ...]:
    """How often a measured step time falls inside the residual interval, held out.

    ``jaxcost predict`` widens a prediction T by the ``interval`` quantiles of the
    stored out-of-fold log residuals e = log(T_pred / T_obs): the measurement is
    inside iff -e_i lies between them. Here row i is judged against the quantiles of
    the residuals of the *other* groups only (its own group left out, as a new source
    would be), centred on its out-of-fold prediction. The bootstrap spread that
    ``predict`` adds widens the interval further, so the figures are a lower bound
    for the shipped intervals.

    Returns:
      ``CoverageRow`` overall, per family and per chip (nominal: interval[1] -
      interval[0]).
    """
    r = np.asarray(step_log_residuals, dtype=float)
    lab = dict(dict(data.labels)["runs"])
    groups = np.asarray(lab["group"], dtype=object)
    inside = np.zeros(r.size, dtype=bool)
    for g in sorted(set(groups)):
        sel = groups == g
        pool = r[~sel & np.isfinite(r)]
        if pool.size == 0:
            continue
        lo, hi = np.quantile(pool, interval)
        inside[sel] = (-r[sel] >= lo) & (-r[sel] <= hi)
    rows = [CoverageRow("overall", "all", int(r.size), float(np.mean(inside)))]
    for level in ("family", "chip"):
        keys = np.asarray(lab[level], dtype=object)
        for k in sorted(set(lab[level])):
            rows.append(
                CoverageRow(
                    level, k, int(np.sum(keys == k)), float(np.mean(inside[keys == k]))
                )
            )
    return tuple(rows)


def format_coverage_table(rows: Sequence[CoverageRow], title: str) -> str:
    """Plain-text table of :class:`CoverageRow` (coverage in percent)."""
    lines = [title, f"{'level':<8} {'key':<28} {'n':>4} {'covered%':>9}"]
    for r in rows:
        lines.append(f"{r.level:<8} {r.key:<28} {r.n:>4} {100 * r.coverage:>9.1f}")
    return "\n".join(lines)
