"""Gaussian expectations of an activation by quadrature and the Mehler series.

The 2-D expectation over a bivariate Gaussian with variances ``k11, k22`` and
correlation ``rho`` is expanded in normalised Hermite polynomials
``h_k = He_k / sqrt(k!)`` (Mehler's formula; O'Donnell, *Analysis of Boolean
Functions*, ch. 11; Daniely, Frostig & Singer 2016, Sec. 4):

    E[f(u) g(v)] = sum_k c_k^f(k11) c_k^g(k22) rho^k,
    c_k^f(K)     = E_{z ~ N(0,1)}[f(sqrt(K) z) h_k(z)].

The coefficients need only one 1-D quadrature per distinct variance; the sum
over pairs is a short power series. By Cauchy-Schwarz its truncation error after
degree D is at most ``|rho|^(D+1) sqrt(t^f_D(k11) t^g_D(k22))`` with the tails
``t_D(K) = E[f(sqrt(K) z)^2] - sum_{k<=D} c_k(K)^2``: a rigorous error bound,
used to pick D and to send the rare pairs it cannot certify (very large
variances of a saturating activation) to a direct 2-D quadrature.

1-D integrals use composite Gauss-Legendre panels on [-L, L] (16 nodes per
panel), with panel edges at the activation's kinks so that piecewise-smooth
activations (ELU, ReLU6, ...) converge as fast as smooth ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch

Fn = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["DEFAULT_TOL", "expectation_1d", "hermite_coefficients", "mehler_expectation"]

DEFAULT_TOL = 1e-12
_NODES_PER_PANEL = 16
_DEGREES = (16, 48, 128)
_DEGENERATE = 64 * torch.finfo(torch.float64).eps


@lru_cache(maxsize=8)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _half_width(degree: int) -> float:
    # h_k(z)^2 phi(z) lives inside |z| < 2 sqrt(k) (the largest Hermite zero);
    # 10 more units leave a Gaussian tail below e^-50.
    return 2.0 * math.sqrt(max(degree, 1)) + 10.0


def _panel_width(k_max: float) -> float:
    # f(sqrt(K) z) has features of width ~1/sqrt(K) in z when f has them at O(1).
    return min(1.0, 1.0 / math.sqrt(max(k_max, 1e-300)))


def _grid(
    variances: torch.Tensor, kinks: Sequence[float], degree: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes z (R, M) and weights w * phi(z) (R, M) for each variance (R,).

    Panel edges include the kinks c / sqrt(K); without kinks off zero the grid
    is shared (R = 1).
    """
    off_zero = [c for c in kinks if c != 0.0]
    cuts = None
    if off_zero:
        cuts = (
            torch.tensor(off_zero, dtype=torch.float64, device=variances.device)[None, :]
            / variances.clamp_min(1e-300).sqrt()[:, None]
        )
    return _grid_with_cuts(variances, cuts, degree)


def _grid_with_cuts(
    variances: torch.Tensor, cuts: torch.Tensor | None, degree: int
) -> tuple[torch.Tensor, torch.Tensor]:
    half = _half_width(degree)
    k_max = float(variances.max()) if variances.numel() else 1.0
    n_panels = min(2 * math.ceil(half / _panel_width(k_max)), 4096)
    if cuts is None:
        nodes, weights = _shared_grid(half, n_panels)
        return nodes.to(variances.device), weights.to(variances.device)
    edges = torch.linspace(-half, half, n_panels + 1, dtype=torch.float64)[None, :]
    edges = edges.to(cuts.device).expand(cuts.shape[0], -1)
    edges = torch.sort(torch.cat([edges, cuts.clamp(-half, half)], dim=1), dim=1)[0]
    return _panels(edges)


@lru_cache(maxsize=64)
def _shared_grid(half: float, n_panels: int) -> tuple[torch.Tensor, torch.Tensor]:
    edges = torch.linspace(-half, half, n_panels + 1, dtype=torch.float64)[None, :]
    return _panels(edges)


