"""Johnson-Lindenstrauss random projections and their measured worst pairwise distortion.

Two forms of the JL lemma, for k points, eps in (0, 1) and the Gaussian map A (m x d,
entries N(0, 1/m)); for a fixed difference u, |A u|^2 / |u|^2 ~ chi2_m / m exactly.

* **Squared distances** (Dasgupta & Gupta 2003, "An elementary proof of a theorem of
  Johnson and Lindenstrauss", Theorem 2.1): with m >= 4 ln k / (eps^2/2 - eps^3/3), every
  pair has (1 - eps)|u|^2 <= |A u|^2 <= (1 + eps)|u|^2 with probability at least 1/k
  (their Lemma 2.2 bounds each tail of chi2_m / m by exp(m/2 (1 - b + ln b)) <= 1/k^2 at
  b = 1 -+ eps). ``preserve="squared_distances"``.
* **Distances** (the default, ``preserve="distances"``): with m >= 8 ln k / eps^2 every pair
  has (1 - eps)|u| <= |A u| <= (1 + eps)|u|. This form is not Dasgupta & Gupta's; it
  follows from the Gaussian concentration of the 1-Lipschitz map g -> |g| (Boucheron,
  Lugosi & Massart 2013, Theorem 5.6), which bounds each pair's failure by
  2 exp(-m (eps - 1/(2m))^2 / 2), so the failure probability is at most e^{1/2} / k^2.

For either form the exact probability that some pair leaves its interval is at most the
union bound (``jl_failure_bound``)

    binom(k, 2) [P(chi2_m < m lo) + P(chi2_m > m hi)],

with (lo, hi) = ((1 - eps)^2, (1 + eps)^2) for distances and (1 - eps, 1 + eps) for
squared distances. The one-sided form (1 - eps)|u| <= |A u| <= |u| follows by dividing A
by 1 + eps.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import scipy.stats as st
import torch

from .._checks import as_float_tensor, check_bytes, check_int, check_real, message

__all__ = ["jl_dimension", "jl_distortion", "jl_failure_bound", "random_projection"]

Preserve = Literal["distances", "squared_distances"]
_PRESERVE = ("distances", "squared_distances")
_M_MAX = 2.0**53  # dimensions past this are not even exact floats, let alone projections


def _eps(eps: Any) -> float:
    eps = check_real("eps", eps)
    if not 0 < eps < 1:
        raise ValueError(message("eps", "in (0, 1)", eps))
    return eps


def _preserve(preserve: Any) -> str:
    if preserve not in _PRESERVE:
        raise ValueError(message("preserve", "one of 'distances', 'squared_distances'", preserve))
    return preserve


def jl_dimension(n_points: int, eps: float, *, preserve: Preserve = "distances") -> int:
    """The JL target dimension m for k points, distortion eps.

    * ``preserve="distances"``: m = ceil(8 ln(k) / eps^2), every |A u| / |u| in
      [1 - eps, 1 + eps] (Gaussian concentration; see the module docstring).
    * ``preserve="squared_distances"``: m = ceil(4 ln(k) / (eps^2/2 - eps^3/3)), every
      |A u|^2 / |u|^2 in [1 - eps, 1 + eps] (Dasgupta & Gupta 2003, Theorem 2.1).

    Args:
        n_points: the number of points k (>= 2).
        eps: the distortion, in (0, 1), large enough that m < 2^53.
        preserve: which JL statement.

    Returns:
        the smallest integer m the bound allows.

    >>> jl_dimension(100, 0.5)  # 8 ln(100) / 0.25 = 147.4
    148
    >>> jl_dimension(100, 0.5, preserve="squared_distances")  # 4 ln(100) / (1/8 - 1/24) = 221.0
    222
    """
    k = check_int("n_points", n_points, minimum=2)
    eps = _eps(eps)
    if _preserve(preserve) == "distances":
        m = 8 * math.log(k) / eps / eps  # eps^2 would underflow to 0 for eps < 1e-162
    else:
        m = 4 * math.log(k) / eps / eps / (0.5 - eps / 3)
    if not m <= _M_MAX:
        raise ValueError(
            message("eps", f"large enough for a dimension below 2^53 (m = {m:.3g})", eps)
        )
    return math.ceil(m)


def jl_failure_bound(
    n_points: int, m: int, eps: float, *, preserve: Preserve = "distances"
) -> float:
    """Union bound on P(some pair leaves its JL interval) for the Gaussian map A.

    The interval is [1 - eps, 1 + eps] for |A u| / |u| (``preserve="distances"``) or for
    |A u|^2 / |u|^2 (``"squared_distances"``); the per-pair probability is the exact
    chi-square tail, so for k = 2 the bound is the exact failure probability.

    >>> jl_failure_bound(100, jl_dimension(100, 0.5), 0.5) <= math.exp(0.5) / 100**2
    True
    """
    k = check_int("n_points", n_points, minimum=2)
    m = check_int("m", m, minimum=1)
    eps = _eps(eps)
    power = 2 if _preserve(preserve) == "distances" else 1
    per_pair = st.chi2.cdf(m * (1 - eps) ** power, m) + st.chi2.sf(m * (1 + eps) ** power, m)
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
    check_bytes("m", float(x.element_size()) * m * (x.shape[1] + x.shape[0]), fix="Use a smaller m")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else check_int("seed", seed))
    a = torch.randn(m, x.shape[1], generator=generator, dtype=x.dtype) / math.sqrt(m)
    return x @ a.T


def jl_distortion(x: Any, projected: Any, *, preserve: Preserve = "distances") -> float:
    """Worst pairwise distortion max_{i<j} | |y_i - y_j| / |x_i - x_j| - 1 |.

    With ``preserve="squared_distances"``, max_{i<j} | |y_i - y_j|^2 / |x_i - x_j|^2 - 1 |.

    Raises:
        ValueError: mismatched numbers of points, fewer than 2 points, or repeated points.

    >>> x = torch.eye(3)
    >>> jl_distortion(x, 2 * x)
    1.0
    >>> jl_distortion(x, 2 * x, preserve="squared_distances")
    3.0
    """
    power = 1 if _preserve(preserve) == "distances" else 2
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64)
    y = as_float_tensor("projected", projected, ndim=2, dtype=torch.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(
            message("projected", f"{x.shape[0]} >= 2 points like x", f"shape {tuple(y.shape)}")
        )
    # distances of copies rescaled by powers of 2 (exact; no overflow near the float64 limit)
    sx, sy = (2.0 ** math.frexp(float(v.abs().max()))[1] for v in (x, y))
    dx = torch.pdist(x / sx)
    if bool((dx == 0).any()):
        raise ValueError(message("x", "of distinct rows", "repeated points", "Remove duplicates"))
    ratio = torch.pdist(y / sy) / dx * (sy / sx)
    worst = float((ratio**power - 1).abs().max())
    if not math.isfinite(worst):
        raise ValueError(
            message("projected", "at a scale whose distortion is a float", "distortion > 1.8e308")
        )
    return worst
