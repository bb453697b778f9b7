"""Monte-Carlo evidence and scale posterior from sampled weight matrices (the measurement face).

Samples the readout and hidden matrices W^(L+1), ..., W^(2) of the deep linear network
(entries N(0, sigma2 / n_{l-1})), forms the row vector r = W^(L+1) ... W^(2) in R^{n_1}, and
integrates the first layer exactly: given r, theta = r W^(1) ~ N(0, v I) with
v = sigma2 |r|^2 / n_0. The likelihood weight of a sample is the Gaussian density
w = N(y; 0, v x x^T), so p(y | x) = E[w] and E_post[v] = E[w v] / E[w]
(importance sampling from the prior; Hanin & Zlokapa 2023 give the exact values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_bytes, check_finite_result, check_int, message
from ..finite import Estimate
from ._data import validate_problem

__all__ = ["MonteCarloPosterior", "monte_carlo_posterior"]

_CHUNK_FLOATS = 2**22  # memory bound of one batch of sampled matrices


@dataclass(frozen=True)
class MonteCarloPosterior:
    """Importance-sampling estimates from prior samples of the weights.

    Attributes:
        evidence: Estimate of p(y | x) = E_prior[w] (mean, standard error, n).
        log_evidence: log of the evidence estimate's mean.
        perp_variance: ratio estimate of E_post[v] with its delta-method standard error.
        effective_sample_size: (sum w)^2 / sum w^2.
        scales: the n sampled v (for plots), float64 tensor.
        log_weights: their log-likelihood weights log w.
    """

    evidence: Estimate
    log_evidence: float
    perp_variance: Estimate
    effective_sample_size: float
    scales: torch.Tensor
    log_weights: torch.Tensor


def _sample_scales(
    widths: tuple[int, ...], n_in: int, sigma2: float, n_samples: int, gen: torch.Generator
) -> torch.Tensor:
    """v = sigma2 |W^(L+1) ... W^(2)|^2 / n_0 from real products of Gaussian matrices."""
    if not widths:
        return torch.full((n_samples,), sigma2 / n_in, dtype=torch.float64)
    biggest = (
        max(a * b for a, b in zip(widths[1:], widths[:-1], strict=True)) if len(widths) > 1 else 1
    )
    chunk = max(1, min(n_samples, _CHUNK_FLOATS // max(biggest, widths[-1])))
    out = []
    done = 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        # readout W^(L+1): (m, 1, n_L), entries N(0, sigma2 / n_L)
        row = torch.randn(m, 1, widths[-1], generator=gen, dtype=torch.float64)
        row *= math.sqrt(sigma2 / widths[-1])
        for fan_out, fan_in in zip(widths[:0:-1], widths[-2::-1], strict=True):
            w = torch.randn(m, fan_out, fan_in, generator=gen, dtype=torch.float64)
            row = torch.bmm(row, w * math.sqrt(sigma2 / fan_in))
        out.append(sigma2 * (row[:, 0, :] ** 2).sum(1) / n_in)
        done += m
    return torch.cat(out)


def monte_carlo_posterior(
    x: Any, y: Any, widths: Any, sigma2: float = 1.0, *, n_samples: int = 10_000, seed: int = 0
) -> MonteCarloPosterior:
    """Estimate the evidence and E_post[v] by sampling the network's weight matrices.

    An independent check of :func:`deep_linear_posterior`: no chi-square reduction and no
    Meijer G-function, only matrix products and the Gaussian likelihood of the first layer.

    Args:
        x: (P, n_0) inputs, full row rank, P <= n_0.
        y: (P,) targets.
        widths: hidden widths (n_1, ..., n_L).
        sigma2: prior variance scale.
        n_samples: number of prior samples (>= 2).
        seed: seed of the torch generator.

    Returns:
        :class:`MonteCarloPosterior`.

    >>> x, y = torch.eye(1, 2), torch.tensor([1.0])
    >>> mc = monte_carlo_posterior(x, y, (), sigma2=2.0, n_samples=4)
    >>> abs(mc.log_evidence - (-0.5 * math.log(2 * math.pi) - 0.5)) < 1e-12  # L = 0: exact
    True
    """
    x, y, widths, sigma2 = validate_problem(x, y, widths, sigma2)
    n_samples = check_int("n_samples", n_samples, minimum=2)
    if not 1e-100 <= sigma2 <= 1e100:
        raise ValueError(message("sigma2", "in [1e-100, 1e100] for Monte-Carlo weights", sigma2))
    biggest = max([a * b for a, b in zip(widths[1:], widths[:-1], strict=False)] + [*widths, 1])
    check_bytes("widths", 16.0 * biggest)
    check_bytes("n_samples", 48.0 * n_samples)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(message("seed", "an integer", seed))
    gen = torch.Generator().manual_seed(seed)
    n_data, n_in = x.shape
    v = _sample_scales(widths, n_in, sigma2, n_samples, gen)
    gram = x @ x.T
    chol = torch.linalg.cholesky(gram)
    q = float(y @ torch.cholesky_solve(y[:, None], chol)[:, 0])
    log_det = 2.0 * float(torch.log(torch.diagonal(chol)).sum())
    log_w = -0.5 * n_data * torch.log(2 * math.pi * v) - 0.5 * log_det - 0.5 * q / v
    shift = float(log_w.max())
    w = torch.exp(log_w - shift)
    w_mean = float(w.mean())
    w_se = float(w.std()) / math.sqrt(n_samples)
    scale = math.exp(shift)
    ratio = float((w * v).sum() / w.sum())
    ratio_se = float(torch.sqrt(((w * (v - ratio)) ** 2).sum() / (n_samples * (n_samples - 1))))
    check_finite_result("x, y, sigma2", (w_mean * scale, w_se * scale, ratio, ratio_se / w_mean))
    return MonteCarloPosterior(
        evidence=Estimate(w_mean * scale, w_se * scale, n_samples),
        log_evidence=math.log(w_mean) + shift,
        perp_variance=Estimate(ratio, ratio_se / w_mean, n_samples),
        effective_sample_size=float(w.sum() ** 2 / (w * w).sum()),
        scales=v,
        log_weights=log_w,
    )
