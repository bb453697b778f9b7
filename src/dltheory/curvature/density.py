"""Spectral density of the loss Hessian by stochastic Lanczos quadrature (SLQ).

For a unit probe v = z / sqrt(P) (z Rademacher), E[v^T f(H) v] = tr f(H) / P, and m
Lanczos steps from v give the Gauss quadrature v^T f(H) v ~ sum_j tau_j f(theta_j)
(theta_j the Ritz values, tau_j the squared first components of T_m's eigenvectors),
exact for polynomials of degree <= 2m - 1 (Golub & Meurant 2010, "Matrices, moments and
quadrature with applications", Ch. 6; Ubaru, Chen & Saad 2017, "Fast estimation of
tr(f(A)) via stochastic Lanczos quadrature"; Ghorbani, Krishnan & Xiao 2019, "An
investigation into neural net optimization via Hessian eigenvalue density"). The
smoothed density phi_sigma(t) = (1/n_v) sum_v sum_j tau_j N(t; theta_j, sigma^2)
integrates to 1; across probes it is a mean of independent samples, so its standard
error (per grid point, and for each moment (1/P) tr H^p) is their std / sqrt(n_v).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import as_float_tensor, check_bytes, check_int, check_positive, message
from ._data import generator_from
from .hessian import HessianOperator
from .lanczos import lanczos_eigenpairs, lanczos_tridiagonal

__all__ = ["SpectralDensity", "hessian_spectral_density", "spectral_density"]


@dataclass(frozen=True)
class SpectralDensity:
    """Gaussian-smoothed eigenvalue density from SLQ.

    Attributes:
        grid: (G,) points t.
        density: (G,) phi_sigma(t), the mean over probes (integrates to 1).
        stderr: (G,) its standard error across probes.
        nodes: (n_probes, m) Ritz values per probe (zero-weight padding past
            an early Lanczos breakdown).
        weights: (n_probes, m) quadrature weights tau (each row sums to 1 without
            deflation, and to 1 in expectation with it).
        sigma: the smoothing width.
        n_matvecs: operator products used.
    """

    grid: torch.Tensor
    density: torch.Tensor
    stderr: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float
    n_matvecs: int

    def moment(self, p: int) -> tuple[float, float]:
        """(estimate, stderr) of (1/P) tr(A^p): exact per probe for p <= 2m - 1."""
        p = check_int("p", p, minimum=0)
        samples = (self.weights * self.nodes**p).sum(1)
        if not bool(torch.isfinite(samples).all()):
            raise ValueError(message("p", "small enough that tr(A^p) / P is a float", p))
        n = samples.numel()
        se = float(samples.std() / math.sqrt(n)) if n > 1 else float("nan")
        return float(samples.mean()), se


def spectral_density(
    matvec: Callable[[torch.Tensor], torch.Tensor] | Any,
    dim: int,
    *,
    n_probes: int = 8,
    n_steps: int = 90,
    sigma: float | None = None,
    grid: Any = None,
    n_grid: int = 1000,
    deflate: int = 0,
    seed: int | torch.Generator | None = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> SpectralDensity:
    """SLQ eigenvalue density of a symmetric operator (n_probes x n_steps products).

    Args:
        matvec: v -> A v (or an object with ``.matvec``), A symmetric (dim, dim).
        dim: size of A.
        n_probes: independent Rademacher probes (>= 2 for a standard error).
        n_steps: Lanczos steps per probe.
        sigma: Gaussian smoothing width; default 1 % of the Ritz-value range.
        grid: points at which to evaluate the density; default ``n_grid`` points
            covering the Ritz values +- 5 sigma.
        deflate: compute this many largest-magnitude eigenpairs exactly first
            (certified Lanczos, relative tolerance 1e-8) and run SLQ on the deflated
            operator (I - V V^T) A (I - V V^T) with probes (I - V V^T) z: the
            outliers then enter as exact point masses 1/dim and carry no variance
            (the idea of Hutch++ applied to SLQ; Papyan 2020 removes outliers
            similarly). The estimator stays unbiased.
        seed: probes' randomness.

    >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    >>> d = spectral_density(lambda v: A @ v, 4, n_probes=3, n_steps=4)
    >>> [round(d.moment(p)[0], 9) for p in (0, 1, 2)]  # 1, mean 2.5, mean square 7.5
    [1.0, 2.5, 7.5]
    """
    op = matvec.matvec if hasattr(matvec, "matvec") else matvec
    if not callable(op):
        raise TypeError(message("matvec", "a callable v -> A v", type(matvec).__name__))
    dim = check_int("dim", dim, minimum=1)
    n_probes = check_int("n_probes", n_probes, minimum=1)
    n_steps = check_int("n_steps", n_steps, minimum=1)
    n_grid = check_int("n_grid", n_grid, minimum=2)
    deflate = check_int("deflate", deflate, minimum=0)
    if deflate >= dim:
        raise ValueError(message("deflate", f"smaller than dim = {dim}", deflate))
    gen = generator_from(seed)
    m = min(n_steps, dim - deflate)
    item = torch.empty((), dtype=dtype).element_size()
    check_bytes("dim", float(item) * dim * (m + deflate + 2), fix="Use a smaller operator")
    check_bytes("n_probes", 16.0 * n_probes * (m + deflate), fix="Use fewer probes")
    check_bytes("n_grid", 8.0 * n_grid * (m + deflate + 2), fix="Use a coarser grid")
    nodes = torch.zeros(n_probes, m + deflate, dtype=torch.float64)
    weights = torch.zeros(n_probes, m + deflate, dtype=torch.float64)
    count = [0]

    def counted(v: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        w = op(v)
        if not isinstance(w, torch.Tensor) or w.shape != (dim,):
            raise ValueError(message("matvec", f"a map to vectors of shape ({dim},)", "other"))
        if not bool(torch.isfinite(w).all()):
            raise ValueError(message("matvec", "finite", "a product with NaN or inf entries"))
        return w.to(dtype)

    product = counted
    project = None
    if deflate:
        top = lanczos_eigenpairs(
            counted,
            dim,
            k=deflate,
            which="magnitude",
            tol=1e-8,
            seed=gen,
            dtype=dtype,
            device=device,
        )
        V = top.eigenvectors
        nodes[:, m:] = top.eigenvalues.to(torch.float64).cpu()
        weights[:, m:] = 1.0 / dim

        def project(v: torch.Tensor) -> torch.Tensor:
            return v - V @ (V.T @ v)

        def product(v: torch.Tensor) -> torch.Tensor:
            return project(counted(project(v)))

    for i in range(n_probes):
        z = torch.randint(0, 2, (dim,), generator=gen, device=gen.device)
        v = (2.0 * z - 1.0).to(dtype=dtype, device=device)
        mass = 1.0  # ||v||^2 / dim of the probe, 1 without deflation
        if project is not None:
            v = project(v)
            mass = float(v @ v) / dim
        alphas, betas = lanczos_tridiagonal(product, v, m)
        T = torch.diag(alphas) + torch.diag(betas, 1) + torch.diag(betas, -1)
        theta, s = torch.linalg.eigh(T)
        nodes[i, : theta.numel()] = theta
        weights[i, : theta.numel()] = mass * s[0] ** 2
        if theta.numel() < m:  # padding: zero weight at an existing node
            nodes[i, theta.numel() : m] = theta[0]
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max(0.01 * (hi - lo), 1e-12 * max(abs(lo), abs(hi), 1.0))
    sigma = check_positive("sigma", sigma)
    if grid is None:
        t = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid, dtype=torch.float64)
    else:
        t = as_float_tensor("grid", grid, ndim=1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * ((t[None, None, :] - nodes[:, :, None]) / sigma) ** 2)
    per_probe = (weights[:, :, None] * kernel).sum(1) / (sigma * math.sqrt(2 * math.pi))
    density = per_probe.mean(0)
    stderr = (
        per_probe.std(0) / math.sqrt(n_probes)
        if n_probes > 1
        else torch.full_like(density, float("nan"))
    )
    return SpectralDensity(t, density, stderr, nodes, weights, float(sigma), count[0])


def hessian_spectral_density(
    model: Any,
    loss_fn: Callable,
    data: Any,
    *,
    n_probes: int = 8,
    n_steps: int = 90,
    sigma: float | None = None,
    grid: Any = None,
    deflate: int = 0,
    seed: int | torch.Generator | None = 0,
) -> SpectralDensity:
    """SLQ eigenvalue density of the loss Hessian (see :func:`spectral_density`).

    >>> lin = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()
    >>> d = hessian_spectral_density(lin, mse, (x, torch.zeros(2, 1)), n_probes=2)
    >>> round(d.moment(1)[0], 9)  # tr H / P = (0.5 + 2) / 2
    1.25
    """
    H = HessianOperator(model, loss_fn, data)
    return spectral_density(
        H,
        H.shape[0],
        n_probes=n_probes,
        n_steps=n_steps,
        sigma=sigma,
        grid=grid,
        deflate=deflate,
        seed=seed,
        dtype=H.dtype,
        device=H.device,
    )
