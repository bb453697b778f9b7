"""The law of |W_L ... W_1 u|^2 for Gaussian layers: exact log-moments, log-normal limit, sampler.

For a unit vector u in R^{n_0} and independent W_l in R^{n_l x n_{l-1}} with N(0, sigma2 / n_{l-1})
entries, rotational invariance gives (Hanin & Nica 2020, Products of many large random
matrices and gradients in deep neural networks, Section 2; Hanin & Zlokapa 2023)

    |W_L ... W_1 u|^2 =d sigma2^L prod_{l=1}^L chi2_{n_l} / n_{l-1}   (independent chi-squares),

so log|theta|^2 is a sum of independent log chi-squares with exact cumulants
kappa_1 = sum_l [psi(n_l / 2) + log 2 - log n_{l-1}] + L log sigma2 and
kappa_j = sum_l psi^{(j-1)}(n_l / 2) (j >= 2). To leading order in 1/n (equal widths n,
sigma2 = 1) log|theta|^2 ~ N(-L / n, 2 L / n), the log-normal law. Some lecture
notes write |theta| ~ exp(N(-L/(4n), L/(4n))) and elsewhere use -L/(2n), the mean
of log|theta|, for log|theta|^2; the correct leading order is log|theta|^2 ~ N(-L/n, 2L/n),
i.e. log|theta| ~ N(-L/(2n), L/(2n)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.special as sp
import torch

from .._checks import (
    as_float_array,
    check_bytes,
    check_choice,
    check_int,
    check_positive,
    message,
)

__all__ = ["ProductNormLaw"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
_CHUNK_FLOATS = 2**22
_CHUNK = 2**16  # samples per chi-square block


@dataclass(frozen=True)
class ProductNormLaw:
    """The law of |W_L ... W_1 u|^2 for Gaussian W_l (N(0, sigma2 / n_{l-1}) entries), |u| = 1.

    Attributes:
        dims: (n_0, n_1, ..., n_L): the input dimension, then each matrix's output dimension.
        sigma2: weight variance scale.

    Two 10 x 10 layers: E log|theta|^2 = 2 (psi(5) - log 5), psi(5) = 1 + 1/2 + 1/3 + 1/4 - gamma;
    the leading order is -2/10:

    >>> law = ProductNormLaw((10, 10, 10))
    >>> abs(law.log_mean - 2 * (25 / 12 - 0.5772156649015329 - math.log(5))) < 1e-14
    True
    >>> law.lognormal()
    (-0.2, 0.4)
    """

    dims: tuple[int, ...]
    sigma2: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.dims, str) or not isinstance(self.dims, Sequence | np.ndarray):
            raise TypeError(message("dims", "a sequence (n_0, n_1, ..., n_L)", self.dims))
        dims = tuple(check_int("dims", n, minimum=1) for n in self.dims)
        if len(dims) < 2:
            raise ValueError(
                message("dims", "(n_0, n_1, ..., n_L) with L >= 1 matrices", self.dims)
            )
        object.__setattr__(self, "dims", dims)
        sigma2 = check_positive("sigma2", self.sigma2)
        if not math.isfinite(len(dims) * math.log(sigma2)) or sigma2 < 1e-300:
            raise ValueError(message("sigma2", "a variance in [1e-300, 1e300]", self.sigma2))
        object.__setattr__(self, "sigma2", sigma2)

    @property
    def depth(self) -> int:
        """L, the number of matrices."""
        return len(self.dims) - 1

    @property
    def _outs(self) -> np.ndarray:
        return np.array(self.dims[1:], dtype=np.float64)

    @property
    def _shift(self) -> float:
        """The deterministic part of log|theta|^2: L log sigma2 + sum_l (log 2 - log n_{l-1})."""
        ins = np.array(self.dims[:-1], dtype=np.float64)
        return self.depth * math.log(self.sigma2) + float(np.sum(math.log(2.0) - np.log(ins)))

    @property
    def log_mean(self) -> float:
        """E log|theta|^2 = sum_l [psi(n_l / 2) + log 2 - log n_{l-1}] + L log sigma2 (exact)."""
        return self._shift + float(np.sum(sp.digamma(self._outs / 2)))

    @property
    def log_variance(self) -> float:
        """Var log|theta|^2 = sum_l psi'(n_l / 2) (exact; about 2 sum_l 1/n_l)."""
        return float(np.sum(sp.polygamma(1, self._outs / 2)))

    def log_cumulant(self, j: int) -> float:
        """The j-th cumulant of log|theta|^2 (j >= 1): sum_l psi^{(j-1)}(n_l / 2) for j >= 2."""
        j = check_int("j", j, minimum=1)
        if j == 1:
            return self.log_mean
        # psi^(j-1)(x) ~ (j - 2)! / x^(j-1): beyond float64 for large j (or tiny widths)
        value = float(np.sum(sp.polygamma(j - 1, self._outs / 2))) if j <= 10**4 else math.nan
        if not math.isfinite(value):
            raise ValueError(
                message("j", "small enough that the cumulant is a float64", j, "Use a lower order")
            )
        return value

    def lognormal(self) -> tuple[float, float]:
        """Leading order of log|theta|^2: N(L log sigma2 + log(n_L/n_0) - S, 2 S), S = sum 1/n_l."""
        inv = float(np.sum(1.0 / self._outs))
        drift = self.depth * math.log(self.sigma2) + math.log(self.dims[-1] / self.dims[0])
        return drift - inv, 2.0 * inv

    def log_cdf(self, v: Any) -> np.ndarray:
        """P(log|theta|^2 <= v), exact, by Gil-Pelaez inversion of the characteristic function.

        phi(t) = E exp(i t log|theta|^2) = exp(i t shift) prod_l Gamma(n_l/2 + i t) / Gamma(n_l/2),
        F(v) = 1/2 - (1/pi) int_0^inf Im[exp(-i t v) phi(t)] / t dt (Gil-Pelaez 1951).

        >>> law = ProductNormLaw((4, 3))  # |theta|^2 = chi2_3 / 4
        >>> import scipy.stats as st
        >>> bool(abs(law.log_cdf(0.0) - st.chi2.cdf(4.0, 3)) < 1e-12)
        True
        """
        v = as_float_array("v", v, allow_empty=True)
        half = self._outs / 2
        base = sp.gammaln(half)

        def log_phi(t: np.ndarray) -> np.ndarray:
            parts = sp.loggamma(half[None, :] + 1j * t[:, None]) - base[None, :]
            return parts.sum(1) + 1j * t * self._shift

        # Beyond 40 standard deviations the CDF is 0 or 1 to double precision (the left tail of
        # log chi2_k decays like exp(k u / 2), the right one faster), so clip v there: the
        # quadrature below then needs a bounded number of panels.
        sd = math.sqrt(self.log_variance)
        v = np.clip(v, self.log_mean - 40 * max(sd, 1.0), self.log_mean + 40 * max(sd, 1.0))
        top = 1.0 / sd
        while float(log_phi(np.array([top])).real[0]) > -40.0:
            top *= 2.0
        # exp(-i t v) phi(t) turns about top |v - shift| / (2 pi) times: 3 turns per 24-node panel
        spread = float(np.abs(v - self._shift).max()) if v.size else 0.0
        panels = min(32 + math.ceil(top * spread / (6 * math.pi)), 20000)
        edges = np.linspace(0.0, top, panels + 1)
        half_w = 0.5 * np.diff(edges)
        t = ((edges[:-1] + half_w)[:, None] + half_w[:, None] * _NODES[None, :]).ravel()
        w = (half_w[:, None] * _WEIGHTS[None, :]).ravel()
        phi = np.exp(log_phi(t))
        flat = v.reshape(-1)
        out = np.empty_like(flat)
        for start in range(0, flat.size, 256):  # bounded memory: 256 points at a time
            vv = flat[start : start + 256]
            vals = np.imag(np.exp(-1j * t[None, :] * vv[:, None]) * phi[None, :]) / t[None, :]
            out[start : start + 256] = 0.5 - (vals @ w) / math.pi
        return np.clip(out, 0.0, 1.0).reshape(v.shape)

    def sample(
        self,
        n_samples: int,
        *,
        seed: int = 0,
        method: Literal["matrices", "chi2"] = "matrices",
        memory_budget: int | None = None,
    ) -> torch.Tensor:
        """Samples of log|W_L ... W_1 u|^2 (float64, shape (n_samples,)).

        ``"matrices"`` multiplies real Gaussian matrices into a random unit vector u;
        ``"chi2"`` draws the independent chi-squares of the exact law. The output and the
        largest working block must fit ``memory_budget`` bytes (default 4 GiB): a larger
        request is refused before anything is drawn.

        >>> s = ProductNormLaw((3, 3)).sample(5, method="chi2")
        >>> s.shape, s.dtype
        (torch.Size([5]), torch.float64)
        """
        n_samples = check_int("n_samples", n_samples, minimum=1)
        check_choice("method", method, ("matrices", "chi2"))
        seed = check_int("seed", seed, minimum=0)
        budget = None if memory_budget is None else check_int("memory_budget", memory_budget, 1)
        biggest = max(a * b for a, b in zip(self.dims[1:], self.dims[:-1], strict=True))
        per_sample = 8.0 * (self.depth if method == "chi2" else biggest + max(self.dims))
        check_bytes("dims", per_sample, budget, "Use smaller layers")
        check_bytes("n_samples", 8.0 * n_samples + min(n_samples, _CHUNK) * per_sample, budget)
        if method == "chi2":  # log|theta|^2 = shift + sum_l log g_l, g_l ~ Gamma(n_l / 2)
            rng = np.random.default_rng(seed)
            out = np.empty(n_samples)
            for start in range(0, n_samples, _CHUNK):
                m = min(_CHUNK, n_samples - start)
                out[start : start + m] = np.log(
                    rng.gamma(self._outs / 2, size=(m, self.depth))
                ).sum(1)
            return torch.from_numpy(out + self._shift)
        gen = torch.Generator().manual_seed(seed)
        chunk = max(1, min(n_samples, _CHUNK_FLOATS // biggest))
        out = []
        for start in range(0, n_samples, chunk):
            m = min(chunk, n_samples - start)
            vec = torch.randn(m, self.dims[0], 1, generator=gen, dtype=torch.float64)
            vec = vec / vec.norm(dim=1, keepdim=True)
            for fan_out, fan_in in zip(self.dims[1:], self.dims[:-1], strict=True):
                w = torch.randn(m, fan_out, fan_in, generator=gen, dtype=torch.float64)
                vec = torch.bmm(w * math.sqrt(self.sigma2 / fan_in), vec)
            out.append(torch.log((vec[:, :, 0] ** 2).sum(1)))
        return torch.cat(out)
