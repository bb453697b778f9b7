"""log G^{m,0}_{0,m}(x | b_1, ..., b_m): the Meijer G-function of products of Gamma variables.

The one Meijer G-function the deep linear network needs (Hanin & Zlokapa 2023,
Theorem 1) is the Mellin convolution of m Gamma densities (DLMF 16.17.1),

    G^{m,0}_{0,m}(x | b) = (1 / 2 pi i) int_{c - i inf}^{c + i inf} prod_j Gamma(b_j + z) x^{-z} dz,

for any c > -min_j b_j. Its Mellin transform is prod_j Gamma(b_j + z), so a product
G of independent Gamma(k_j, 1) variables has E[G^r] = prod_j Gamma(k_j + r) / Gamma(k_j)
and density G^{m,0}_{0,m}(x | k - 1) / prod_j Gamma(k_j).

Evaluation, in log space for large x, m and b: Phi(z) = sum_j log Gamma(b_j + z) - z log x
is convex on the real axis; at its minimum c (sum_j psi(b_j + c) = log x) the
vertical line is the steepest-descent direction, so

    G = exp(Phi(c)) (1 / pi) int_0^inf Re exp(Phi(c + i y) - Phi(c)) dy,

an integral of width ~ Phi''(c)^{-1/2} with no cancellation. The increment
Phi(c + i y) - Phi(c) is summed from Taylor remainders log Gamma(w + i y) - log Gamma(w)
- i y psi(w), each from Stirling's series (after shifting w >= 20 by the recurrence),
so huge parameters (b ~ 1e6) and arguments (log x ~ 1e5) keep their digits.
``mpmath.meijerg`` (hypergeometric series, slow and limited to small parameters) is
the independent reference the tests compare with.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.special as sp

from .._checks import check_positive, check_real, message

__all__ = ["log_gamma_ratio", "log_meijer_g", "log_meijer_g_normalised"]


def _finite_log(fn):
    """Refuse arguments whose log G is beyond float64 (G under- or overflows there)."""

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        out = fn(*args, **kwargs)
        if not math.isfinite(out):
            raise ValueError(
                message(
                    fn.__code__.co_varnames[0],
                    "such that log G is a float64",
                    args[0] if args else kwargs,
                    "G underflows: the argument is too far in the tail",
                )
            )
        return out

    return checked


_SHIFT = 20.0  # the truncated series below are exact to ~1e-18 for |z| >= 20
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
# Stirling: log Gamma(z) = (z - 1/2) log z - z + log(2 pi) / 2 + sum_k a_k z^(1-2k), and
# psi(w) = log w - 1/(2w) + sum_k c_k w^(-2k), with Bernoulli numbers (DLMF 5.11.1, 5.11.2).
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360)
_PSI_TAIL = (-1 / 12, 1 / 120, -1 / 252, 1 / 240, -1 / 132, 691 / 32760)


def _log1p_imag(t: np.ndarray) -> np.ndarray:
    """log(1 + i t) for real t, accurate for tiny t (NumPy's complex log1p is not)."""
    return 0.5 * np.log1p(t * t) + 1j * np.arctan(t)


def _remainder(w: float, y: np.ndarray) -> np.ndarray:
    """log Gamma(w + i y) - log Gamma(w) - i y psi(w), accurate in absolute terms."""
    iy = 1j * y
    total = np.zeros_like(iy)
    shift = max(0, math.ceil(_SHIFT - w))
    # Recurrence log Gamma(z) = log Gamma(z + N) - sum_k log(z + k), termwise remainders.
    for k in range(shift):
        total -= _log1p_imag(y / (w + k)) - iy / (w + k)
    w = w + shift
    u = _log1p_imag(y / w)  # log1p(i y / w)
    z = w + iy
    stirling = _stirling_series(1 / z) - _stirling_series(1 / w)
    psi_tail = iy / (2 * w) - iy * _psi_series(1.0 / w)
    return total + (z - 0.5) * u - iy + psi_tail + stirling


def _stirling_series(inv: Any) -> Any:
    """sum_j a_j inv^(2j+1) by repeated multiplication (no overflow of z^-k at huge |z|)."""
    inv2 = inv * inv
    total, power = 0.0 * inv, inv
    for a in _STIRLING:
        total = total + a * power
        power = power * inv2
    return total


def _psi_series(inv: float) -> float:
    """sum_k c_k inv^(2k) of psi's asymptotic series, by repeated multiplication."""
    inv2 = inv * inv
    total, power = 0.0, inv2
    for c in _PSI_TAIL:
        total += c * power
        power *= inv2
    return total


def _stirling_tail(w: float) -> float:
    """S(w) = log Gamma(w) - (w - 1/2) log w + w - log(2 pi) / 2, w >= 20."""
    return float(_stirling_series(1.0 / w))


def log_gamma_ratio(a: float, delta: float) -> float:
    """log Gamma(a + delta) - log Gamma(a) - delta log a, without the cancellation at large a."""
    w = a + delta
    if a < _SHIFT or w < _SHIFT:
        return float(sp.gammaln(w) - sp.gammaln(a)) - delta * math.log(a)
    # (w - 1/2) log w - (a - 1/2) log a - delta log a = (w - 1/2) log1p(delta / a)
    return (w - 0.5) * math.log1p(delta / a) - delta + _stirling_tail(w) - _stirling_tail(a)


def _digamma_minus_log(a: float, delta: float) -> float:
    """psi(a + delta) - log a, stable at large a (psi(w) - log w by its asymptotic series)."""
    w = a + delta
    if w < _SHIFT:
        return float(sp.digamma(w)) - math.log(a)
    tail = -0.5 / w + _psi_series(1.0 / w)
    return math.log1p(delta / a) + tail


def _saddle(b: np.ndarray, a: np.ndarray, k: np.ndarray, log_x: float) -> float:
    """Root of sum_j k_j (psi(b_j + c) - log a_j) = log x for c > -min b (safeguarded Newton)."""
    lo = -float(b.min())

    def f(c: float) -> float:
        return (
            sum(
                kj * _digamma_minus_log(aj, bj - aj + c) for bj, aj, kj in zip(b, a, k, strict=True)
            )
            - log_x
        )

    step = 1.0
    while f(lo + step) < 0:
        step *= 2.0
        if step > 1e300:
            raise ValueError(
                message(
                    "log_x", "within reach of the parameters", log_x, "x is astronomically large"
                )
            )
    left, right = lo, lo + step
    c = right
    for _ in range(300):
        fc = f(c)
        if fc > 0:
            right = c
        else:
            left = c
        new = c - fc / float(k @ sp.polygamma(1, b + c))
        if not left < new < right:
            new = 0.5 * (left + right)
        if abs(new - c) <= 1e-15 * max(1.0, abs(c)) or right - left <= 1e-15 * max(1.0, abs(c)):
            return new
        c = new
    return c


@_finite_log
def log_meijer_g(log_x: float, b: Sequence[float]) -> float:
    """log G^{m,0}_{0,m}(x | b_1, ..., b_m) for x = exp(log_x) > 0 (DLMF 16.17.1).

    The argument is passed as its logarithm so that x may over- or underflow a
    float (x = |theta*|^2 prod_l n_l / (2 sigma^2)^{L+1} in the deep linear evidence).

    Args:
        log_x: log of the argument x > 0 (any finite real).
        b: the m >= 1 lower parameters b_j (finite reals).

    Returns:
        log G (relative accuracy of G ~1e-13 while |log G| is moderate; for huge parameters
        use :func:`log_meijer_g_normalised`, which keeps the digits that cancel here).

    Raises:
        ValueError: empty ``b`` or non-finite entries.

    m = 1 is x^b exp(-x); m = 2 is the Bessel form 2 x^{(b1+b2)/2} K_{b1-b2}(2 sqrt x)
    (DLMF 10.32.10):

    >>> abs(log_meijer_g(math.log(2.0), [0.5]) - (0.5 * math.log(2.0) - 2.0)) < 1e-14
    True
    >>> x, nu = 3.0, 0.7
    >>> bessel = math.log(2 * x ** (nu / 2) * sp.kv(nu, 2 * math.sqrt(x)))
    >>> abs(log_meijer_g(math.log(x), [0.0, nu]) - bessel) < 1e-12
    True
    """
    if isinstance(b, str | bytes) or not isinstance(b, Sequence | np.ndarray) or len(b) == 0:
        raise ValueError(message("b", "a non-empty sequence of real parameters", b))
    log_x = check_real("log_x", log_x)
    return float(log_meijer_g_normalised(log_x, b, [1.0] * len(b)))


@_finite_log
def log_meijer_g_normalised(log_y: float, b: Sequence[float], a: Sequence[float]) -> float:
    """log of G^{m,0}_{0,m}(y prod_j a_j | b) prod_j a_j^{a_j - b_j} / prod_j Gamma(a_j).

    The Mellin-Barnes integrand is prod_j Gamma(b_j + z) / (Gamma(a_j) a_j^{b_j - a_j + z}) y^{-z}:
    each factor is O(1) when a_j is close to b_j + z, even for a_j ~ 1e12, so the huge
    log Gamma values that cancel between G and its normalisation are never formed. For a
    product G of Gamma(k_j) variables, E[G^s exp(-x / G)] = exp(this + s sum_j log k_j) with
    b = (0, k + s), a = (1, k), y = x / prod k_j.

    Args:
        log_y: log y (finite).
        b: parameters b_j; a: normalisers a_j > 0, one per b_j (1 leaves a factor as it is).

    >>> lg = log_meijer_g_normalised(math.log(2.0), [0.0, 3.5], [1.0, 3.0])
    >>> ref = log_meijer_g(math.log(6.0), [0.0, 3.5]) - 0.5 * math.log(3.0) - math.log(2.0)
    >>> abs(lg - ref) < 1e-13
    True
    """
    log_y = check_real("log_y", log_y)
    if isinstance(b, str | bytes) or not isinstance(b, Sequence | np.ndarray) or len(b) == 0:
        raise ValueError(message("b", "a non-empty sequence of real parameters", b))
    if not isinstance(a, Sequence | np.ndarray) or len(a) != len(b):
        raise ValueError(message("a", f"a sequence of {len(b)} normalisers (one per b_j)", a))
    counts = Counter(
        (check_real("b", bj), check_positive("a", aj)) for bj, aj in zip(b, a, strict=True)
    )
    keys = sorted(counts)
    bj = np.array([kb for kb, _ in keys], dtype=np.float64)
    aj = np.array([ka for _, ka in keys], dtype=np.float64)
    kj = np.array([counts[key] for key in keys], dtype=np.float64)
    if len(b) == 1:  # G^{1,0}_{0,1}(x | b) = x^b exp(-x)
        log_x = log_y + math.log(aj[0])
        tail = -math.exp(log_x) if log_x < 709 else -math.inf
        return float(bj[0] * log_x + tail + (aj[0] - bj[0]) * math.log(aj[0]) - sp.gammaln(aj[0]))
    c = _saddle(bj, aj, kj, log_y)
    w = bj + c
    terms = zip(bj, aj, kj, strict=True)
    residual = log_y - sum(k * _digamma_minus_log(a_, b_ - a_ + c) for b_, a_, k in terms)
    phi_c = (
        sum(k * log_gamma_ratio(a_, b_ - a_ + c) for b_, a_, k in zip(bj, aj, kj, strict=True))
        - c * log_y
    )
    width = 1.0 / math.sqrt(float(kj @ sp.polygamma(1, w)))

    def delta(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        total = -1j * y * residual
        for wj, mult in zip(w, kj, strict=True):
            total = total + mult * _remainder(float(wj), y)
        return total

    # |exp(delta)| decreases in y (|Gamma(w + iy)| does): integrate up to where it is < e^-50,
    # with composite Gauss-Legendre panels, doubled until two resolutions agree.
    top = width
    while float(delta(np.array([top])).real[0]) > -50.0:
        top *= 2.0
    panels, previous = 32, None
    while True:
        edges = np.linspace(0.0, top, panels + 1)
        half = 0.5 * np.diff(edges)
        nodes = (edges[:-1] + half)[:, None] + half[:, None] * _NODES[None, :]
        values = np.exp(delta(nodes.ravel())).real.reshape(nodes.shape)
        integral = float(np.sum(half[:, None] * _WEIGHTS[None, :] * values)) / math.pi
        if previous is not None and abs(integral - previous) <= 1e-14 * abs(integral):
            break
        if panels >= 4096:
            break
        previous, panels = integral, 2 * panels
    if not integral > 0:
        raise ArithmeticError(
            message("log_meijer_g", "evaluable here", (log_y, list(b)), "Report this input")
        )
    return float(phi_c + math.log(integral))
