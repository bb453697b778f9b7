"""Vectorisable scalar asin / acos for compiled (numba) loops.

libm's acos costs ~18 ns a call and blocks SIMD vectorisation of a loop; these
are branch-free polynomials, accurate to ~3e-16 relative (tested against mpmath):

    asin(s) = s sum_n C(2n, n) / (4^n (2n + 1)) s^(2n),  |s| <= 1/2 (Taylor series),
    acos(x) = pi/2 - asin(x)                 for |x| <= 1/2,
    acos(x) = 2 asin(sqrt((1 - x) / 2))      for x > 1/2 (1 - x is exact there),
    acos(x) = pi - acos(-x)                  for x < 0,
    asin(x) = pi/2 - 2 asin(sqrt((1 - |x|) / 2)) for |x| > 1/2, odd.

``acos_rational`` uses the same reductions with the degree (6, 4) rational minimax
approximation of fdlibm's e_acos.c (Sun Microsystems 1993; error below 2^-58.75 on
z = s^2 <= 1/4): asin(s) = s + s R(s^2). One division replaces the 25-term series, so a
loop that calls it vectorises to fewer instructions (tested against mpmath to ~2 ulp).
"""

from __future__ import annotations

import math
from math import comb

import numpy as np

__all__ = ["ASIN_COEFFICIENTS", "acos", "acos_rational", "asin"]

ASIN_COEFFICIENTS = tuple(comb(2 * n, n) / (4**n * (2 * n + 1)) for n in range(25))
_C = np.array(ASIN_COEFFICIENTS)  # a global array is a compile-time constant in numba


def _asin_small(s: float) -> float:
    t = s * s
    acc = _C[24]
    for n in range(23, -1, -1):
        acc = acc * t + _C[n]
    return s * acc


def acos(x: float) -> float:
    """arccos(x) for x in [-1, 1]."""
    a = abs(x)
    big = a > 0.5
    s = math.sqrt((1 - a) / 2) if big else a
    p = _asin_small(s)
    r = 2 * p if big else math.pi / 2 - p
    return r if x >= 0 else math.pi - r


def asin(x: float) -> float:
    """arcsin(x) for x in [-1, 1] (relative accuracy kept near 0)."""
    a = abs(x)
    big = a > 0.5
    s = math.sqrt((1 - a) / 2) if big else a
    p = _asin_small(s)
    r = math.pi / 2 - 2 * p if big else p
    return r if x >= 0 else -r


# acos by the minimax rational approximation of fdlibm's e_acos.c (Sun Microsystems,
# 1993; the algorithm of FreeBSD's and musl's libm): asin(x) = x + x R(x^2) on
# |x| <= 1/2 with R(z) = z P(z) / Q(z), P of degree 5 and Q of degree 4, error
# below 2^-58.75 there. Branch-free here (both sides computed, one selected) and with
# one division, so a loop over it vectorises; ~2.3e-16 relative against mpmath.
_PS = (
    1.66666666666666657415e-01,
    -3.25565818622400915405e-01,
    2.01212532134862925881e-01,
    -4.00555345006794114027e-02,
    7.91534994289814532176e-04,
    3.47933107596021167570e-05,
)
_QS = (
    -2.40339491173441421878e00,
    2.02094576023350569471e00,
    -6.88283971605453293030e-01,
    7.70381505559019352791e-02,
)
_PIO2_HI = 1.57079632679489655800e00  # pi/2 = _PIO2_HI + _PIO2_LO to ~1e-33
_PIO2_LO = 6.12323399573676603587e-17


def acos_rational(x: float) -> float:
    """arccos(x) for x in [-1, 1] (fdlibm's rational approximation, branch-free):

    acos(x) = pi/2 - (x + x R(x^2))            for |x| < 1/2,
    acos(x) = 2 (s + s R(z)), s = sqrt(z)      for x >= 1/2, z = (1 - x) / 2 (exact),
    acos(x) = pi - 2 (s + s R(z))              for x <= -1/2, z = (1 + x) / 2.
    """
    a = abs(x)
    big = a >= 0.5
    z = (1.0 - a) * 0.5 if big else a * a
    s = math.sqrt(z)
    p = z * (_PS[0] + z * (_PS[1] + z * (_PS[2] + z * (_PS[3] + z * (_PS[4] + z * _PS[5])))))
    q = 1.0 + z * (_QS[0] + z * (_QS[1] + z * (_QS[2] + z * _QS[3])))
    r = p / q
    small = _PIO2_HI - (x - (_PIO2_LO - x * r))
    w = 2.0 * (s + s * r)
    large = w if x > 0 else 2.0 * _PIO2_HI - (w - 2.0 * _PIO2_LO)
    return large if big else small


try:
    from numba import njit

    _asin_small = njit(inline="always")(_asin_small)
    acos = njit(inline="always")(acos)
    asin = njit(inline="always")(asin)
    acos_rational = njit(inline="always", error_model="numpy")(acos_rational)
except ImportError:  # pragma: no cover
    pass
