"""Exact linear regions of a ReLU network on a 2-D affine slice of input space.

On the plane x(s, t) = origin + s u + t v, (s, t) in a box, every cell of the
current partition carries the affine map of the current layer's input,
h(s, t) = C_0 + s C_1 + t C_2. Each neuron of the next layer is affine on the
cell, so its zero set there is a straight line (the "bent hyperplane" is
straight inside a cell; Hanin & Rolnick 2019): the cell is clipped by
the lines of the neurons that cross it, one neuron after the other, and every
sub-cell gets the layer's on/off pattern from the sign of z at its centroid
and the next affine map diag(sigma'(z)) (W h + b). The cells stay convex
polygons; after the last layer they are the activation regions (the sets
P(epsilon) of sign patterns epsilon, intersected with the box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._checks import as_float_tensor, check_int, message
from .count_1d import as_point, check_tol
from .network import piecewise_linear_layers

__all__ = ["Regions2D", "plot_regions_2d", "regions_2d"]


@dataclass(frozen=True)
class Regions2D:
    """The activation regions of a network on a 2-D slice, as convex polygons.

    Attributes:
        polygons: list of (k_i, 2) float64 arrays of (s, t) vertices, counter-clockwise.
        patterns: (n_regions, n_neurons) bool activation patterns (z > 0).
        n_regions: number of regions (distinct activation patterns in the box).
        slopes: (n_regions, n_out, 2) gradient of the output w.r.t. (s, t) per region.
        box: ((s_lo, s_hi), (t_lo, t_hi)).
        origin, u, v: the plane x = origin + s u + t v, (n_0,) float64.
    """

    polygons: list[np.ndarray]
    patterns: torch.Tensor
    n_regions: int
    slopes: torch.Tensor
    box: tuple[tuple[float, float], tuple[float, float]]
    origin: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor

    @property
    def areas(self) -> np.ndarray:
        """(n_regions,) polygon areas (shoelace formula).

        They sum to the box area up to rounding: only degenerate pieces (area at
        most a few float64 epsilons of the box area) are ever dropped.
        """
        return np.array([_area(p) for p in self.polygons])

    def to_input(self, st) -> torch.Tensor:
        """Map (..., 2) slice coordinates (s, t) to input space origin + s u + t v.

        ``st`` is a finite real array whose last dimension has size 2.
        """
        st = as_float_tensor("st", st, dtype=torch.float64)
        if st.ndim == 0 or st.shape[-1] != 2:
            raise ValueError(
                message(
                    "st", "an array of (s, t) pairs, shape (..., 2)", f"shape {tuple(st.shape)}"
                )
            )
        st = st.to(self.origin.device)
        return self.origin + st[..., :1] * self.u + st[..., 1:] * self.v


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _split(poly: np.ndarray, dist: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip a convex polygon by a line: (part with dist >= 0, part with dist <= 0)."""
    pos, neg = [], []
    k = len(poly)
    for i in range(k):
        p, dp = poly[i], dist[i]
        q, dq = poly[(i + 1) % k], dist[(i + 1) % k]
        if dp >= -tol:
            pos.append(p)
        if dp <= tol:
            neg.append(p)
        if (dp > tol and dq < -tol) or (dp < -tol and dq > tol):
            x = p + (q - p) * (dp / (dp - dq))  # the edge meets the line
            pos.append(x)
            neg.append(x)
    return np.array(pos), np.array(neg)


def _box(bounds) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        array = np.asarray(bounds, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            message("bounds", "(lo, hi) or ((s_lo, s_hi), (t_lo, t_hi))", bounds)
        ) from err
    if array.shape == (2,):
        array = np.stack([array, array])
    if array.shape != (2, 2) or not np.isfinite(array).all():
        raise ValueError(
            message("bounds", "finite (lo, hi) or ((s_lo, s_hi), (t_lo, t_hi))", bounds)
        )
    if not (array[:, 0] < array[:, 1]).all():
        raise ValueError(message("bounds", "lo < hi in both coordinates", bounds))
    if np.abs(array).max() > 1e100:  # areas and clipping use products of coordinates
        raise ValueError(message("bounds", "of magnitude <= 1e100", bounds, "Rescale u and v"))
    return (tuple(array[0].tolist()), tuple(array[1].tolist()))  # type: ignore[return-value]


