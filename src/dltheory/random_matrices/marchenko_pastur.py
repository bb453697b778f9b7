"""The Marchenko-Pastur law: density, CDF, moments, sampled spectra and a KS comparison.

For X in R^{P x n} with i.i.d. N(0, sigma2) entries and the sample covariance
S = X X^T / n (P x P), the eigenvalue distribution of S tends, as P, n -> infinity with
P / n -> c, to (Marchenko & Pastur 1967; Bai & Silverstein 2010, Theorem 3.6)

    mu_c(dx) = sqrt((b - x)(x - a)) / (2 pi sigma2 c x) 1[a <= x <= b] dx + (1 - 1/c)^+ delta_0,

with a, b = sigma2 (1 -+ sqrt c)^2: for c > 1 a fraction 1 - 1/c of the eigenvalues is
exactly 0 (rank n < P). Some lecture notes print the denominator as 2x; the
normalised density has c x (with c = alpha = P / n_0 there). Moments (Narayana numbers):
int x^k dmu_c = sigma2^k sum_{r=0}^{k-1} c^r / (r + 1) binom(k, r) binom(k - 1, r).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import scipy.special as sp
import scipy.stats as st
import torch

from .._checks import (
    as_float_array,
    check_bool,
    check_bytes,
    check_int,
    check_positive,
    message,
)

__all__ = [
    "KSResult",
    "marchenko_pastur_cdf",
    "marchenko_pastur_density",
    "marchenko_pastur_edges",
    "marchenko_pastur_ks",
    "marchenko_pastur_moment",
    "sample_marchenko_pastur",
]


class KSResult(NamedTuple):
    """Kolmogorov-Smirnov comparison of a sampled spectrum with mu_c.

    ``statistic``/``pvalue`` compare the non-zero eigenvalues with the continuous part
    (normalised); ``atom_fraction`` is the measured share of zero eigenvalues and
    ``atom_expected`` = max(0, 1 - 1/c). The p-value treats eigenvalues as independent;
    eigenvalues of one matrix repel, so it is conservative for a bulk misfit.
    """

    statistic: float
    pvalue: float
    atom_fraction: float
    atom_expected: float
    n: int


def _check(c: Any, sigma2: Any) -> tuple[float, float]:
    c, sigma2 = check_positive("c", c), check_positive("sigma2", sigma2)
    if not math.isfinite(sigma2 * (1 + math.sqrt(c)) ** 2):
        raise ValueError(
            message(
                "sigma2",
                "small enough that the upper edge sigma2 (1 + sqrt c)^2 is a float64",
                sigma2,
                f"With c = {c:g}, rescale the eigenvalues",
            )
        )
    return c, sigma2


def _points(x: Any) -> np.ndarray:
    """Evaluation points: real, NaN-free (+-inf allowed), any shape; a float64 copy."""
    return as_float_array("x", x, allow_inf=True, allow_empty=True)


def marchenko_pastur_edges(c: float, sigma2: float = 1.0) -> tuple[float, float]:
    """Support edges (a, b) = sigma2 (1 -+ sqrt c)^2 of the continuous part.

    >>> marchenko_pastur_edges(0.25)
    (0.25, 2.25)
    """
    c, sigma2 = _check(c, sigma2)
    return sigma2 * (1 - math.sqrt(c)) ** 2, sigma2 * (1 + math.sqrt(c)) ** 2


def marchenko_pastur_density(x: Any, c: float, sigma2: float = 1.0) -> np.ndarray:
    """Density of the continuous part of mu_c at x (the atom at 0 for c > 1 is not included).

    >>> float(marchenko_pastur_density(1.0, 1.0)) == math.sqrt(3) / (2 * math.pi)
    True
    """
    x = _points(x)
    c, sigma2 = _check(c, sigma2)
    a, b = marchenko_pastur_edges(c, sigma2)
    inside = (x > a) & (x < b) & (x > 0)
    xs = np.where(inside, x, 0.5 * (a + b))
    dens = np.sqrt(np.clip((b - xs) * (xs - a), 0.0, None)) / (2 * math.pi * sigma2 * c * xs)
    return np.where(inside, dens, 0.0)


def _primitive(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """int sqrt((b - t)(t - a)) / t dt (closed form, up to a constant), a <= t <= b, t > 0."""
    root = np.sqrt(np.clip((b - t) * (t - a), 0.0, None))
    first = 0.5 * (a + b) * np.arcsin(np.clip((2 * t - a - b) / (b - a), -1.0, 1.0))
    if a == 0.0:
        return root + first
    second = math.sqrt(a * b) * np.arcsin(np.clip(((a + b) * t - 2 * a * b) / (t * (b - a)), -1, 1))
    return root + first - second


def marchenko_pastur_cdf(x: Any, c: float, sigma2: float = 1.0) -> np.ndarray:
    """mu_c((-inf, x]): closed-form integral of the density, plus the atom at 0 when c > 1.

    >>> float(marchenko_pastur_cdf(10.0, 4.0)), float(marchenko_pastur_cdf(0.0, 4.0))
    (1.0, 0.75)
    """
    x = _points(x)
    c, sigma2 = _check(c, sigma2)
    a, b = marchenko_pastur_edges(c, sigma2)
    atom = max(0.0, 1.0 - 1.0 / c)
    t = np.clip(x, max(a, 1e-300), b)
    # The primitive at t = a is -(a + b) pi / 4 + sqrt(ab) pi / 2 exactly (both arcsines at -1;
    # evaluating them there in floating point would cost sqrt(eps) ~ 1e-8).
    at_a = -0.25 * math.pi * (a + b) + 0.5 * math.pi * math.sqrt(a * b)
    cont = (_primitive(t, a, b) - at_a) / (2 * math.pi * sigma2 * c)
    cont = np.where(x <= a, 0.0, np.where(x >= b, min(1.0, 1.0 / c), cont))
    return np.clip(np.where(x >= 0, atom, 0.0) + cont, 0.0, 1.0)


def marchenko_pastur_moment(k: int, c: float, sigma2: float = 1.0, *, log: bool = False) -> float:
    """int x^k dmu_c = sigma2^k sum_{r=0}^{k-1} c^r binom(k, r) binom(k - 1, r) / (r + 1).

    The moment grows like (sigma2 (1 + sqrt c)^2)^k; with ``log=True`` its natural log is
    returned (summed in log space, so any k works). Without it, a moment beyond the float64
    range (about 1e308) is refused with a ValueError that points to ``log=True``.

    >>> marchenko_pastur_moment(2, 0.5), marchenko_pastur_moment(3, 2.0)
    (1.5, 11.0)
    >>> catalan = math.lgamma(4001) - 2 * math.lgamma(2001) - math.log(2001)  # c = 1: C_2000
    >>> abs(marchenko_pastur_moment(2000, 1.0, log=True) - catalan) < 1e-9
    True
    """
    k = check_int("k", k, minimum=0)
    c, sigma2 = _check(c, sigma2)
    log = check_bool("log", log)
    check_bytes("k", 64.0 * k, fix="The sum has k terms; use k <= 10^7")
    if k == 0:
        return 0.0 if log else 1.0
    r = np.arange(k, dtype=np.float64)
    # log of c^r binom(k, r) binom(k - 1, r) / (r + 1) = c^r binom(k, r + 1) binom(k, r) / k
    terms = (
        r * math.log(c)
        + 2 * sp.gammaln(k + 1.0)
        - sp.gammaln(r + 2.0)
        - sp.gammaln(k - r)
        - sp.gammaln(r + 1.0)
        - sp.gammaln(k - r + 1.0)
        - math.log(k)
    )
    log_moment = k * math.log(sigma2) + float(sp.logsumexp(terms))
    if log:
        return log_moment
    if k <= 500 and log_moment < 700:  # exact integer binomials while they fit a float
        total = sum(c**j * math.comb(k, j) * math.comb(k - 1, j) / (j + 1) for j in range(k))
        value = sigma2**k * total
        if math.isfinite(value):
            return value
    if log_moment >= math.log(np.finfo(np.float64).max):
        raise ValueError(
            message(
                "k",
                "small enough that the moment fits a float64",
                k,
                f"Its log is {log_moment:.6g}; pass log=True to get it",
            )
        )
    return math.exp(log_moment)


def sample_marchenko_pastur(
    p: int,
    n: int,
    *,
    n_matrices: int = 1,
    sigma2: float = 1.0,
    seed: int = 0,
    memory_budget: int | None = None,
) -> torch.Tensor:
    """Eigenvalues of S = X X^T / n for X (P x n) with N(0, sigma2) entries.

    Args:
        p: dimension P (rows of X); n: number of samples (columns); c = p / n.
        n_matrices: independent matrices (their spectra are concatenated).
        sigma2: entry variance.
        seed: torch generator seed.
        memory_budget: bytes the sampled matrices may take (default 4 GiB); a larger request
            is refused before anything is allocated.

    Returns:
        (n_matrices * p,) float64 eigenvalues; for p > n the p - n zero eigenvalues are exact
        zeros (the spectrum is computed from the n x n Gram matrix X^T X / n).

    >>> ev = sample_marchenko_pastur(3, 2)
    >>> ev.shape, int((ev == 0).sum())
    (torch.Size([3]), 1)
    """
    p = check_int("p", p, minimum=1)
    n = check_int("n", n, minimum=1)
    n_matrices = check_int("n_matrices", n_matrices, minimum=1)
    sigma2 = check_positive("sigma2", sigma2)
    seed = check_int("seed", seed, minimum=0)
    budget = None if memory_budget is None else check_int("memory_budget", memory_budget, 1)
    m = min(p, n)
    # X, the m x m Gram matrix and its eigen-decomposition workspace, and the output
    check_bytes("p * n * n_matrices", 8.0 * n_matrices * (p * n + 3 * m * m + p), budget)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_matrices, p, n, generator=gen, dtype=torch.float64) * math.sqrt(sigma2)
    small = x @ x.transpose(1, 2) if p <= n else x.transpose(1, 2) @ x
    ev = torch.linalg.eigvalsh(small / n).clamp_min(0.0)
    if p > n:
        ev = torch.cat([torch.zeros(n_matrices, p - n, dtype=torch.float64), ev], dim=1)
    return ev.reshape(-1)


def marchenko_pastur_ks(eigenvalues: Any, c: float, sigma2: float = 1.0) -> KSResult:
    """KS statistic and p-value of sampled eigenvalues against mu_c (atom handled apart).

    Eigenvalues below 1e-9 b (b the upper edge) count as the atom at 0; the rest are
    compared with the continuous part renormalised to mass 1.

    >>> res = marchenko_pastur_ks(sample_marchenko_pastur(400, 800, seed=1), 0.5)
    >>> res.pvalue > 0.01, res.atom_fraction
    (True, 0.0)
    """
    ev = as_float_array("eigenvalues", eigenvalues, ndim=1)
    c, sigma2 = _check(c, sigma2)
    if (ev < -1e-9 * max(1.0, float(np.abs(ev).max()))).any():
        raise ValueError(message("eigenvalues", ">= 0 (a sample covariance spectrum)", ev.min()))
    b = marchenko_pastur_edges(c, sigma2)[1]
    zero = ev <= 1e-9 * b
    rest = ev[~zero]
    atom = max(0.0, 1.0 - 1.0 / c)
    mass = min(1.0, 1.0 / c)
    if rest.size == 0:
        raise ValueError(message("eigenvalues", "not all zero", "all zero"))
    res = st.kstest(rest, lambda t: (marchenko_pastur_cdf(t, c, sigma2) - atom) / mass)
    return KSResult(float(res.statistic), float(res.pvalue), float(zero.mean()), atom, ev.size)
