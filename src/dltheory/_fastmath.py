"""Vectorisable scalar asin / acos for compiled (numba) loops.

libm's acos costs ~18 ns a call and blocks SIMD vectorisation of a loop; these
are branch-free polynomials, accurate to ~3e-16 relative (tested against mpmath):

    asin(s) = s sum_n C(2n, n) / (4^n (2n + 1)) s^(2n),  |s| <= 1/2 (Taylor series),
    acos(x) = pi/2 - asin(x)                 for |x| <= 1/2,
    acos(x) = 2 asin(sqrt((1 - x) / 2))      for x > 1/2 (1 - x is exact there),
    acos(x) = pi - acos(-x)                  for x < 0,
    asin(x) = pi/2 - 2 asin(sqrt((1 - |x|) / 2)) for |x| > 1/2, odd.
"""

from __future__ import annotations

import math
from math import comb

import numpy as np

__all__ = ["ASIN_COEFFICIENTS", "acos", "asin"]

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


try:
    from numba import njit

    _asin_small = njit(inline="always")(_asin_small)
    acos = njit(inline="always")(acos)
    asin = njit(inline="always")(asin)
except ImportError:  # pragma: no cover
    pass
