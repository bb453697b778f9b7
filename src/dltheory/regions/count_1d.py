"""Exact linear pieces of a ReLU network on a segment [a, b] of input space.

Along x(t) = a + t (b - a), t in [0, 1], every layer's input is affine in t on
each current piece, h(t) = A_k + t B_k, so neuron i's preactivation
z_i(t) = (W A_k + b)_i + t (W B_k)_i has at most one zero on piece k, at
t* = -(W A_k + b)_i / (W B_k)_i. Layer by layer, all zeros of all neurons on all
pieces are computed at once (arrays of shape (pieces, neurons)), sorted and
merged into the breakpoints; each new piece inherits its parent's affine map and
gets its activation pattern from the sign of z at its midpoint. No sampling.

A piece is a maximal interval of constant activation pattern. Adjacent pieces
always differ (a zero strictly inside a piece flips that neuron's sign, and by
induction pieces of different parents differ in an earlier layer), so the count
needs no final merge. ``n_linear_pieces`` merges neighbours on which the network
restricted to the segment has the same derivative d f(x(t)) / dt (for n_0 = 1
these are linear regions in the sense of "maximal sets on which grad z is constant").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._checks import as_float_tensor, check_positive, message
from .network import piecewise_linear_layers

__all__ = ["Pieces1D", "count_pieces_1d"]


@dataclass(frozen=True)
class Pieces1D:
    """The linear pieces of a network on the segment x(t) = a + t (b - a), t in [0, 1].

    Attributes:
        a, b: the segment's endpoints, (n_0,) float64.
        breakpoints: (n_pieces - 1,) increasing t in (0, 1) where the pattern changes.
        n_pieces: number of maximal intervals of constant activation pattern.
        n_linear_pieces: number after merging neighbours with equal d f / dt.
        slopes: (n_pieces, n_out) derivative d f(x(t)) / dt of the output on each piece.
        widths: hidden widths n_1, ..., n_L.
        tol: breakpoints closer than ``tol`` (in t) are one breakpoint.
        layer_endpoints, layer_patterns: per hidden layer, the piece endpoints after
            that layer and the layer's on/off pattern on those pieces (the compact
            form of ``patterns``; memory sum_l m_l (n_l + 8) bytes).
    """

    a: torch.Tensor
    b: torch.Tensor
    breakpoints: torch.Tensor
    n_pieces: int
    n_linear_pieces: int
    slopes: torch.Tensor
    widths: tuple[int, ...]
    tol: float
    layer_endpoints: tuple[torch.Tensor, ...]
    layer_patterns: tuple[torch.Tensor, ...]

    @property
    def endpoints(self) -> torch.Tensor:
        """(n_pieces + 1,) piece endpoints 0 = t_0 < ... < t_m = 1."""
        one = torch.ones(1, dtype=torch.float64)
        return torch.cat([torch.zeros(1, dtype=torch.float64), self.breakpoints, one])

    @property
    def points(self) -> torch.Tensor:
        """(n_pieces - 1, n_0) the breakpoints in input space."""
        return self.a + self.breakpoints[:, None] * (self.b - self.a)

    @property
    def linear_breakpoints(self) -> torch.Tensor:
        """Breakpoints where d f / dt changes (those bounding the linear pieces)."""
        return self.breakpoints[_slope_changes(self.slopes)]

    @property
    def patterns(self) -> torch.Tensor:
        """(n_pieces, n_neurons) bool activation patterns (z > 0), layers in order.

        Materialised on each access: n_pieces * n_neurons bytes (1e5 pieces of a
        512-neuron net: 51 MB); ``packed_patterns`` uses an eighth of that.
        """
        ends = self.endpoints
        mids = 0.5 * (ends[:-1] + ends[1:])
        blocks = [torch.zeros(self.n_pieces, 0, dtype=torch.bool)]  # no hidden layer: 0 columns
        for layer_ends, table in zip(self.layer_endpoints, self.layer_patterns, strict=True):
            index = torch.searchsorted(layer_ends, mids, right=True) - 1
            blocks.append(table[index.clamp_(0, table.shape[0] - 1)])
        return torch.cat(blocks, dim=1)

    def packed_patterns(self) -> np.ndarray:
        """Patterns as bits, (n_pieces, ceil(n_neurons / 8)) uint8 (``np.unpackbits`` undoes it).

        A model without activations gives an (n_pieces, 0) array.
        """
        return np.packbits(self.patterns.numpy(), axis=1)


def _slope_changes(slopes: torch.Tensor, rtol: float = 1e-9) -> torch.Tensor:
    """Mask over breakpoints: does d f / dt differ between the two neighbouring pieces?"""
    if slopes.shape[0] < 2:
        return torch.zeros(0, dtype=torch.bool)
    scale = float(slopes.abs().max()) or 1.0
    return (slopes[1:] - slopes[:-1]).abs().amax(dim=1) > rtol * scale


def as_point(name: str, value) -> torch.Tensor:
    """A point of input space as a (n_0,) float64 CPU tensor (a number for n_0 = 1).

    Shared by the 1-D and 2-D region counters.
    """
    point = as_float_tensor(name, value, dtype=torch.float64, detach=True).cpu()
    if point.ndim == 0:
        point = point.reshape(1)
    if point.ndim != 1:
        raise ValueError(
            message(name, "a point: a number or a 1-D array", f"shape {tuple(point.shape)}")
        )
    return point


MAX_TOL = 1e-3


def check_tol(tol) -> float:
    """A relative rounding tolerance in (0, MAX_TOL] (shared by the region counters)."""
    tol = check_positive("tol", tol)
    if tol > MAX_TOL:
        raise ValueError(
            message(
                "tol",
                f"<= {MAX_TOL:g} (a relative rounding tolerance)",
                tol,
                "Larger values merge distinct lines; the default suits float64",
            )
        )
    return tol


def _merge(ts: np.ndarray, tol: float) -> np.ndarray:
    """Sort and merge values closer than ``tol`` (keep the first of each cluster)."""
    ts = np.sort(ts)
    keep = np.ones(ts.shape, dtype=bool)
    keep[1:] = np.diff(ts) > tol
    return ts[keep]


def _affine(weight, bias, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a W^T + bias, b W^T) for the rows of a and b; ``None``: identity / zero."""
    if weight is not None:
        w = weight.numpy()
        a, b = a @ w.T, b @ w.T
    if bias is not None:
        a = a + bias.numpy()
    return a, b