def regions_2d(model: nn.Module, origin, u, v, bounds, *, tol: float = 1e-12) -> Regions2D:
    """Exact activation regions of a ReLU network on the plane origin + s u + t v.

    Refines convex cells layer by layer by each neuron's line (module docstring).

    Args:
        model: a ReLU / leaky-ReLU network (see :func:`piecewise_linear_layers`).
        origin, u, v: (n_0,) point and two linearly independent directions.
        bounds: the (s, t) box, ``(lo, hi)`` for both or ``((s_lo, s_hi), (t_lo, t_hi))``.
        tol: relative tolerance, 0 < tol <= 1e-3: vertices closer than
            ``tol * max(s_hi - s_lo, t_hi - t_lo)`` to a neuron's line lie on it
            (so the result does not depend on the box's scale). Only degenerate
            pieces (area <= 4 eps * box area, eps = float64 epsilon) are dropped,
            so the areas sum to the box area up to rounding.

    Returns:
        :class:`Regions2D` with ``polygons``, ``patterns``, ``n_regions``.

    Two ReLUs on the coordinate axes cut the box [-1, 1]^2 into its 4 quadrants:

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.eye(2)); _ = net[0].bias.zero_()
    >>> r = regions_2d(net, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-1.0, 1.0))
    >>> r.n_regions, sorted(r.areas.round(12).tolist())
    (4, [1.0, 1.0, 1.0, 1.0])
    """
    net = piecewise_linear_layers(model)
    origin, u, v = (as_point(name, x) for name, x in (("origin", origin), ("u", u), ("v", v)))
    for name, x in (("u", u), ("v", v)):
        if x.shape != origin.shape:
            raise ValueError(
                message(name, f"a vector of the origin's dimension {origin.shape[0]}", x.shape)
            )
    net.check_input_dim(origin.shape[0], "origin")
    for name, x in (("u", u), ("v", v)):
        if not bool((x != 0).any()):
            raise ValueError(message(name, "nonzero (a direction of the plane)", "the zero vector"))
    gram = torch.stack([u, v]) @ torch.stack([u, v]).T
    if float(torch.linalg.det(gram)) <= 1e-14 * float(gram.diagonal().prod()):
        raise ValueError(message("v", "linearly independent of u (a 2-D plane)", v))
    tol = check_tol(tol)
    (s0, s1), (t0, t1) = box = _box(bounds)
    min_area = 4 * np.finfo(np.float64).eps * (s1 - s0) * (t1 - t0)  # degenerate pieces only
    tol = tol * max(s1 - s0, t1 - t0)  # absolute, in (s, t) units
    square = np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]])
    cells = [(square, torch.stack([origin, u, v]).numpy(), [])]
    for layer in net.hidden:
        w = None if layer.weight is None else layer.weight.numpy()
        bias = None if layer.bias is None else layer.bias.numpy()
        refined = []
        for poly, coef, patterns in cells:
            z = coef if w is None else coef @ w.T  # (3, n_l): z = z_0 + s z_1 + t z_2
            if bias is not None:
                z = z.copy()
                z[0] += bias
            norm = np.hypot(z[1], z[2])
            dist = (z[0] + poly @ z[1:]) / np.where(norm > 0, norm, 1.0)  # signed distances
            crossing = np.flatnonzero((dist.max(0) > tol) & (dist.min(0) < -tol) & (norm > 0))
            pieces = [poly]
            for j in crossing:
                next_pieces = []
                for piece in pieces:
                    d = (z[0, j] + piece @ z[1:, j]) / norm[j]
                    if d.max() <= tol or d.min() >= -tol:
                        next_pieces.append(piece)
                        continue
                    next_pieces += [
                        p for p in _split(piece, d, tol) if len(p) >= 3 and _area(p) > min_area
                    ]
                pieces = next_pieces
            for piece in pieces:
                centre = piece.mean(axis=0)
                on = z[0] + centre @ z[1:] > 0
                scale = np.where(on, 1.0, layer.slope)
                refined.append((piece, z * scale, [*patterns, on]))
        cells = refined
    rows = [np.concatenate(p) if p else np.zeros(0, dtype=bool) for _, _, p in cells]
    coefs = torch.from_numpy(np.stack([c for _, c, _ in cells]))  # (n_regions, 3, n_L)
    with torch.no_grad():
        _, slope_s = net.readout(coefs[:, 0], coefs[:, 1])
        _, slope_t = net.readout(coefs[:, 0], coefs[:, 2])
    slopes = torch.stack([slope_s, slope_t], dim=-1)
    return Regions2D(
        polygons=[c[0] for c in cells],
        patterns=torch.from_numpy(np.stack(rows)),
        n_regions=len(cells),
        slopes=slopes,
        box=box,
        origin=origin,
        u=u,
        v=v,
    )


def plot_regions_2d(result: Regions2D, ax=None, *, seed: int = 0, edgecolor: str = "k"):
    """Draw the regions of :func:`regions_2d`, each in its own colour.

    Args:
        result: the regions.
        ax: matplotlib axes (default: a new ``Figure`` on the Agg canvas).
        seed: shuffles the colours so neighbours differ.
        edgecolor: colour of the region boundaries.

    Returns:
        The axes.

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> ax = plot_regions_2d(regions_2d(net, [0, 0], [1, 0], [0, 1], (-2, 2)))
    >>> len(ax.collections)
    1
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    if not isinstance(result, Regions2D):
        raise TypeError(message("result", "a Regions2D from regions_2d", type(result).__name__))
    seed = check_int("seed", seed, minimum=0)
    if ax is not None and not all(
        callable(getattr(ax, name, None)) for name in ("add_collection", "set_xlim", "set_title")
    ):
        raise TypeError(message("ax", "a matplotlib Axes or None", type(ax).__name__))
    if ax is None:
        fig = Figure(figsize=(4.5, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    order = np.random.default_rng(seed).permutation(result.n_regions)
    colours = colormaps["tab20"](order % 20)
    ax.add_collection(
        PolyCollection(result.polygons, facecolors=colours, edgecolors=edgecolor, linewidths=0.4)
    )
    (s0, s1), (t0, t1) = result.box
    ax.set_xlim(s0, s1)
    ax.set_ylim(t0, t1)
    ax.set_aspect("equal")
    ax.set_xlabel("s")
    ax.set_ylabel("t")
    ax.set_title(f"{result.n_regions} linear regions")
    return ax
