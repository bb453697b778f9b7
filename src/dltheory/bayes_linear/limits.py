"""The limits of the deep linear posterior: large effective depth and the optimal prior.

Hanin & Zlokapa (2023) study P, n_0, n_l, L -> infinity with P / n_0 -> alpha in (0, 1) and
effective depth lambda = P sum_l 1/n_l fixed, and show that the posterior then depends on the
architecture only through lambda; that as lambda -> infinity the posterior of a network with
the data-agnostic prior sigma2 = 1 equals that of the evidence-maximising data-dependent prior
(theta_perp concentrates at per-direction variance |theta*|^2 / P); and that lambda -> 0 is
the Gaussian-process (infinitely wide) limit.

Here, from the exact posterior (``posterior.py``): log v = log(sigma2^{L+1} / n_0) + t with
t = sum_l log(chi2_{n_l} / n_l) ~ N(-lambda / P, 2 lambda / P) to leading order, and the
posterior of t is proportional to exp(-P [t^2 / (4 lambda) + t / 2 + (rho / 2) e^{-t}]) with
rho = |theta*|^2 / (alpha sigma2^{L+1}). Laplace's method (P -> infinity) concentrates t at
rho e^{-t} = 1 + t / lambda, i.e. t* = W(lambda rho e^lambda) - lambda (W: Lambert's function),
which moves from t* = 0 (the prior scale, lambda -> 0) to t* = log rho (v = |theta*|^2 / P,
lambda -> infinity). The Gaussian law of t needs L -> infinity as well (its third cumulant
is O(1 / L) relative to lambda), so at fixed L the finite-lambda point carries O(1/L) errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import scipy.optimize as so
import torch

from ._data import validate_problem, validate_widths
from .posterior import deep_linear_posterior

__all__ = ["DepthLimit", "effective_depth_limit", "optimal_sigma2"]


@dataclass(frozen=True)
class DepthLimit:
    """Leading-order posterior scale at effective depth lambda, and its two ends.

    Attributes:
        effective_depth: lambda = P sum_l 1 / n_l.
        alpha: P / n_0.
        perp_variance: v* = (sigma2^{L+1} / n_0) exp(t*), the concentration point of E_post[v].
        perp_variance_wide: the lambda -> 0 (Gaussian-process) value sigma2^{L+1} / n_0.
        perp_variance_deep: the lambda -> infinity value |theta*|^2 / P.
    """

    effective_depth: float
    alpha: float
    perp_variance: float
    perp_variance_wide: float
    perp_variance_deep: float


def _log_lambert_point(lam: float, log_rho: float) -> float:
    """t* solving rho e^{-t} = 1 + t / lambda, by Newton on w + log w = log(lambda rho) + lambda."""
    if lam == 0.0:
        return 0.0
    target = math.log(lam) + log_rho + lam
    w = max(target - math.log(max(target, 1.0)), 1e-300) if target > 1 else math.exp(target)
    for _ in range(100):
        step = (w + math.log(w) - target) / (1 + 1 / w)
        w_new = w - step
        if w_new <= 0:
            w_new = w / 2
        if abs(w_new - w) <= 1e-15 * max(1.0, w):
            w = w_new
            break
        w = w_new
    return w - lam


def effective_depth_limit(x: Any, y: Any, widths: Any, sigma2: float = 1.0) -> DepthLimit:
    """Leading-order (large P, L at fixed lambda, alpha) posterior scale of theta_perp.

    See the module docstring for the derivation from Hanin & Zlokapa (2023), Theorem 1.

    Args:
        x: (P, n_0) training inputs; y: (P,) targets; widths: hidden widths; sigma2: prior scale.

    Returns:
        :class:`DepthLimit`; its ``perp_variance`` approximates
        ``DeepLinearPosterior.perp_variance``.

    At lambda = 0 the scale is the prior one, sigma2^{L+1} / n_0:

    >>> lim = effective_depth_limit(torch.eye(1, 4), torch.ones(1), (10**12,))
    >>> round(lim.perp_variance, 9), lim.perp_variance_deep
    (0.25, 1.0)
    """
    x, y, widths, sigma2 = validate_problem(x, y, widths, sigma2)
    n_data, n_in = x.shape
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    lam = n_data * sum(1.0 / n for n in widths)
    alpha = n_data / n_in
    log_prior = (len(widths) + 1) * math.log(sigma2) - math.log(n_in)
    t_star = _log_lambert_point(lam, math.log(q / alpha) - (len(widths) + 1) * math.log(sigma2))
    return DepthLimit(
        effective_depth=lam,
        alpha=alpha,
        perp_variance=math.exp(log_prior + t_star),
        perp_variance_wide=math.exp(log_prior),
        perp_variance_deep=q / n_data,
    )


def optimal_sigma2(x: Any, y: Any, widths: Any) -> float:
    """The data-dependent prior scale sigma2* maximising the exact evidence p(y | x).

    Stationarity in log sigma2 reads E_post[1 / v] = P / |theta*|^2 (v the posterior scale);
    it is solved by bracketing on the exact Meijer-G posterior. With no hidden layer,
    sigma2* = n_0 |theta*|^2 / P in closed form (Hanin & Zlokapa 2023 compare deep networks
    at sigma2 = 1 with shallow ones at this optimum).

    >>> round(optimal_sigma2(torch.eye(1, 4), torch.tensor([3.0]), ()), 10)  # 4 * 9 / 1
    36.0
    """
    x, y, widths, _ = validate_problem(x, y, validate_widths(widths), 1.0)
    n_data, n_in = x.shape
    q = float(y @ torch.linalg.solve(x @ x.T, y))
    depth = len(widths)
    if q == 0:
        raise ValueError(
            "y must be non-zero. Got y = 0. The evidence grows without bound as sigma2 -> 0."
        )
    if depth == 0:
        return n_in * q / n_data
    guess = math.log(n_in * q / n_data) / (depth + 1)

    def gap(log_s2: float) -> float:
        post = deep_linear_posterior(x, y, widths, math.exp(log_s2))
        return math.log(post.perp_variance_moment(-1.0) * q / n_data)

    lo, hi = guess - 1.0, guess + 1.0
    while gap(lo) < 0:
        lo -= 2.0
    while gap(hi) > 0:
        hi += 2.0
    return math.exp(so.brentq(gap, lo, hi, xtol=1e-14, rtol=1e-14))
