"""Johnson-Lindenstrauss random projections and their measured worst pairwise distortion.

JL lemma (in the form of Dasgupta & Gupta 2003, "An elementary proof of a
theorem of Johnson and Lindenstrauss"): for k points and eps in (0, 1) a linear map to R^m with
m >= 8 ln(k) / eps^2 keeps every pairwise distance within a factor 1 +- eps. For the Gaussian
map A (m x d, entries N(0, 1/m)) and a fixed difference u, |A u|^2 / |u|^2 ~ chi2_m / m exactly,
so the probability that some pair leaves [1 - eps, 1 + eps] is at most the union bound

    binom(k, 2) [P(chi2_m < m (1 - eps)^2) + P(chi2_m > m (1 + eps)^2)]

(``jl_failure_bound``). With m >= 8 ln k / eps^2 the Gaussian concentration of the
1-Lipschitz map g -> |g| (Boucheron, Lugosi & Massart 2013, Theorem 5.6) bounds each term by
2 exp(-m (eps - 1/(2m))^2 / 2), so the failure probability is at most e^{1/2} / k^2 - hence the
constant 8. The one-sided form (1 - eps)|u| <= |A u| <= |u| follows by dividing A by
1 + eps.
"""

from __future__ import annotations

import math
from typing import Any

import scipy.stats as st
import torch

from .._checks import as_float_tensor, check_int, check_real, message

__all__ = ["jl_dimension", "jl_distortion", "jl_failure_bound", "random_projection"]


def _eps(eps: Any) -> float:
    eps = check_real("eps", eps)
    if not 0 < eps < 1:
        raise ValueError(message("eps", "in (0, 1)", eps))
    return eps


def jl_dimension(n_points: int, eps: float) -> int:
    """The JL target dimension m = ceil(8 ln(k) / eps^2) for k points.

    >>> jl_dimension(100, 0.5)  # 8 ln(100) / 0.25 = 147.4
    148
    """
    k = check_int("n_points", n_points, minimum=2)
    return math.ceil(8 * math.log(k) / _eps(eps) ** 2)


def jl_failure_bound(n_points: int, m: int, eps: float) -> float:
    """Union bound on P(some pair's distance ratio leaves [1 - eps, 1 + eps]) for Gaussian A.

    >>> jl_failure_bound(100, jl_dimension(100, 0.5), 0.5) <= math.exp(0.5) / 100**2
    True
    """
    k = check_int("n_points", n_points, minimum=2)
    m = check_int("m", m, minimum=1)
    eps = _eps(eps)
    per_pair = st.chi2.cdf(m * (1 - eps) ** 2, m) + st.chi2.sf(m * (1 + eps) ** 2, m)
    return min(1.0, math.comb(k, 2) * float(per_pair))


def random_projection(
    x: Any, m: int, *, seed: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """x A^T for a Gaussian A (m x d) with N(0, 1/m) entries: rows of x mapped to R^m.

    >>> random_projection(torch.ones(3, 5), 2, seed=0).shape
    torch.Size([3, 2])
    """
    x = as_float_tensor("x", x, ndim=2)
    m = check_int("m", m, minimum=1)
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else check_int("seed", seed))
    a = torch.randn(m, x.shape[1], generator=generator, dtype=x.dtype) / math.sqrt(m)
    return x @ a.T


def jl_distortion(x: Any, projected: Any) -> float:
    """Worst pairwise distortion max_{i<j} | |y_i - y_j| / |x_i - x_j| - 1 |.

    Raises:
        ValueError: mismatched numbers of points, fewer than 2 points, or repeated points.

    >>> x = torch.eye(3)
    >>> jl_distortion(x, 2 * x)
    1.0
    """
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64)
    y = as_float_tensor("projected", projected, ndim=2, dtype=torch.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(
            message("projected", f"{x.shape[0]} >= 2 points like x", f"shape {tuple(y.shape)}")
        )
    dx = torch.pdist(x)
    if bool((dx == 0).any()):
        raise ValueError(message("x", "of distinct rows", "repeated points", "Remove duplicates"))
    return float((torch.pdist(y) / dx - 1).abs().max())
