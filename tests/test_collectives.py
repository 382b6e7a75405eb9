"""Tests of collectives: ideal-limit closed forms, two-level algorithm, conversions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import make_chip
from jax.test_util import check_grads

from jaxcost.model.collectives import (
    Collective,
    all_gather_time,
    all_reduce_time,
    all_to_all_time,
    bus_bandwidth_factor,
    collective_time,
    nccl_bus_bandwidth,
    ranks_per_domain,
    reduce_scatter_time,
    send_recv_time,
    time_from_bus_bandwidth,
)
from jaxcost.model.params import default_params, physical

W_UP, W_OUT = 200e9, 25e9


def ideal_pp():
    """Efficiencies -> 1, latencies -> 0, no size saturation."""
    pp = physical(default_params(), make_chip())
    return pp.replace(scaleup_bw_eff=1.0, scaleout_bw_eff=1.0, a2a_bw_eff=1.0,
                      fused_a2a_bw_eff=1.0,
                      scaleup_latency_s=0.0, scaleout_latency_s=0.0,
                      coll_half_bytes=0.0)


@pytest.mark.parametrize("n", [2.0, 4.0, 8.0])
def test_ideal_ring_within_domain(n):
    chip, pp, v = make_chip(), ideal_pp(), 1e9
    ag = all_gather_time(pp, chip, v, n)
    np.testing.assert_allclose(ag, v / W_UP * (n - 1) / n, rtol=1e-12)
    np.testing.assert_allclose(reduce_scatter_time(pp, chip, v, n), ag, rtol=1e-12)
    np.testing.assert_allclose(all_reduce_time(pp, chip, v, n), 2 * ag, rtol=1e-12)
    np.testing.assert_allclose(all_to_all_time(pp, chip, v, n),
                               v / W_UP * (n - 1) / n, rtol=1e-12)


def test_fused_dispatcher_runs_links_at_once():
    # 32 ranks, 8 per domain: the NCCL all-to-all adds the scale-up and scale-out
    # times, a fused dispatcher takes (about) the larger one; never slower
    chip, pp, v = make_chip(), ideal_pp(), 8e9
    t_up, t_out = 7 / 32 * v / W_UP, 24 / 32 * v / W_OUT
    seq = all_to_all_time(pp, chip, v, 32.0)
    fused = all_to_all_time(pp, chip, v, 32.0, fused=1.0)
    assert max(t_up, t_out) <= float(fused) <= float(seq)
    np.testing.assert_allclose(fused, max(t_up, t_out), rtol=0.1)
    # within one domain there is a single link: both equal
    np.testing.assert_allclose(all_to_all_time(pp, chip, v, 8.0, fused=1.0),
                               all_to_all_time(pp, chip, v, 8.0), rtol=1e-12)


def test_fused_dispatcher_sends_a_row_once_per_domain():
    # top-8 copies over 4 domains of 8 ranks: a fused dispatcher sends each row to the
    # 4·(1 - (3/4)^8)/8 = 0.45 share of domains its copies go to; the NCCL all-to-all
    # and one copy per row are unchanged
    chip, pp, v = make_chip(), ideal_pp(), 8e9
    t_out = 24 / 32 * v / W_OUT  # scale-out dominates (t_up is 7/32·v/W_UP)
    share = 4 * (1 - 0.75 ** 8) / 8
    fused8 = all_to_all_time(pp, chip, v, 32.0, fused=1.0, copies_per_row=8.0)
    np.testing.assert_allclose(fused8, share * t_out, rtol=0.02)
    np.testing.assert_allclose(all_to_all_time(pp, chip, v, 32.0, copies_per_row=8.0),
                               all_to_all_time(pp, chip, v, 32.0), rtol=1e-12)
    np.testing.assert_allclose(
        all_to_all_time(pp, chip, v, 32.0, fused=1.0, copies_per_row=1.0),
        all_to_all_time(pp, chip, v, 32.0, fused=1.0), rtol=1e-12)
    # more copies per row never cost more, and the gradient in the copies is finite,
    # one domain included
    for n in (8.0, 32.0):
        g = jax.grad(lambda q, n=n: all_to_all_time(pp, chip, v, n, fused=1.0,
                                                    copies_per_row=q))(4.0)
        assert np.isfinite(g) and g <= 0


def test_ideal_two_level_and_flat_scaleout():
    chip, pp, v = make_chip(), ideal_pp(), 8e9
    # 32 ranks, 8 per domain, 4 domains
    ag = all_gather_time(pp, chip, v, 32.0)
    expect = 7 / 8 * v / W_UP + 3 / 4 * v / (8 * W_OUT)
    np.testing.assert_allclose(ag, expect, rtol=1e-12)
    np.testing.assert_allclose(
        all_reduce_time(pp, chip, v, 32.0), 2 * expect, rtol=1e-12
    )
    # one rank per domain: flat ring over the NICs
    flat = all_gather_time(pp, chip, v, 4.0, ranks_per_domain=1.0)
    np.testing.assert_allclose(flat, 3 / 4 * v / W_OUT, rtol=1e-12)
    a2a = all_to_all_time(pp, chip, v, 32.0)
    np.testing.assert_allclose(a2a, 7 / 32 * v / W_UP + 24 / 32 * v / W_OUT, rtol=1e-12)
    np.testing.assert_allclose(send_recv_time(pp, chip, v, cross_domain=1.0), v / W_OUT,
                               rtol=1e-12)


def test_group_of_one_costs_nothing_and_latency_counts():
    chip = make_chip()
    pp = physical(default_params(), chip)
    for f in (all_gather_time, reduce_scatter_time, all_reduce_time, all_to_all_time):
        assert f(pp, chip, 1e9, 1.0) == 0.0
    # a tiny message costs about the latency of 2(n-1) steps for all-reduce
    t = all_reduce_time(pp, chip, 0.0, 8.0)
    np.testing.assert_allclose(t, 14 * pp.scaleup_latency_s, rtol=1e-12)


def test_ranks_per_domain_megatron_order():
    np.testing.assert_allclose(ranks_per_domain(8.0, 1.0, 8.0), 8.0)
    np.testing.assert_allclose(ranks_per_domain(16.0, 2.0, 8.0), 4.0)
    np.testing.assert_allclose(ranks_per_domain(16.0, 8.0, 8.0), 1.0)
    np.testing.assert_allclose(ranks_per_domain(2.0, 1.0, 8.0), 2.0)


def test_dispatcher_static_and_traced_codes_agree():
    chip = make_chip()
    pp = physical(default_params(), chip)
    fns = {
        Collective.ALL_GATHER: all_gather_time,
        Collective.REDUCE_SCATTER: reduce_scatter_time,
        Collective.ALL_REDUCE: all_reduce_time,
        Collective.ALL_TO_ALL: all_to_all_time,
    }
    codes = jnp.array([int(k) for k in Collective])
    traced = jax.jit(jax.vmap(lambda c: collective_time(c, pp, chip, 3e8, 16.0)))(codes)
    for i, kind in enumerate(Collective):
        static = collective_time(kind, pp, chip, 3e8, 16.0)
        np.testing.assert_allclose(traced[i], static, rtol=1e-12)
        if kind in fns:
            np.testing.assert_allclose(
                static, fns[kind](pp, chip, 3e8, 16.0), rtol=1e-12
            )
    np.testing.assert_allclose(
        traced[4], send_recv_time(pp, chip, 3e8, cross_domain=1.0), rtol=1e-12
    )


def test_bus_bandwidth_conversions():
    n, v, t = 8.0, 1e9, 1e-2
    np.testing.assert_allclose(bus_bandwidth_factor(Collective.ALL_REDUCE, n), 1.75)
    np.testing.assert_allclose(bus_bandwidth_factor(Collective.ALL_GATHER, n), 0.875)
    np.testing.assert_allclose(bus_bandwidth_factor(Collective.SEND_RECV, n), 1.0)
    bb = nccl_bus_bandwidth(Collective.ALL_REDUCE, v, t, n)
    np.testing.assert_allclose(bb, 1.75e11, rtol=1e-12)
    np.testing.assert_allclose(
        time_from_bus_bandwidth(Collective.ALL_REDUCE, v, bb, n), t, rtol=1e-12
    )
    # in the ideal limit all-reduce busbw equals the link bandwidth (nccl-tests meaning)
    chip, pp = make_chip(), ideal_pp()
    tt = all_reduce_time(pp, chip, v, n)
    np.testing.assert_allclose(
        nccl_bus_bandwidth(Collective.ALL_REDUCE, v, tt, n), W_UP, rtol=1e-12
    )


def test_monotone_in_bandwidth_and_grads_finite():
    chip = make_chip()
    pp = physical(default_params(), chip)

    # n is an argument of one compiled function (not differentiated), and the
    # gradient is taken in all three arguments as check_grads does: one compilation
    # of each program serves every n
    @jax.jit
    def f(log_up, log_out, log_bytes, n):
        c = chip.replace(scaleup_bytes_per_s=W_UP * jnp.exp(log_up),
                         scaleout_bytes_per_s=W_OUT * jnp.exp(log_out))
        return (all_reduce_time(pp, c, jnp.exp(log_bytes), n)
                + all_to_all_time(pp, c, jnp.exp(log_bytes), n))

    # the group size is a count: at the domain boundary (n = 8) the two-level split
    # has a kink in n, so gradients are checked w.r.t. bandwidths and bytes there
    for n in (4.0, 8.0, 24.0):

        def at_n(log_up, log_out, log_bytes, n=n):
            return f(log_up, log_out, log_bytes, n)

        check_grads(at_n, (0.0, 0.0, np.log(1e8)), order=1, modes=["rev"])
        g = jax.grad(at_n, argnums=(0, 1, 2))(0.0, 0.0, np.log(1e8))
        assert g[0] <= 0 and g[1] <= 0


def test_no_scaleup_fabric_uses_scaleout():
    chip = make_chip(scaleup_bytes_per_s=0.0)
    pp = ideal_pp()
    np.testing.assert_allclose(all_gather_time(pp, chip, 1e9, 4.0), 0.75e9 / W_OUT,
                               rtol=1e-12)
