"""SGD gradient noise and Yaida's fluctuation-dissipation relations.

Mini-batch gradient g_B = (1/b) sum_{k in B} g_k of per-sample gradients g_k
(L = (1/N) sum_k l_k). Its second moment C~ = E_B[g_B g_B^T] and covariance
C = C~ - grad L grad L^T are exact for three sampling schemes (S = (1/N) sum_k
g_k g_k^T, Sigma = S - grad L grad L^T the per-sample covariance):

* ``"with_replacement"`` (b i.i.d. uniform draws): C = Sigma / b;
* ``"without_replacement"`` (a uniform b-subset): C = Sigma (N - b) / (b (N - 1));
* ``"bernoulli"`` (each k in B independently w.p. b / N, normalised by b):
  C = S (1 - b / N) / b.

Yaida (2018), "Fluctuation-dissipation relations for stochastic gradient
descent": at stationarity of theta_{t+1} = theta_t - eta g_B(theta_t),

    <grad L> = 0   and   <theta . grad L> = (eta / 2) <tr C~>.

Both are exact (not only to leading order in eta): E_B[g_B] = grad L gives the
first; E|theta_{t+1}|^2 = E|theta_t|^2 with E_B|theta - eta g_B|^2 =
|theta|^2 - 2 eta theta . grad L + eta^2 tr C~ gives the second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_finite_result,
    check_int,
    check_positive,
    message,
)
from ..stats import Estimate
from ._validate import design, targets

__all__ = [
    "SAMPLINGS",
    "FluctuationDissipation",
    "GradientNoise",
    "gradient_noise",
    "linear_regression_gradients",
    "sgd_fluctuation_dissipation",
]

__fuzz_exempt__ = {
    "sgd_fluctuation_dissipation:cases": {
        "steps:1e12": "runs the 10^12 SGD steps asked for (time linear in steps)"
    }
}

Sampling = Literal["with_replacement", "without_replacement", "bernoulli"]
SAMPLINGS = ("with_replacement", "without_replacement", "bernoulli")


@dataclass(frozen=True)
class GradientNoise:
    """The mini-batch gradient's moments at one theta.

    Attributes:
        gradient: (P,) grad L = E_B[g_B].
        second_moment: (P, P) C~ = E_B[g_B g_B^T].
        covariance: (P, P) C = C~ - grad L grad L^T.
        trace_second_moment: tr C~ = E_B |g_B|^2.
        trace_covariance: tr C.
    """

    gradient: torch.Tensor
    second_moment: torch.Tensor
    covariance: torch.Tensor
    trace_second_moment: float
    trace_covariance: float


def _noise_factor(n: int, b: int, sampling: str) -> tuple[float, float]:
    """C = f_sigma * Sigma + f_s * S for the sampling scheme."""
    if sampling == "with_replacement":
        return 1.0 / b, 0.0
    if sampling == "without_replacement":
        return (n - b) / (b * (n - 1)) if n > 1 else 0.0, 0.0
    return 0.0, (1.0 - b / n) / b


def _check_batch(batch_size: Any, n: int, sampling: str) -> int:
    b = check_int("batch_size", batch_size, minimum=1)
    if sampling != "with_replacement" and b > n:
        raise ValueError(message("batch_size", f"<= the number of samples {n}", b))
    return b


def gradient_noise(
    per_sample_gradients: Any, batch_size: int, sampling: Sampling = "without_replacement"
) -> GradientNoise:
    """Exact C~ and C of the mini-batch gradient from the per-sample gradients.

    Args:
        per_sample_gradients: (N, P) rows g_k = grad l_k(theta) (computed in float64).
        batch_size: b >= 1 (<= N unless sampling with replacement).
        sampling: one of :data:`SAMPLINGS` (formulas in the module docstring).

    Returns:
        A :class:`GradientNoise`.

    >>> g = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)  # grad L = 0, Sigma = 1
    >>> gradient_noise(g, 1, "with_replacement").trace_covariance
    1.0
    >>> gradient_noise(g, 2, "without_replacement").trace_covariance  # the full batch
    0.0
    """
    # float64 throughout: float16 / bfloat16 moments lose the covariance to rounding
    G = as_float_tensor(
        "per_sample_gradients", per_sample_gradients, ndim=2, dtype=torch.float64, detach=True
    )
    sampling = check_choice("sampling", sampling, SAMPLINGS)
    n = G.shape[0]
    b = _check_batch(batch_size, n, sampling)
    mean = G.mean(0)
    s = G.T @ G / n
    outer = torch.outer(mean, mean)
    f_sigma, f_s = _noise_factor(n, b, sampling)
    cov = f_sigma * (s - outer) + f_s * s
    second = cov + outer
    check_finite_result("per_sample_gradients", (mean, second, cov))
    return GradientNoise(mean, second, cov, float(torch.trace(second)), float(torch.trace(cov)))


def linear_regression_gradients(X: Any, y: Any, theta: Any) -> torch.Tensor:
    """Per-sample gradients g_k = (x_k . theta - y_k) x_k of l_k = 1/2 (x_k . theta - y_k)^2.

    L = 1/(2N) sum_k (x_k . theta - y_k)^2 is their mean.

    >>> linear_regression_gradients([[1.0, 2.0]], [1.0], [1.0, 1.0]).tolist()
    [[2.0, 4.0]]
    """
    X = design("X", X)
    y = targets("y", y, X.shape[0])
    theta = as_float_tensor("theta", theta, ndim=1, dtype=torch.float64, detach=True)
    if theta.shape[0] != X.shape[1]:
        raise ValueError(message("theta", f"of length {X.shape[1]}", theta.shape[0]))
    out = (X @ theta - y)[:, None] * X
    check_finite_result("X, y, theta", out)
    return out


@dataclass(frozen=True)
class FluctuationDissipation:
    """Yaida's two identities measured on long SGD runs (independent chains).

    Attributes:
        mean_gradient: <grad L> (P components; prediction 0).
        alignment: <theta . grad L>.
        half_eta_trace: (eta / 2) <tr C~>.
        difference: <theta . grad L - (eta / 2) tr C~> (prediction 0).
        z_gradient: (P,) z-scores of <grad L>.
        z_difference: z-score of the difference.
        ratio: 2 <theta . grad L> / (eta <tr C~>) (prediction 1).
    """

    mean_gradient: Estimate
    alignment: Estimate
    half_eta_trace: Estimate
    difference: Estimate
    z_gradient: torch.Tensor
    z_difference: float
    ratio: float

    def holds(self, n_std: float = 5.0) -> bool:
        """Whether both identities hold within ``n_std`` standard errors."""
        return self.mean_gradient.agrees(0.0, n_std) and self.difference.agrees(0.0, n_std)


def _batch_weights(chains: int, n: int, b: int, sampling: str, gen: torch.Generator):
    """(chains, N) weights w with g_B = sum_k w_k g_k."""
    if sampling == "with_replacement":
        idx = torch.randint(n, (chains, b), generator=gen)
        w = torch.zeros(chains, n, dtype=torch.float64)
        return w.scatter_add_(1, idx, torch.full((chains, b), 1.0 / b, dtype=torch.float64))
    if sampling == "without_replacement":
        idx = torch.multinomial(torch.ones(chains, n), b, generator=gen)
        return torch.zeros(chains, n, dtype=torch.float64).scatter_(1, idx, 1.0 / b)
    return (torch.rand(chains, n, generator=gen) < b / n).to(torch.float64) / b


def _pair_weights(n: int, b: int, sampling: str) -> tuple[float, float]:
    """(E[w_k w_l] for k != l, E[w_k^2]) of the batch weights of :func:`_batch_weights`."""
    diag = 1.0 / (b * n)
    if sampling == "with_replacement":
        return (b - 1) / (b * n * n), diag + (b - 1) / (b * n * n)  # multinomial counts
    if sampling == "without_replacement":
        return ((b - 1) / (b * n * (n - 1)) if n > 1 else 0.0), diag
    return 1.0 / (n * n), diag


def _mean_square_critical_eta(X: torch.Tensor, batch_size: int, sampling: str) -> float:
    """The largest eta at which SGD on linear regression is stable in mean square.

    With A_B = sum_k w_k x_k x_k^T the mini-batch Hessian, the deviation's second
    moment evolves by T(M) = E[(I - eta A_B) M (I - eta A_B)] (plus terms that
    converge once T does). T maps PSD matrices to PSD matrices, so its spectral
    radius on symmetric M is its largest eigenvalue, and T - I = eta (eta Q - L)
    with L(M) = H M + M H > 0 and Q(M) = E[A_B M A_B]. Hence rho(T) < 1 exactly
    when eta < 1 / lambda_max(L^{-1/2} Q L^{-1/2}), computed in the eigenbasis
    of H = X^T X / N (where L is diagonal, lambda_i + lambda_j) on the
    P (P + 1) / 2 symmetric coordinates, using
    Q(M) = c_off (N H) M (N H) + (c_diag - c_off) sum_k x_k (x_k^T M x_k) x_k^T,
    c = E[w_k w_l]. Mean-square stability implies eta < 2 / lambda_max(H).
    """
    n, p = X.shape
    c_off, c_diag = _pair_weights(n, batch_size, sampling)
    lam, U = np.linalg.eigh((X.T @ X).numpy() / n)
    Xr = X.numpy() @ U
    i, j = np.triu_indices(p)
    factor = np.where(i == j, 1.0, math.sqrt(2.0))
    scale = 1.0 / np.sqrt(lam[i] + lam[j])  # L^{-1/2} on the symmetric basis
    W = Xr[:, i] * Xr[:, j] * factor * scale  # (N, m): vec of x x^T, scaled
    diag = c_off * n * n * lam[i] * lam[j] * scale**2
    m = i.size
    if m <= 1500:
        G = (c_diag - c_off) * (W.T @ W)
        G[np.diag_indices(m)] += diag
        top = float(np.linalg.eigvalsh(G)[-1])
    else:  # pragma: no cover - large P: Lanczos on the operator
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((m, m), matvec=lambda v: diag * v + (c_diag - c_off) * (W.T @ (W @ v)))
        top = float(eigsh(op, k=1, which="LA", return_eigenvectors=False)[0])
    return 1.0 / top


_MAX_DEFAULT_BURN_IN = 10**6


def _check_finite(theta: torch.Tensor, sums: torch.Tensor, t: int, eta: float) -> None:
    if not (bool(torch.isfinite(theta).all()) and bool(torch.isfinite(sums).all())):
        raise ValueError(
            message(
                "eta",
                "small enough that SGD stays finite",
                eta,
                f"The iterates overflowed by step {t + 1}; lower eta",
            )
        )


def sgd_fluctuation_dissipation(
    X: Any,
    y: Any,
    eta: float,
    batch_size: int,
    steps: int,
    *,
    chains: int = 64,
    burn_in: int | None = None,
    sampling: Sampling = "with_replacement",
    seed: int = 0,
) -> FluctuationDissipation:
    """Run SGD on linear regression and measure Yaida's identities.

    ``chains`` independent SGD chains (one batched tensor) start at the
    least-squares solution, run ``burn_in`` steps (default 20 relaxation times
    1 / (eta lambda_min(H))), then average <grad L>, <theta . grad L> and
    <tr C~(theta)> (exact, from :func:`gradient_noise`'s formula) over
    ``steps`` steps. The chains are independent, so the per-chain time
    averages are i.i.d. and their spread gives honest standard errors whatever
    the autocorrelation within a chain.

    Args:
        X: (N, P) inputs with N > P (a unique minimiser); y: (N,) noisy targets.
        eta: learning rate below the exact mean-square stability bound of SGD on
            this X (``_mean_square_critical_eta``; it is below 2 / lambda_max(H),
            H = X^T X / N, the full-batch bound).
        batch_size: b; steps: measured steps per chain; chains: >= 2.
        burn_in: discarded steps (default 20 / (eta lambda_min(H)); if that exceeds
            10^6 steps it must be given explicitly); sampling: one of
            :data:`SAMPLINGS`; seed: randomness.

    Returns:
        A :class:`FluctuationDissipation`.

    Raises:
        ValueError: bad inputs, an eta beyond the mean-square bound, a default
            burn-in over 10^6 steps, or iterates that overflow.
    """
    X = design("X", X)
    y = targets("y", y, X.shape[0])
    eta = check_positive("eta", eta)
    sampling = check_choice("sampling", sampling, SAMPLINGS)
    n, p = X.shape
    b = _check_batch(batch_size, n, sampling)
    steps = check_int("steps", steps, minimum=1)
    chains = check_int("chains", chains, minimum=2)
    check_bytes("chains, batch_size", 8.0 * chains * (b * (p + 2) + 4 * p + 2))
    hess = X.T @ X / n
    check_finite_result("X", hess)
    eig = torch.linalg.eigvalsh(hess)
    if eig[0] <= 1e-12 * eig[-1]:
        raise ValueError(message("X", "of full column rank (N > P)", f"shape {(n, p)}"))
    if eta >= 2.0 / float(eig[-1]):
        raise ValueError(
            message("eta", f"< 2 / lambda_max(H) = {2.0 / float(eig[-1]):.4g}", eta, "SGD diverges")
        )
    critical = _mean_square_critical_eta(X, b, sampling)
    if eta >= critical:
        raise ValueError(
            message(
                "eta",
                f"< {critical:.4g}, the mean-square stability bound of {sampling} SGD with "
                f"batch size {b} on this X",
                eta,
                "SGD's second moment diverges (large per-sample curvatures); lower eta or "
                "raise batch_size",
            )
        )
    if burn_in is None:
        relax = 20.0 / (eta * float(eig[0]))
        if relax > _MAX_DEFAULT_BURN_IN:
            raise ValueError(
                message(
                    "burn_in",
                    "given explicitly when 20 relaxation times 20 / (eta lambda_min(H)) "
                    f"exceed {_MAX_DEFAULT_BURN_IN:.0e} steps",
                    None,
                    f"The default would be {relax:.3g} steps (lambda_min(H) = "
                    f"{float(eig[0]):.3g}); pass burn_in, raise eta, or rescale X",
                )
            )
        burn_in = math.ceil(relax)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    f_sigma, f_s = _noise_factor(n, b, sampling)
    norms2 = (X * X).sum(1)
    theta = torch.linalg.lstsq(X, y[:, None]).solution.T.repeat(chains, 1)
    sums = torch.zeros(chains, p + 2, dtype=torch.float64)
    for t in range(burn_in + steps):
        r = theta @ X.T - y  # (chains, N) residuals
        if t >= burn_in:
            grad = r @ X / n
            g2 = (grad * grad).sum(1)
            tr_s = (r * r * norms2).mean(1)
            tr_c2 = f_sigma * (tr_s - g2) + f_s * tr_s + g2  # tr C~(theta)
            sums += torch.cat([grad, (theta * grad).sum(1, keepdim=True), tr_c2[:, None]], 1)
        theta = theta - eta * (_batch_weights(chains, n, b, sampling, gen) * r) @ X
        if t % 256 == 255 or t == burn_in + steps - 1:
            _check_finite(theta, sums, t, eta)
    means = sums / steps
    gradient = Estimate.from_samples(means[:, :p])
    alignment = Estimate.from_samples(means[:, p])
    half = Estimate.from_samples(0.5 * eta * means[:, p + 1])
    diff = Estimate.from_samples(means[:, p] - 0.5 * eta * means[:, p + 1])
    return FluctuationDissipation(
        gradient,
        alignment,
        half,
        diff,
        gradient.zscore(0.0),
        float(diff.zscore(0.0)),
        float(alignment.mean / half.mean),
    )
