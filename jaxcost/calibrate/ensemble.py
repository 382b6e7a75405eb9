"""Bootstrap ensembles as JSON (one list per parameter leaf), and back."""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from jaxcost.errors import ParamsError
from jaxcost.model.params import (
    PARAM_NAMES,
    CostParams,
    RawParams,
)

__all__ = [
    "ensemble_to_json",
    "ensemble_from_json",
]


def ensemble_to_json(params: CostParams) -> dict:
    """A batched ``CostParams`` (leading axis B) as JSON lists (raw values)."""

    def rec(r: RawParams) -> dict:
        return {
            n: [float(f"{v:.9g}") for v in np.asarray(getattr(r, n)).ravel()]
            for n in PARAM_NAMES
        }

    return {
        "global": rec(params.global_raw),
        "family": {k: rec(v) for k, v in sorted(params.family.items())},
        "chip": {k: rec(v) for k, v in sorted(params.chip.items())},
    }


def ensemble_from_json(doc: Mapping, *, file: str = "<params>") -> CostParams:
    """Inverse of :func:`ensemble_to_json`.

    Raises:
      ParamsError: malformed lists (unequal lengths, non-finite values).
    """

    def rec(d, where):
        if not isinstance(d, Mapping) or set(d) != set(PARAM_NAMES):
            raise ParamsError(
                "expected one list per parameter", file=file, row=f"key '{where}'"
            )
        vals = {}
        for n in PARAM_NAMES:
            a = np.asarray(d[n], dtype=float)
            if a.ndim != 1 or not np.all(np.isfinite(a)):
                raise ParamsError(
                    "expected a list of finite numbers",
                    file=file,
                    row=f"key '{where}.{n}'",
                )
            vals[n] = jnp.asarray(a)
        sizes = {v.shape[0] for v in vals.values()}
        if len(sizes) != 1:
            raise ParamsError(
                "lists of unequal length", file=file, row=f"key '{where}'"
            )
        return RawParams(**vals)

    try:
        glob = rec(doc["global"], "bootstrap.global")
        fam = {
            k: rec(v, f"bootstrap.family.{k}") for k, v in doc.get("family", {}).items()
        }
        chp = {k: rec(v, f"bootstrap.chip.{k}") for k, v in doc.get("chip", {}).items()}
    except (KeyError, TypeError, ValueError):
        raise ParamsError(
            "malformed bootstrap ensemble", file=file, row="key 'bootstrap'"
        ) from None
    return CostParams(global_raw=glob, family=fam, chip=chp)
