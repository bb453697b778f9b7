"""Density of linear pieces along lines at initialisation (Hanin & Rolnick 2019).

Setting: a ReLU (or leaky ReLU, slope alpha) MLP with W ~ N(0, C_w / n_{l-1}),
b ~ N(0, C_b), C_b > 0, and a segment of the line x(t) = x_0 + t u with
|u| = 1, x_0 perpendicular to u, |x_0| = r (by the rotation invariance of
Gaussian weights every such line has the same law). A piece ends where some
neuron's preactivation z(t) crosses zero, so E[#pieces] = 1 + sum over neurons
of E[#zeros of z on the segment].

Prediction (implemented). Kac-Rice: the expected density of zeros of z at t is
E[|z'(t)| | z(t) = 0] p_{z(t)}(0). If (z, z') is Gaussian with Var z = q,
Var z' = s, Cov(z, z') = c, this is

    rho(t) = sqrt(s q - c^2) / (pi q).

For the first layer (z, z') is exactly Gaussian with q = C_b + C_w |x(t)|^2 / n_0,
s = C_w / n_0, c = C_w x(t).u / n_0, at any width; each neuron has one zero on the
whole line, at the Cauchy-distributed t* = -(b + w.x_0) / (w.u). Deeper layers
use the infinite-width Gaussian process: with g = C_w (1 + alpha^2) / 2,

    q_{l+1} = C_b + g q_l,   s_{l+1} = g s_l,   c_{l+1} = g c_l

(E[sigma(z)^2] = (1 + alpha^2) q / 2 and, by the symmetry (z, z') -> (-z, -z'),
E[sigma'(z)^2 z'^2] = (1 + alpha^2) s / 2). Summing n_l rho_l(t) over layers and
averaging over the segment (Gauss-Legendre quadrature) gives the expected number
of breakpoints per unit length; finite-width corrections are O(1 / width).

The bound (``hanin_rolnick``) is a Kac-Rice bound with C_grad = E|z'|, written in
the form of Hanin & Rolnick's theorem (2019, "Complexity of linear regions in
deep networks", Thm. 1 with k = 1 and its 1-D corollary): density <= sum_l n_l
C_grad,l C_bias with C_bias = sup of the bias density = 1 / sqrt(2 pi C_b) and
C_grad,l = E|dz/dt| = sqrt(2 s_l / pi), the mean absolute directional derivative
along the line. The paper's own C_grad is defined through moments of the
gradient norm |grad_x z|, not through E|z'|; its constant was not checked here,
so this is the theorem's shape with the directional constant, not the paper's
number. It depends on C_b and on the initialisation: it is not universal (some
statements of the theorem leave C unspecified). Since q_l >= C_b and E[|z'| | z = 0] <=
sqrt(s_l), rho_l <= n_l sqrt(s_l / q_l) / pi <= n_l C_grad,l C_bias: the
prediction never exceeds the bound, and equals it at x = 0 for one layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import (
    check_bytes,
    check_int,
    check_nonnegative,
    check_positive,
    check_real,
    check_widths,
    message,
)
from ..spec import MLP
from ..stats import Estimate
from .count_1d import count_pieces_1d

__all__ = ["DensityPrediction", "RegionDensity", "density_prediction", "region_density"]


@dataclass(frozen=True)
class DensityPrediction:
    """Expected breakpoints per unit length along the segment, by layer.

    Attributes:
        per_layer: (L,) Kac-Rice density of zeros of layer l's neurons, n_l * mean rho_l.
        density: their sum, the expected breakpoints per unit length.
        hanin_rolnick: the Kac-Rice bound sum_l n_l C_grad,l C_bias with
            C_grad,l = E|z'| (directional), in the form of Hanin & Rolnick's theorem
            (module docstring; the paper's C_grad uses gradient-norm moments).
        expected_pieces: 1 + density * length.
        n_neurons: sum_l n_l.
    """

    per_layer: tuple[float, ...]
    density: float
    hanin_rolnick: float
    expected_pieces: float
    n_neurons: int


@dataclass(frozen=True)
class RegionDensity:
    """Measured vs predicted breakpoints per unit length (see :func:`region_density`)."""

    prediction: DensityPrediction
    measurement: Estimate
    widths: tuple[int, ...]
    length: float
    offset: float
    counts: torch.Tensor  # (n_lines,) pieces on each sampled segment


def _widths(widths) -> tuple[int, ...]:
    """One int (L = 1) or hidden widths, validated as :func:`check_widths` does."""
    if isinstance(widths, int | np.integer) and not isinstance(widths, bool | np.bool_):
        widths = (widths,)
    return check_widths(widths)


def density_prediction(
    widths,
    n_in: int,
    *,
    c_w: float = 2.0,
    c_b: float = 0.1,
    negative_slope: float = 0.0,
    offset: float = 1.0,
    length: float = 2.0,
    n_quad: int = 96,
) -> DensityPrediction:
    """Expected breakpoints per unit length of a random ReLU MLP along a line segment.

    Kac-Rice with the layer recursion of the module docstring, averaged over
    t in [-length / 2, length / 2] on the line at distance ``offset`` from 0.

    Args:
        widths: hidden widths (n_1, ..., n_L), or one int for L = 1.
        n_in: input dimension n_0.
        c_w, c_b: weight and bias variances (C_b > 0).
        negative_slope: alpha of the leaky ReLU (0: ReLU).
        offset: |x_0|, the distance of the line from the origin.
        length: segment length.
        n_quad: Gauss-Legendre nodes.

    One hidden layer through the origin: rho(0) = n_1 sqrt(C_w / (n_0 C_b)) / pi,
    and the segment average of the Cauchy density is (2 / pi) arctan(a) / length
    per neuron with a = (length / 2) sqrt(C_w / (n_0 C_b)):

    >>> p = density_prediction([10], 1, c_w=1.0, c_b=1.0, offset=0.0, length=2.0)
    >>> round(p.density, 10) == round(10 * 2 / math.pi * math.atan(1.0) / 2.0, 10)
    True
    """
    widths = _widths(widths)
    n_in = check_int("n_in", n_in, minimum=1)
    c_w, c_b = check_positive("c_w", c_w), check_positive("c_b", c_b)
    alpha = check_real("negative_slope", negative_slope)
    offset = check_nonnegative("offset", offset)
    length = check_positive("length", length)
    if n_in == 1 and offset != 0.0:
        raise ValueError(message("offset", "0 when n_in = 1 (the line is the input space)", offset))
    n_quad = check_int("n_quad", n_quad, minimum=2)
    if n_quad > 10**4:  # Gauss-Legendre nodes come from an n x n eigenproblem
        raise ValueError(message("n_quad", "an integer in [2, 10000]", n_quad))
    nodes, weights = np.polynomial.legendre.leggauss(n_quad)
    t = 0.5 * length * nodes
    q = c_b + c_w * (offset**2 + t**2) / n_in
    s = np.full_like(t, c_w / n_in)
    c = c_w * t / n_in
    gain = c_w * (1.0 + alpha**2) / 2.0
    per_layer, bound = [], 0.0
    for l, width in enumerate(widths):
        if l > 0:
            q, s, c = c_b + gain * q, gain * s, gain * c
        rho = np.sqrt(np.clip(s * q - c * c, 0.0, None)) / (math.pi * q)
        per_layer.append(float(width * 0.5 * np.dot(weights, rho)))  # mean over the segment
        c_grad = math.sqrt(2.0 * s[0] / math.pi)  # E|z'| = sqrt(2 s / pi), s constant in t
        bound += width * c_grad / math.sqrt(2.0 * math.pi * c_b)
    density = sum(per_layer)
    return DensityPrediction(
        per_layer=tuple(per_layer),
        density=density,
        hanin_rolnick=bound,
        expected_pieces=1.0 + density * length,
        n_neurons=sum(widths),
    )


def _random_line(n_in: int, offset: float, generator: torch.Generator):
    """x_0 (|x_0| = offset) and unit u perpendicular to it, uniformly rotated."""
    g = torch.randn(2, n_in, generator=generator, dtype=torch.float64)
    u = g[0] / g[0].norm()
    if n_in == 1:
        return torch.zeros(1, dtype=torch.float64), u
    w = g[1] - (g[1] @ u) * u  # Gram-Schmidt: a uniform direction perpendicular to u
    return offset * w / w.norm(), u


def region_density(
    widths,
    n_in: int,
    *,
    c_w: float = 2.0,
    c_b: float = 0.1,
    negative_slope: float = 0.0,
    offset: float = 1.0,
    length: float = 2.0,
    n_lines: int = 100,
    seed: int = 0,
) -> RegionDensity:
    """Measure breakpoints per unit length along random lines through random ReLU MLPs.

    Each of ``n_lines`` samples is an independent network
    (``MLP(L, "relu", c_w, c_b).sample``, i.e. ``FiniteDense`` layers with exactly
    the theory's W ~ N(0, C_w / n_{l-1}), b ~ N(0, C_b)) and an independent random
    line at distance ``offset`` from the origin; its segment of length ``length``
    is counted exactly by :func:`count_pieces_1d`. The measurement is
    (pieces - 1) / length with its standard error; the prediction is
    :func:`density_prediction` (exact for one hidden layer). Uniform hidden width
    is required by the spec; pass one width per layer, all equal.

    Args:
        widths: hidden widths (n_1, ..., n_L), all equal, or one int.
        n_in, c_w, c_b, negative_slope, offset, length: as in :func:`density_prediction`.
        n_lines: number of (network, line) samples, >= 2.
        seed: seeds the networks and the lines.

    Returns:
        :class:`RegionDensity` (``prediction``, ``measurement``, ``counts``).

    >>> r = region_density([8], 2, n_lines=40, seed=0)
    >>> r.measurement.agrees(r.prediction.density, n_std=5)
    True
    """
    widths = _widths(widths)
    if len(set(widths)) != 1:
        raise ValueError(message("widths", "equal hidden widths (one MLP width)", widths))
    n_lines = check_int("n_lines", n_lines, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    prediction = density_prediction(
        widths, n_in, c_w=c_w, c_b=c_b, negative_slope=negative_slope, offset=offset, length=length
    )
    w = widths[0]
    check_bytes("widths, n_in", 16.0 * (w * n_in + (len(widths) - 1) * w * w + 4 * w))
    check_bytes("n_lines", 8.0 * n_lines)
    activation = "relu" if negative_slope == 0.0 else "leaky_relu"
    params = {} if negative_slope == 0.0 else {"slope": negative_slope}
    spec = MLP(len(widths), activation, c_w=c_w, c_b=c_b, **params)
    generator = torch.Generator().manual_seed(seed)
    counts = torch.empty(n_lines, dtype=torch.float64)
    for i in range(n_lines):
        net = spec.sample(widths[0], in_dim=n_in, generator=generator, dtype=torch.float64)
        x0, u = _random_line(n_in, offset, generator)
        a, b = x0 - 0.5 * length * u, x0 + 0.5 * length * u
        counts[i] = count_pieces_1d(net, a, b).n_pieces
    return RegionDensity(
        prediction=prediction,
        measurement=Estimate.from_samples((counts - 1.0) / length),
        widths=widths,
        length=length,
        offset=offset,
        counts=counts,
    )