def _panels(edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = (torch.from_numpy(a).to(edges.device) for a in _legendre(_NODES_PER_PANEL))
    lo, hi = edges[:, :-1, None], edges[:, 1:, None]
    nodes = (0.5 * (hi - lo) * x + 0.5 * (hi + lo)).flatten(1)
    weights = (0.5 * (hi - lo) * w).flatten(1)
    return nodes, weights * torch.exp(-0.5 * nodes**2) / math.sqrt(2 * math.pi)


def _hermite_table(nodes: torch.Tensor, weights: torch.Tensor, degree: int) -> torch.Tensor:
    """T[..., m, k] = w_m phi(z_m) h_k(z_m), built stably through sqrt(phi).

    Recursion g_{k+1} = (z g_k - sqrt(k) g_{k-1}) / sqrt(k+1) on g_k = h_k sqrt(phi),
    which stays O(1) where h_k alone would overflow.
    """
    root_phi = torch.exp(-0.25 * nodes**2) / (2 * math.pi) ** 0.25
    scale = torch.where(root_phi > 0, weights / root_phi, torch.zeros_like(weights))
    table = torch.empty(*nodes.shape, degree + 1, dtype=torch.float64, device=nodes.device)
    prev, cur = torch.zeros_like(nodes), root_phi
    table[..., 0] = cur
    for k in range(degree):
        prev, cur = cur, (nodes * cur - math.sqrt(k) * prev) / math.sqrt(k + 1)
        table[..., k + 1] = cur
    return table * scale[..., None]


def expectation_1d(fn: Fn, variances: torch.Tensor, kinks: Sequence[float] = ()) -> torch.Tensor:
    """E[fn(u)], u ~ N(0, K), elementwise over a tensor of variances K >= 0 (float64)."""
    k = torch.as_tensor(variances, dtype=torch.float64)
    flat = k.reshape(-1)
    nodes, weights = _grid(flat, kinks, degree=1)
    values = fn(flat.sqrt()[:, None] * nodes)
    return (values * weights).sum(-1).reshape(k.shape)


def hermite_coefficients(
    fn: Fn, variances: torch.Tensor, degree: int, kinks: Sequence[float] = ()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised Hermite coefficients c_k(K), k = 0..degree, and E[fn(sqrt(K) z)^2].

    Args:
        fn: elementwise function (float64 tensors).
        variances: (R,) variances K >= 0.
        degree: highest Hermite degree D.
        kinks: points (in preactivation units) where fn is not smooth.

    Returns:
        ``(coefficients (R, D+1), second_moment (R,))``.
    """
    nodes, weights = _grid(variances, kinks, degree)
    values = fn(variances.sqrt()[:, None] * nodes)
    second = (values**2 * weights).sum(-1)
    if nodes.shape[0] == 1:
        table = _shared_table(nodes, weights, degree)
        coefficients = values @ table
    else:
        coefficients = torch.einsum("rm,rmk->rk", values, _hermite_table(nodes, weights, degree))
    return coefficients, second


_TABLE_CACHE: dict[tuple, torch.Tensor] = {}


def _shared_table(nodes: torch.Tensor, weights: torch.Tensor, degree: int) -> torch.Tensor:
    key = (str(nodes.device), nodes.shape[-1], float(nodes[0, 0]), float(nodes[0, 1]), degree)
    table = _TABLE_CACHE.get(key)
    if table is None:
        if len(_TABLE_CACHE) > 16:
            _TABLE_CACHE.clear()
        table = _hermite_table(nodes[0], weights[0], degree)
        _TABLE_CACHE[key] = table
    return table


def _correlation(k11: torch.Tensor, k12: torch.Tensor, k22: torch.Tensor) -> torch.Tensor:
    denom = (k11 * k22).sqrt()
    rho = torch.where(denom > 0, k12 / torch.where(denom > 0, denom, 1.0), 0.0)
    rho = rho.clamp(-1.0, 1.0)
    # Correlations within a few ulps of +-1 are the same input twice (or its
    # negative): snap so that a diagonal is computed as the exact 1-D moment.
    return torch.where(rho.abs() >= 1 - _DEGENERATE, rho.sign(), rho)


def mehler_expectation(
    f: Fn,
    g: Fn,
    k11: torch.Tensor,
    k12: torch.Tensor,
    k22: torch.Tensor,
    kinks: Sequence[float] = (),
    tol: float = DEFAULT_TOL,
    return_error: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """E[f(u) g(v)] over (u, v) ~ N(0, [[k11, k12], [k12, k22]]), broadcast, float64.

    Pairs the Mehler bound certifies have an absolute truncation error at most
    ``tol * max(1, sqrt(E f^2 E g^2))``; the others use a kink-aware nested
    composite Gauss-Legendre rule; rho = +-1 is a 1-D integral.

    With ``return_error=True`` also returns an error estimate per pair: the
    certified series bound |rho|^(D+1) sqrt(t_f t_g) (plus rounding), or, for
    the nested rule, its difference from the same rule on panels half as wide.
    """
    k11, k12, k22 = torch.broadcast_tensors(*(t.to(torch.float64) for t in (k11, k12, k22)))
    shape = k11.shape
    rho = _correlation(k11, k12, k22)
    # Distinct variances: one 1-D quadrature each.
    uniq, inverse = torch.unique(torch.cat([k11.reshape(-1), k22.reshape(-1)]), return_inverse=True)
    inv1, inv2 = inverse[: k11.numel()].reshape(shape), inverse[k11.numel() :].reshape(shape)
    interior = rho.abs() < 1
    rho_max = float(rho[interior].abs().max()) if bool(interior.any()) else 0.0

    degree, worst, scale = 0, 0.0, 1.0
    for degree in _DEGREES if bool(interior.any()) else ():
        cf, mf = hermite_coefficients(f, uniq, degree, kinks)
        cg, mg = (cf, mf) if g is f else hermite_coefficients(g, uniq, degree, kinks)
        tail_f = (mf - (cf**2).sum(-1)).clamp_min(0.0) + 4e-16 * mf
        tail_g = (mg - (cg**2).sum(-1)).clamp_min(0.0) + 4e-16 * mg
        scale = max(1.0, float((mf * mg).max().sqrt()))
        worst = rho_max ** (degree + 1) * float(tail_f.max().sqrt() * tail_g.max().sqrt())
        if worst <= tol * scale:
            break
    # Horner over the degree, one fused pass per term.
    out = torch.zeros(shape, dtype=torch.float64, device=k11.device)
    if degree:
        a, b = cf[inv1], cg[inv2]
        out = a[..., degree] * b[..., degree]
        for k in range(degree - 1, -1, -1):
            out = torch.addcmul(a[..., k] * b[..., k], out, rho)
    error = torch.full(shape, 1e-15 * scale, dtype=torch.float64, device=k11.device)
    if degree:
        bound = rho.abs() ** (degree + 1) * (tail_f[inv1] * tail_g[inv2]).sqrt()
        error = torch.where(interior, bound + error, error)
        bad = interior & (bound > tol * scale)
        if bad.any():
            args = (f, g, k11[bad], rho[bad], k22[bad], kinks)
            out[bad] = _conditional_quadrature(*args)
            if return_error:
                refined = _conditional_quadrature(*args, refine=2)
                error[bad] = (out[bad] - refined).abs() + 1e-15 * scale
    degenerate = ~interior
    if degenerate.any():
        out[degenerate] = _degenerate(
            f, g, k11[degenerate], rho[degenerate], k22[degenerate], kinks
        )
    return (out, error) if return_error else out


def _degenerate(
    f: Fn, g: Fn, k11: torch.Tensor, rho: torch.Tensor, k22: torch.Tensor, kinks: Sequence[float]
) -> torch.Tensor:
    """rho = +-1: u = sqrt(k11) z, v = rho sqrt(k22) z, a 1-D integral per pair."""
    off_zero = torch.tensor([c for c in kinks if c != 0.0], dtype=torch.float64, device=k11.device)
    cuts = None
    if off_zero.numel():
        tiny = 1e-300
        cuts = torch.cat(
            [
                off_zero[None, :] / k11.clamp_min(tiny).sqrt()[:, None],
                rho[:, None] * off_zero[None, :] / k22.clamp_min(tiny).sqrt()[:, None],
            ],
            dim=1,
        )
    nodes, weights = _grid_with_cuts(torch.maximum(k11, k22), cuts, degree=1)
    u = k11.sqrt()[:, None] * nodes
    v = (rho * k22.sqrt())[:, None] * nodes
    return (f(u) * g(v) * weights).sum(-1)


def _conditional_quadrature(
    f: Fn,
    g: Fn,
    k11: torch.Tensor,
    rho: torch.Tensor,
    k22: torch.Tensor,
    kinks: Sequence[float],
    refine: int = 1,
) -> torch.Tensor:
    """E[f(u) g(v)] as a nested integral: u = sqrt(k11) x, v | x Gaussian.

    Both levels use kink-aware composite Gauss-Legendre panels: the outer breaks
    at c / sqrt(k11), the inner at the y where v crosses a kink. Chunked over pairs.
    """
    cuts_for = torch.tensor(list(kinks), dtype=torch.float64, device=k11.device)
    out = torch.empty_like(k11)
    chunk = 8
    for start in range(0, len(k11), chunk):
        a, r, c = k11[start : start + chunk], rho[start : start + chunk], k22[start : start + chunk]
        outer_cuts = cuts_for[None, :] / a.clamp_min(1e-300).sqrt()[:, None] if kinks else None
        x, wx = _grid_with_cuts(a.clamp_min(1.0) * refine**2, outer_cuts, degree=1)  # (P, M)
        s = (1 - r * r).clamp_min(0).sqrt()[:, None, None]
        shift = c.sqrt()[:, None, None] * r[:, None, None] * x[:, :, None]  # (P, M, 1)
        spread = c.sqrt()[:, None, None] * s
        inner_var = (spread**2).expand(-1, x.shape[1], 1).reshape(-1)
        inner_cuts = None
        if kinks:
            safe = torch.where(spread > 0, spread, 1.0)
            inner_cuts = ((cuts_for[None, None, :] - shift) / safe).reshape(-1, len(kinks))
        y, wy = _grid_with_cuts(inner_var.clamp_min(1.0) * refine**2, inner_cuts, degree=1)
        rows = shift.shape[:2] if y.shape[0] > 1 else (1, 1)
        y, wy = y.reshape(*rows, -1), wy.reshape(*rows, -1)
        inner = (g(shift + spread * y) * wy).sum(-1)  # (P, M)
        out[start : start + chunk] = (f(a.sqrt()[:, None] * x) * inner * wx).sum(-1)
    return out
