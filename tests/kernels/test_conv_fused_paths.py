"""The fused conv engine's code paths against the NumPy loop recursion of test_conv_nt.

The engine keeps a pair's pixel-pair covariance in the block layout (p1, q1, p2, q2) and
takes a conv's shift sums as whole-block shifts (rows) and masked in-block shifts
(columns), with special loops for three taps, any tap count, strides, taps that fall
outside the image and overlapping pooling windows; the pairs are split over numba threads.
Each case below reaches one of these paths; the reference loops over every pixel pair.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from test_conv_nt import DENSE, ERF, RELU, conv, numpy_kernel, spec_of_dicts

from dltheory._fastmath import acos_rational

GAP = {"kind": "gap"}
PATH_CASES = {
    # three 3 x 3 'same' convs: three block shifts, three masked shifts in one loop
    "three_taps_gap": ((3, 6, 5), [conv(4, (3, 3)), RELU, conv(3, (3, 3)), RELU, GAP, DENSE]),
    # five column taps and one row tap: the any-count masked loop; a tap count of 1 and 5
    "wide_window": ((2, 5, 6), [conv(3, (1, 5)), RELU, conv(2, (5, 1)), ERF, GAP, DENSE]),
    # dilation 5 on 4 x 4 'same': the outer taps fall outside the image (zero masks)
    "taps_outside": (
        (1, 4, 4),
        [conv(2, (3, 3)), RELU, conv(2, (3, 3), dilation=(5, 5)), GAP, DENSE],
    ),
    # stride 2 on the columns after the first conv: the strided in-block loop
    "column_stride": (
        (2, 5, 7),
        [conv(3, (2, 2)), RELU, conv(2, (3, 3), stride=(1, 2)), GAP, DENSE],
    ),
    # overlapping average pools with padding, then a conv on the pooled layout
    "pool_then_conv": (
        (2, 5, 5),
        [
            conv(3, (3, 3)),
            RELU,
            {"kind": "avgpool", "window": (2, 3), "stride": (1, 1), "padding": "same"},
            conv(2, (3, 3), padding="valid"),
            RELU,
            GAP,
            DENSE,
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(PATH_CASES))
def test_paths_match_numpy_recursion(name):
    shape, layers = PATH_CASES[name]
    rng = np.random.default_rng(100 + sorted(PATH_CASES).index(name))
    x = rng.standard_normal((3, *shape))
    nngp, ntk = numpy_kernel(layers, x, x)
    k = spec_of_dicts(layers).kernel(torch.from_numpy(x), backend="fused")
    # float64 recursions of the same sums in other orders: 1e-13 relative (as test_conv_nt).
    np.testing.assert_allclose(k.nngp.numpy(), nngp, rtol=0, atol=1e-13 * np.abs(nngp).max())
    np.testing.assert_allclose(k.ntk.numpy(), ntk, rtol=0, atol=1e-13 * np.abs(ntk).max())


def test_threads_split_pairs_without_changing_them():
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one numba thread")
    shape, layers = PATH_CASES["three_taps_gap"]
    x = torch.from_numpy(np.random.default_rng(7).standard_normal((9, *shape)))
    spec = spec_of_dicts(layers)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = spec.kernel(x, backend="fused")
        numba.set_num_threads(2)
        two = spec.kernel(x, backend="fused")
    finally:
        numba.set_num_threads(before)
    # each pair runs alone through the same loops: bit for bit
    assert torch.equal(one.nngp, two.nngp) and torch.equal(one.ntk, two.ntk)


def test_symmetric_triangle_equals_the_cross_kernel():
    shape, layers = PATH_CASES["three_taps_gap"]
    x = torch.from_numpy(np.random.default_rng(8).standard_normal((5, *shape)))
    spec = spec_of_dicts(layers)
    own, cross = spec.kernel(x, backend="fused"), spec.kernel(x, x, backend="fused")
    # the same pair loops; only the order of the NTK's and NNGP's own (a, a) pass differs
    np.testing.assert_allclose(own.nngp.numpy(), cross.nngp.numpy(), rtol=1e-14, atol=0)
    np.testing.assert_allclose(own.ntk.numpy(), cross.ntk.numpy(), rtol=1e-14, atol=0)


def test_acos_rational_against_mpmath():
    mpmath.mp.dps = 40
    near = np.logspace(-16, -0.3, 60)
    xs = np.concatenate(
        [
            np.linspace(-1, 1, 801),
            1 - near,
            -1 + near,
            np.linspace(0.499, 0.501, 41),
            np.linspace(-0.501, -0.499, 41),
            [np.nextafter(0.5, 1), np.nextafter(-0.5, -1), 0.0, -0.0],
        ]
    )
    worst = 0.0
    for x in xs:
        exact = mpmath.acos(mpmath.mpf(float(x)))
        got = acos_rational(float(x))
        worst = max(worst, float(abs(got - exact)) / math.ulp(float(exact)))
    # fdlibm's rational is good to 2^-58.75; the square root and the pi / 2, pi splits
    # add a rounding each: 2 ulp (measured: 1.1).
    assert worst <= 2.0
    assert acos_rational(1.0) == 0.0 and acos_rational(-1.0) == math.pi
