"""Helpers shared by several test modules (tests import from here, never from each
other): a synthetic chip, noiseless synthetic kernel and collective rows generated with
the model, and :func:`assert_tree_allclose` over ``np.testing``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

from jaxcost import calibrate
from jaxcost.model.collectives import collective_time
from jaxcost.model.hardware import ChipSpec
from jaxcost.model.params import CostParams, physical
from jaxcost.model.roofline import op_time

#: The repository root (tests run the CLI and read ``data/`` from here).
REPO = Path(__file__).resolve().parent.parent


def assert_tree_allclose(a, b, *, rtol: float, atol: float) -> None:
    """Assert that two pytrees have the same structure and close leaves.

    Leaves are compared with ``np.testing.assert_allclose`` (``|a - b| <= atol +
    rtol * |b|``, NaN equal to NaN); the message names the leaf's path.
    """
    ta, tb = jax.tree.structure(a), jax.tree.structure(b)
    assert ta == tb, f"tree structures differ:\n{ta}\n{tb}"
    leaves_a = jax.tree_util.tree_leaves_with_path(a)
    leaves_b = jax.tree.leaves(b)
    for (path, x), y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_allclose(
            np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
            err_msg=f"leaf {jax.tree_util.keystr(path)}")


def make_chip(**kw) -> ChipSpec:
    """A synthetic chip with round numbers (not a published part)."""
    base = dict(name="Test chip", key="TEST", vendor="test", family="testfam",
                datacenter=True, peak_flop_per_s_bf16=200e12, peak_flop_per_s_fp8=0.0,
                peak_op_per_s_int8=0.0, peak_flop_per_s_fp32=20e12,
                peak_flop_per_s_fp64=0.0, peak_flop_per_s_fp4=0.0,
                hbm_capacity_bytes=64e9, hbm_bytes_per_s=1e12,
                scaleup_bytes_per_s=200e9, scaleup_domain_size=8.0,
                scaleout_bytes_per_s=25e9, io_bidir_bytes_per_s=0.0,
                die_area_m2=8e-4, tdp_w=400.0, price_usd=1e4, year=2022.0)
    base.update(kw)
    return ChipSpec(**base)


def synthetic_batches(truth: CostParams, chips: Mapping[str, ChipSpec],
                      keys: Sequence[str]):
    """Noiseless kernel and collective batches generated with the model under ``truth``.

    For each chip in ``keys``: square bf16 GEMMs of side 2^8 ... 2^14, one HBM stream,
    and all-reduces of 2^12 ... 2^30 bytes on 8 ranks in one node and 16 ranks over
    two nodes. Returns ``(kernels, collectives)`` with the fields
    :func:`jaxcost.calibrate.build_fit_data` reads.
    """
    sizes = 2.0 ** np.arange(8, 15)
    k_rows, c_rows = [], []
    for key in keys:
        chip = chips[key]
        pp = physical(truth, chip)
        for s in sizes:
            flop, nb = 2 * s**3, 3 * s * s * 2.0
            t = float(op_time(pp, chip, flop, nb, 0))
            k_rows.append((key, 0, flop, flop / t, np.nan, s))
        t = float(op_time(pp, chip, 0.0, calibrate.HBM_STREAM_BYTES, 2))
        k_rows.append((key, 4, np.nan, np.nan, calibrate.HBM_STREAM_BYTES / t, np.nan))
        for b in 2.0 ** np.arange(12, 32, 2):
            for ranks, nodes in ((8.0, 1.0), (16.0, 2.0)):  # one node; two nodes
                c_rows.append((key, b, float(collective_time(
                    2, pp, chip, b, ranks, ranks_per_domain=ranks / nodes)),
                    ranks, nodes))
    kern = SimpleNamespace(
        row_ids=tuple(f"K{i}" for i in range(len(k_rows))),
        chip_keys=tuple(r[0] for r in k_rows),
        groups=tuple(f"g{r[0]}" for r in k_rows),
        kind=np.array([r[1] for r in k_rows]),
        precision=np.full(len(k_rows), 3),
        flop=np.array([r[2] for r in k_rows]),
        flop_per_s=np.array([r[3] for r in k_rows]),
        bytes_per_s=np.array([r[4] for r in k_rows]),
        time_s=np.array([r[2] / r[3] for r in k_rows]),
        m=np.array([r[5] for r in k_rows]), n=np.array([r[5] for r in k_rows]),
        k=np.array([r[5] for r in k_rows]))
    coll = SimpleNamespace(
        row_ids=tuple(f"C{i}" for i in range(len(c_rows))),
        chip_keys=tuple(r[0] for r in c_rows),
        groups=tuple(f"c{r[0]}" for r in c_rows),
        kind=np.zeros(len(c_rows), int),
        num_ranks=np.array([r[3] for r in c_rows]),
        num_nodes=np.array([r[4] for r in c_rows]),
        message_bytes=np.array([r[1] for r in c_rows]),
        time_s=np.array([r[2] for r in c_rows]))
    return kern, coll