def count_pieces_1d(model: nn.Module, a, b, *, tol: float = 1e-12) -> Pieces1D:
    """Exact linear pieces of a ReLU / leaky-ReLU network on the segment [a, b].

    Traces the breakpoints layer by layer (module docstring); exact up to the
    floating-point tolerance ``tol`` on t in [0, 1] (zeros within ``tol`` of a
    breakpoint or of each other are one breakpoint). One hidden layer on a line
    has at most n_1 + 1 pieces (see docs/topics/linear_regions.md).

    Args:
        model: a ReLU network (see :func:`piecewise_linear_layers` for the layers).
        a, b: distinct endpoints, (n_0,) arrays or numbers for n_0 = 1.
        tol: merging tolerance in t, 0 < tol <= 1e-3 (default 1e-12).

    Returns:
        :class:`Pieces1D` with ``n_pieces``, ``breakpoints``, ``patterns``,
        ``n_linear_pieces``.

    >>> net = nn.Sequential(nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.ones(3, 1))
    ...     _ = net[0].bias.copy_(torch.tensor([0.5, 0.0, -0.5]))  # kinks at -0.5, 0, 0.5
    >>> pieces = count_pieces_1d(net, -1.0, 1.0)
    >>> pieces.n_pieces, pieces.breakpoints.tolist()
    (4, [0.25, 0.5, 0.75])
    """
    net = piecewise_linear_layers(model)
    a, b = as_point("a", a), as_point("b", b)
    if a.shape != b.shape:
        raise ValueError(
            message("b", f"a point of the same dimension as a ({a.shape[0]})", tuple(b.shape))
        )
    if bool(torch.equal(a, b)):
        raise ValueError(message("b", "different from a (a segment of positive length)", b))
    tol = check_tol(tol)
    net.check_input_dim(a.shape[0], "a")
    # NumPy inside the loop: many tiny matmuls, where torch's thread pool costs more
    # than the arithmetic on a busy machine.
    ts = np.array([0.0, 1.0])
    coef_a, coef_b = a.numpy()[None, :], (b - a).numpy()[None, :]  # h(t) = A + t B per piece
    layer_endpoints, layer_patterns, widths = [], [], []
    for layer in net.hidden:
        za, zb = _affine(layer.weight, layer.bias, coef_a, coef_b)  # (m, n_l) each
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = -za / zb  # inf / nan where zb = 0: never inside a piece
        inside = (crossing > ts[:-1, None] + tol) & (crossing < ts[1:, None] - tol)
        ts_new = _merge(np.concatenate([ts, crossing[inside]]), tol)
        mids = 0.5 * (ts_new[:-1] + ts_new[1:])
        parent = np.clip(np.searchsorted(ts, mids, side="right") - 1, 0, ts.shape[0] - 2)
        za, zb = za[parent], zb[parent]
        on = za + mids[:, None] * zb > 0
        scale = np.where(on, 1.0, layer.slope)
        coef_a, coef_b = za * scale, zb * scale
        ts = ts_new
        layer_endpoints.append(torch.from_numpy(ts))
        layer_patterns.append(torch.from_numpy(on))
        widths.append(on.shape[1])
    _, slopes_np = _affine(net.readout_weight, net.readout_bias, coef_a, coef_b)
    slopes = torch.from_numpy(np.ascontiguousarray(slopes_np))
    n_linear = 1 + int(_slope_changes(slopes).sum())
    ts = torch.from_numpy(ts)
    return Pieces1D(
        a=a,
        b=b,
        breakpoints=ts[1:-1],
        n_pieces=ts.shape[0] - 1,
        n_linear_pieces=n_linear,
        slopes=slopes,
        widths=tuple(widths),
        tol=tol,
        layer_endpoints=tuple(layer_endpoints),
        layer_patterns=tuple(layer_patterns),
    )
