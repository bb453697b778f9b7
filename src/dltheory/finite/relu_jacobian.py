"""Batched sampling of bias-free He ReLU networks: Jacobians and on-diagonal NTKs.

The measurement side of :mod:`dltheory.finite.path_counting`. Weights of a
chunk of E networks are drawn at once as (E, n_l, n_{l-1}) tensors and
propagated with ``torch.bmm`` (no Python loop over networks):

* forward: h_l = D_l W_l h_{l-1} beside the full Jacobian M_l = D_l W_l M_{l-1}
  (M_0 = I, so every input direction at once, O(E n^2 n_0 L));
* backward (only for the NTK): delta^(l-1) = D_{l-1} W_l^T delta^(l), which needs the
  chunk's weights, so chunks are sized to a memory budget.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_int,
    check_positive,
    message,
)
from .path_counting import NtkParametrization, _layer_factors, check_widths

__all__ = ["ReluJacobianSample", "sample_relu_jacobians"]

_BUDGET = 1 << 22  # floats of weights held at once per chunk (32 MiB in float64)


@dataclass(frozen=True)
class ReluJacobianSample:
    """Per-network measurements on sampled bias-free He ReLU nets (leading dim E).

    Attributes:
        entry: (E,) the directional derivative J u = dz/du at x (dz/dx_1 by default).
        gradient_sq_norm: (E,) |grad_x z(x)|^2.
        hidden_sq_norm: (E,) R = (n_0 / n_L) |D_L W_L ... D_1 W_1 u|^2 / |u|^2, mean 1.
        active: (E, L) number of active neurons K_l per hidden layer.
        ntk: (E,) on-diagonal NTK Theta(x, x), or ``None`` when not asked for.
    """

    entry: torch.Tensor
    gradient_sq_norm: torch.Tensor
    hidden_sq_norm: torch.Tensor
    active: torch.Tensor
    ntk: torch.Tensor | None

    @property
    def alive(self) -> torch.Tensor:
        """(E,) whether every hidden layer has an active neuron (else J = 0 exactly)."""
        return (self.active > 0).all(dim=1)


def _vector(name: str, value: Any, n0: int, default: torch.Tensor, dtype, device) -> torch.Tensor:
    if value is None:
        return default.to(dtype=dtype, device=device)
    value = as_float_tensor(name, value, ndim=1, dtype=dtype, device=device)
    if value.shape[0] != n0:
        raise ValueError(
            message(name, f"a vector of n0 = {n0} entries", f"shape {tuple(value.shape)}")
        )
    if not bool((value != 0).any()):
        raise ValueError(message(name, "nonzero", "the zero vector"))
    return value


def sample_relu_jacobians(
    n0: int,
    widths: Sequence[int],
    n_networks: int,
    *,
    c_out: float = 2.0,
    x: Any = None,
    u: Any = None,
    ntk: bool = False,
    parametrization: NtkParametrization = "ntk",
    seed: int = 0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    chunk_size: int | None = None,
    device: torch.device | str | None = None,
) -> ReluJacobianSample:
    """Sample ``n_networks`` bias-free He ReLU nets and measure their Jacobians at x.

    The nets are z = W^(L+1) relu(... relu(W^(1) x)), W^(l) ~ N(0, 2/n_{l-1}),
    readout W^(L+1) ~ N(0, c_out/n_L), as in :func:`relu_jacobian_moments`; with
    ``ntk=True`` also Theta(x, x) = sum_l kappa_l |h^(l-1)|^2 |delta^(l)|^2 as in
    :func:`relu_ntk_mean` (kappa_l = C_w^(l) / n_{l-1} in NTK parametrisation, 1 in
    standard parametrisation), which is what ``empirical_ntk`` returns for the
    matching ``Serial`` spec.

    Args:
        n0: input dimension.
        widths: hidden widths (n_1, ..., n_L).
        n_networks: number of independent networks E >= 2.
        c_out: readout weight variance times n_L.
        x: the input (n0,), nonzero (default: all ones).
        u: the input direction (n0,), nonzero (default: e_1, so ``entry`` = dz/dx_1).
        ntk: also measure the on-diagonal NTK (needs a backward pass).
        parametrization: ``"ntk"`` or ``"standard"`` for the NTK.
        seed: seed of a fresh generator on ``device`` (ignored when ``generator`` is given).
        generator: an explicit ``torch.Generator``, on ``device``.
        dtype: floating dtype of the networks.
        chunk_size: networks per batched chunk (default: sized to a 32 MiB budget);
            the sample depends on it through the order of random draws.
        device: where the weights are drawn and the nets run (default: the device
            of ``x`` when it is a tensor, else that of ``generator``, else CPU);
            ``x`` and ``u`` are moved there.
            On CPU the sample is the same as without this argument.

    Returns:
        :class:`ReluJacobianSample`.

    >>> s = sample_relu_jacobians(3, (8, 8), 4, seed=0)
    >>> tuple(s.entry.shape), tuple(s.active.shape)
    ((4,), (4, 2))
    """
    n0 = check_int("n0", n0, minimum=1)
    widths = check_widths(widths)
    n_networks = check_int("n_networks", n_networks, minimum=2)
    c_out = check_positive("c_out", c_out)
    check_choice("parametrization", parametrization, ("ntk", "standard"))
    if not isinstance(ntk, bool):
        raise TypeError(message("ntk", "a bool", ntk))
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(message("dtype", "a floating torch.dtype", dtype))
    item = torch.empty((), dtype=dtype).element_size()
    check_bytes("n0", item * 3.0 * n0 * widths[0], fix="Use a smaller n0")
    sizes = (n0, *widths)  # one network's largest weight matrix, at least
    biggest = max(a * b for a, b in itertools.pairwise(sizes))
    check_bytes("widths", item * float(biggest), fix="Use smaller widths")
    # the sample's per-network records: entry, ntk, gradient norm and L active counts
    check_bytes("n_networks", 8.0 * n_networks * (len(widths) + 4), fix="Use fewer networks")
    if device is None:
        if isinstance(x, torch.Tensor):
            device = x.device
        elif isinstance(generator, torch.Generator):
            device = generator.device
        else:
            device = torch.device("cpu")
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError) as err:
        raise TypeError(message("device", "a torch.device or device string", device)) from err
    x = _vector("x", x, n0, torch.ones(n0), dtype, device)
    u = _vector("u", u, n0, torch.eye(n0)[0], dtype, device)
    u = u / u.norm()
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(check_int("seed", seed, minimum=0))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(message("generator", "a torch.Generator", type(generator).__name__))
    elif generator.device.type != device.type:
        raise ValueError(
            message(
                "generator",
                f"on the sampling device {device}",
                f"a generator on {generator.device}",
                "Pass device=generator.device, or a generator on the device of x",
            )
        )
    sizes = (n0, *widths)
    layer_sizes = [a * b for a, b in itertools.pairwise(sizes)]
    per_net = sum(layer_sizes) if ntk else max(layer_sizes) + 2 * max(sizes) * (n0 + 1)
    if chunk_size is None:
        chunk_size = max(1, min(n_networks, _BUDGET // per_net))
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    _, kappa = _layer_factors(n0, widths, c_out, parametrization)
    parts = []
    for start in range(0, n_networks, chunk_size):
        e = min(chunk_size, n_networks - start)

        def draw(layer: int, e: int = e) -> torch.Tensor:
            n_in = sizes[layer - 1]
            n_out = sizes[layer] if layer < len(sizes) else 1
            var = (2.0 if layer < len(sizes) else c_out) / n_in
            shape = (e, n_out, n_in)
            return torch.randn(shape, generator=generator, dtype=dtype, device=device) * var**0.5

        parts.append(_measure(draw, e, sizes, x, u, kappa if ntk else None))
    fields = zip(*parts, strict=True)
    entry, grad, hidden, active, theta = (
        torch.cat(f) if f[0] is not None else None for f in map(list, fields)
    )
    return ReluJacobianSample(entry, grad, hidden, active, theta)


def _measure(draw, e, sizes, x, u, kappa):
    """One batch of ``e`` networks whose weight layer l is ``draw(l)``, (e, n_l, n_{l-1}).

    Forward (h, M) through the hidden layers, the readout, and, when ``kappa`` is
    given, the backward delta^(l) for Theta = sum_l kappa_l |h^(l-1)|^2 |delta^(l)|^2.
    """
    n0, depth = sizes[0], len(sizes) - 1
    dtype = x.dtype
    h = x.expand(e, n0).unsqueeze(-1)  # (e, n0, 1)
    jac = torch.eye(n0, dtype=dtype, device=x.device).expand(e, n0, n0)  # M_0 = I
    weights, masks, h_sq, active = [], [], [x.square().sum().expand(e)], []
    for layer in range(1, depth + 1):
        w = draw(layer)
        out = torch.bmm(w, torch.cat([h, jac], dim=2))  # (e, n_l, 1 + n0)
        mask = out[:, :, :1] > 0  # relu'(z) = 1{z > 0}
        out = out * mask
        h, jac = out[:, :, :1], out[:, :, 1:]
        active.append(mask[:, :, 0].sum(1))
        h_sq.append(h.square().sum((1, 2)))
        if kappa is not None:
            weights.append(w)
            masks.append(mask[:, :, 0].to(dtype))
    readout = draw(depth + 1)  # (e, 1, n_L)
    row = torch.bmm(readout, jac)[:, 0, :]  # (e, n0): the Jacobian J
    entry = row @ u
    grad = row.square().sum(1)
    ju = torch.bmm(jac, u.expand(e, n0).unsqueeze(-1))
    hidden = (n0 / sizes[-1]) * ju.square().sum((1, 2))
    theta = None
    if kappa is not None:
        delta = readout[:, 0, :] * masks[-1]  # delta^(L) = D_L W_{L+1}^T
        theta = kappa[depth] * h_sq[depth]  # readout layer: delta^(L+1) = 1
        for layer in range(depth, 0, -1):
            theta = theta + kappa[layer - 1] * h_sq[layer - 1] * delta.square().sum(1)
            if layer > 1:
                back = torch.bmm(weights[layer - 1].transpose(1, 2), delta.unsqueeze(-1))
                delta = back[:, :, 0] * masks[layer - 2]
    return entry, grad, hidden, torch.stack(active, 1), theta
