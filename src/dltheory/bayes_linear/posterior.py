"""Exact evidence and posterior of a deep linear network that interpolates (Hanin & Zlokapa 2023).

Model: f(x) = W^(L+1) ... W^(1) x = theta . x with W^(l)_ij ~ N(0, sigma2 / n_{l-1}) on
every layer (readout included), hidden widths n_1..n_L, and the zero-noise
likelihood f(x_i) = y_i for P <= n_0 points (rows of x).

Integrating out W^(1) given the rest, theta ~ N(0, v I_{n_0}) with the random scale

    v = (sigma2^{L+1} / n_0) prod_{l=1}^L chi2_{n_l} / n_l = kappa G,
    kappa = (sigma2^{L+1} / n_0) prod_l 2 / n_l,  G = prod_l g_l,  g_l ~ Gamma(n_l / 2, 1).

With theta* = x^T (x x^T)^{-1} y the min-norm interpolant and q = |theta*|^2 = y^T (x x^T)^{-1} y,
the evidence (the density of (f(x_1), ..., f(x_P)) at y, i.e. lim (beta / 2 pi)^{P/2} Z_beta) is

    p(y | x) = (2 pi kappa)^{-P/2} det(x x^T)^{-1/2} E[G^{-P/2} exp(-z / G)],  z = q / (2 kappa)
             = (2 pi kappa)^{-P/2} det(x x^T)^{-1/2}
               G^{L+1,0}_{0,L+1}(z | 0, (n_l - P) / 2) / prod_l Gamma(n_l / 2),

with z = q prod_{l=0}^L n_l / (2 sigma2)^{L+1}: the Meijer G-function form of Theorem 1 of
Hanin & Zlokapa (2023). Given v, the data fix theta_parallel = theta* and leave
theta_perp ~ N(0, v I) on the (n_0 - P)-dimensional orthogonal complement of the rows of x; the
posterior of v is the prior reweighted by v^{-P/2} exp(-q / 2v), so
E_post[v^r] = kappa^r G(z | 0, (n_l - P)/2 + r) / G(z | 0, (n_l - P)/2). For one hidden layer
G^{2,0}_{0,2}(z | 0, nu) = 2 z^{nu/2} K_nu(2 sqrt z) (a Bessel-K form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .._checks import as_float_tensor, check_bool, check_finite_result, check_real, message
from ._data import validate_problem
from .meijer import log_gamma_ratio, log_meijer_g_normalised

__all__ = ["DeepLinearPosterior", "Prediction", "deep_linear_posterior"]


class Prediction(NamedTuple):
    """Posterior predictive at test points: mean (M,), variance (M,), covariance (M, M) or None."""

    mean: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor | None


@dataclass(frozen=True)
class DeepLinearPosterior:
    """The exact posterior of a deep linear network interpolating (x, y).

    Attributes:
        widths: hidden widths (n_1, ..., n_L) (() for L = 0, Bayesian linear regression).
        sigma2: prior weight variance scale (W^(l) ~ N(0, sigma2 / n_{l-1})).
        n_in: input dimension n_0.
        n_data: number of data points P.
        theta_star: the min-norm interpolant theta* = theta_parallel, shape (n_0,).
        log_evidence: log p(y | x) (see the module docstring).
        effective_depth: lambda = P sum_l 1 / n_l.
        perp_variance: E_post[v], the posterior mean of the per-direction variance of
            theta_perp (the prior mean is sigma2^{L+1} / n_0).
        perp_norm2_mean: E_post |theta_perp|^2 = (n_0 - P) E_post[v].
    """

    widths: tuple[int, ...]
    sigma2: float
    n_in: int
    n_data: int
    theta_star: torch.Tensor
    log_evidence: float
    effective_depth: float
    perp_variance: float
    perp_norm2_mean: float
    _basis: torch.Tensor  # orthonormal basis of the row space of x, (n_0, P)
    _log_y: float  # log of the normalised Meijer argument q / (2 sigma2^{L+1} / n_0)
    _log_prior: float  # log of the prior mean of v, sigma2^{L+1} / n_0

    @property
    def evidence(self) -> float:
        """p(y | x) = exp(log_evidence) (may under- or overflow a float: prefer the log)."""
        return math.exp(self.log_evidence) if self.log_evidence < 709 else math.inf

    def perp_variance_moment(self, r: float) -> float:
        """E_post[v^r] for real r (v^r = 0 moments exist for every r when q > 0).

        >>> post = deep_linear_posterior(torch.eye(2, 3), torch.ones(2), ())
        >>> abs(post.perp_variance_moment(2.0) - (1 / 3) ** 2) < 1e-15  # L = 0: v = sigma2 / n_0
        True
        """
        r = check_real("r", r)
        args = (self.widths, self.n_data, self._log_y)
        return math.exp(
            _ratio(_log_expect(*args, r), _log_expect(*args, 0.0)) + r * self._log_prior
        )

    @property
    def perp_norm2_variance(self) -> float:
        """Var_post |theta_perp|^2, with |theta_perp|^2 | v ~ v chi2_{n_0 - P}."""
        d = self.n_in - self.n_data
        m1, m2 = self.perp_variance, self.perp_variance_moment(2.0)
        # E[(v chi2_d)^2] = (d^2 + 2d) E[v^2]
        return (d * d + 2 * d) * m2 - (d * m1) ** 2

    def predict(self, x_test: Any, full_cov: bool = False) -> Prediction:
        """Posterior predictive mean and variance of f(x_test).

        f(x) = theta* . x + theta_perp . x_perp, with x_perp the component of x orthogonal to
        the rows of the training inputs. The prior of theta is invariant under rotations, and
        the constraint x theta = y fixes only theta_parallel, so the posterior of theta_perp is
        invariant under rotations of the orthogonal complement: its mean is 0 and the
        predictive mean is exactly the min-norm interpolant theta* . x. Its variance is
        E_post[v] |x_perp|^2 (covariance E_post[v] x_perp x_perp'^T).

        Args:
            x_test: (M, n_0) test inputs.
            full_cov: also return the (M, M) predictive covariance.

        >>> post = deep_linear_posterior(torch.eye(1, 2), torch.tensor([2.0]), ())
        >>> pred = post.predict(torch.tensor([[1.0, 1.0]]))
        >>> pred.mean.tolist(), pred.variance.tolist()  # theta* = (2, 0), v = 1/2
        ([2.0], [0.5])
        """
        xt = as_float_tensor("x_test", x_test, ndim=2, dtype=torch.float64, detach=True)
        if xt.shape[1] != self.n_in:
            raise ValueError(
                message(
                    "x_test",
                    f"of shape (M, n_0) with n_0 = {self.n_in}",
                    f"shape {tuple(xt.shape)}",
                    "Test inputs need the training input dimension",
                )
            )
        full_cov = check_bool("full_cov", full_cov)
        mean = xt @ self.theta_star
        perp = xt - (xt @ self._basis) @ self._basis.T
        variance = self.perp_variance * (perp * perp).sum(1)
        cov = self.perp_variance * (perp @ perp.T) if full_cov else None
        check_finite_result("x_test", (mean, variance) if cov is None else (mean, variance, cov))
        return Prediction(mean, variance, cov)


def _ratio(log_num: float, log_den: float) -> float:
    """log_num - log_den, refusing when float64 cannot resolve it to 1e-6."""
    if 2.3e-16 * (abs(log_num) + abs(log_den)) > 1e-6:
        raise ValueError(
            message(
                "y",
                "of moderate size relative to the prior scale sigma2^{L+1} / n_0",
                f"log E = {log_den:.3g}",
                "Rescale: the posterior of v / sigma2^{L+1} is unchanged under y -> s y, "
                "sigma2^{L+1} -> s^2 sigma2^{L+1}",
            )
        )
    return log_num - log_den


def _log_expect(widths: tuple[int, ...], n_data: int, log_y: float, r: float) -> float:
    """log E[H^{r - P/2} exp(-y / H)] for H = prod_l g_l / k_l, g_l ~ Gamma(k_l), k_l = n_l / 2.

    Normalising each Gamma factor by its mean keeps every term O(1) at huge widths
    (``log_meijer_g_normalised``); E[G^s e^{-z/G}] = (prod k_l)^s E[H^s e^{-y/H}], y = z / prod k_l.
    """
    half = [n / 2 for n in widths]
    p2 = n_data / 2
    if not math.isfinite(log_y):  # y = 0: E[H^s] = prod Gamma(k + s) / (Gamma(k) k^s)
        if any(k + r - p2 <= 0 for k in half):
            raise ValueError(
                message(
                    "y",
                    "non-zero when some hidden width n_l <= P - 2r",
                    "y = 0",
                    "The posterior of the scale collapses to 0 there",
                )
            )
        return sum(log_gamma_ratio(k, r - p2) for k in half)
    b = [0.0] + [k - p2 + r for k in half]
    return log_meijer_g_normalised(log_y, b, [1.0, *half])


def deep_linear_posterior(x: Any, y: Any, widths: Any, sigma2: float = 1.0) -> DeepLinearPosterior:
    """Exact Bayesian posterior and evidence of an interpolating deep linear network.

    Hanin & Zlokapa (2023), "Bayesian interpolation with deep linear networks", PNAS 120(23),
    Theorem 1 (evidence and posterior as Meijer G-functions); the formulas are in the
    module docstring and ``docs/topics/bayes_linear.md``.

    Args:
        x: (P, n_0) training inputs (rows are data points), full row rank, P <= n_0.
        y: (P,) or (P, 1) targets.
        widths: hidden widths (n_1, ..., n_L), each >= 1; () for no hidden layer.
        sigma2: prior variance scale sigma^2 > 0 of every layer.

    Returns:
        A :class:`DeepLinearPosterior` (evidence, theta*, scale posterior, ``predict``).

    Raises:
        ValueError: P > n_0, rank-deficient x, widths < 1, sigma2 <= 0, shape mismatches.

    With no hidden layer the evidence is the Gaussian N(y; 0, (sigma2 / n_0) x x^T):

    >>> post = deep_linear_posterior(torch.eye(1, 2), torch.tensor([1.0]), (), sigma2=2.0)
    >>> abs(post.log_evidence - (-0.5 * math.log(2 * math.pi) - 0.5)) < 1e-12
    True
    """
    x, y, widths, sigma2 = validate_problem(x, y, widths, sigma2)
    n_data, n_in = x.shape
    # x^T = Q R: theta* = Q R^{-T} y, q = |R^{-T} y|^2, det(x x^T) = prod R_ii^2 (no Gram matrix).
    basis, upper = torch.linalg.qr(x.T)
    coef = torch.linalg.solve_triangular(upper.T, y[:, None], upper=False)[:, 0]
    theta_star = basis @ coef
    q = float(coef @ coef)
    log_det = 2.0 * float(torch.log(torch.diagonal(upper).abs()).sum())
    depth = len(widths)
    # v = kappa G, log kappa = log(sigma2^{L+1} / n_0) - sum_l log k_l; y = q / (2 kappa prod k_l)
    log_prior = (depth + 1) * math.log(sigma2) - math.log(n_in)
    log_y = math.log(q) - math.log(2.0) - log_prior if q > 0 else -math.inf
    log_e0 = _log_expect(widths, n_data, log_y, 0.0)
    v_mean = math.exp(_ratio(_log_expect(widths, n_data, log_y, 1.0), log_e0) + log_prior)
    return DeepLinearPosterior(
        widths=widths,
        sigma2=sigma2,
        n_in=n_in,
        n_data=n_data,
        theta_star=theta_star,
        # p = (2 pi kappa)^{-P/2} det^{-1/2} E[G^{-P/2} e^{-z/G}]: the prod k_l factors cancel.
        log_evidence=-0.5 * n_data * (math.log(2 * math.pi) + log_prior) - 0.5 * log_det + log_e0,
        effective_depth=n_data * sum(1.0 / n for n in widths),
        perp_variance=v_mean,
        perp_norm2_mean=(n_in - n_data) * v_mean,
        _basis=basis,
        _log_y=log_y,
        _log_prior=log_prior,
    )
