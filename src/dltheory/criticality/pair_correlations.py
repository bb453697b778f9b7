"""Correlations of input pairs through sampled finite networks.

The inputs of :func:`pair_inputs` fix the first-layer kernel of each pair,
K^(1)_aa = k_1 and K^(1)_12 = rho_1 k_1 (K^(1)_ab = C_b + C_w x_a . x_b / n_0;
Roberts, Yaida & Hanin 2022, Eq. (4.5)); :func:`correlation_samples` runs them
through an :func:`~dltheory.finite.ensemble` and records, per network and layer,

    rho_hat^(l) = (1 / P) sum_p  z(x_p) . z(x'_p) / (|z(x_p)| |z(x'_p)|)

in float64 (``1 - rho_hat`` as |u - u'|^2 / 2 of the unit vectors, free of
cancellation), the finite-width estimate of the correlation rho^(l) =
K_12^(l) / K^(l) whose depth scale :mod:`dltheory.criticality.measure` fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import as_float_tensor, check_bytes, check_int, check_positive, check_real, message
from ..activations import Activation, activation
from ..finite.ensemble import ensemble
from ..finite.moments import layer_samples
from ..spec.mlp import MLP
from ..stats import Estimate
from ._sizes import check_network_size

__all__ = [
    "CorrelationSamples",
    "ProfileComparison",
    "compare_correlation_profile",
    "correlation_samples",
    "pair_inputs",
]

_MC = "samples the 10^12 networks asked for (time linear in n_networks)"
__fuzz_exempt__ = {
    "correlation_samples:cases": {"n_networks:1e12": _MC},
    "compare_correlation_profile:cases": {"n_networks:1e12": _MC},
}


@dataclass(frozen=True)
class CorrelationSamples:
    """Per-network correlations of input pairs through depth.

    Attributes:
        x: (2 P, 2 P) the inputs; rows 2p and 2p + 1 form pair p.
        correlation: (E, depth + 1) rho_hat^(l) per network, averaged over the pairs.
        one_minus: (E, depth + 1) 1 - rho_hat^(l), computed without cancellation.
        variance: (E, depth + 1) (1 / n) |z^(l)|^2 averaged over the 2 P inputs.
    """

    x: torch.Tensor
    correlation: torch.Tensor
    one_minus: torch.Tensor
    variance: torch.Tensor

    @property
    def layers(self) -> torch.Tensor:
        """(depth + 1,) the layer indices l = 1 .. depth + 1 (float64)."""
        return torch.arange(1, self.correlation.shape[1] + 1, dtype=torch.float64)

    def estimate(self) -> Estimate:
        """rho^(l): mean over networks and standard error, per layer."""
        return Estimate.from_samples(self.correlation)


def pair_inputs(c_w: float, c_b: float, k_1: float, rho_1: float, n_pairs: int = 1) -> torch.Tensor:
    """Inputs with K^(1)_aa = k_1 and, within each pair, K^(1)_12 = rho_1 k_1.

    With K^(1)_ab = C_b + C_w x_a . x_b / n_0 and n_0 = 2 P, pair p is
    x = sqrt(q n_0) e_2p and x' = sqrt(q n_0) (r e_2p + sqrt(1 - r^2) e_2p+1),
    q = (k_1 - C_b) / C_w, r = (rho_1 k_1 - C_b) / (C_w q). Different pairs are
    orthogonal inputs.

    Args:
        c_w: weight variance C_w > 0.
        c_b: bias variance C_b >= 0.
        k_1: first-layer variance K^(1) > C_b.
        rho_1: first-layer correlation, in [(2 C_b - k_1) / k_1, 1].
        n_pairs: number of pairs P >= 1.

    Returns:
        (2 P, 2 P) float64 inputs.

    Examples:
        >>> x = pair_inputs(2.0, 0.5, 1.5, 0.6)
        >>> k = 0.5 + 2.0 * x @ x.T / 2
        >>> [round(v, 12) for v in k.flatten().tolist()]
        [1.5, 0.9, 0.9, 1.5]
    """
    c_w = check_positive("c_w", c_w)
    c_b = check_real("c_b", c_b)
    k_1 = check_real("k_1", k_1)
    rho_1 = check_real("rho_1", rho_1)
    n_pairs = check_int("n_pairs", n_pairs, minimum=1)
    check_bytes("n_pairs", 8.0 * (2 * n_pairs) ** 2)
    if k_1 <= c_b:
        raise ValueError(message("k_1", f"> c_b = {c_b:g}", k_1, "K^(1) = C_b + C_w |x|^2 / n_0"))
    q = (k_1 - c_b) / c_w
    r = (rho_1 * k_1 - c_b) / (c_w * q)
    if not -1.0 <= r <= 1.0:
        low = (2.0 * c_b - k_1) / k_1
        raise ValueError(message("rho_1", f"in [{low:.6g}, 1] at these C_b, K^(1)", rho_1))
    n_0 = 2 * n_pairs
    x = torch.zeros(n_0, n_0, dtype=torch.float64)
    scale = math.sqrt(q * n_0)
    for p in range(n_pairs):
        x[2 * p, 2 * p] = scale
        x[2 * p + 1, 2 * p] = scale * r
        x[2 * p + 1, 2 * p + 1] = scale * math.sqrt(max(0.0, 1.0 - r * r))
    return x


def correlation_samples(
    act: str | Activation,
    c_w: float,
    c_b: float,
    x: Any,
    *,
    width: int,
    depth: int,
    n_networks: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> CorrelationSamples:
    """Per-network correlation of each input pair at every layer, from an ensemble.

    The ensemble is ``ensemble(MLP(depth, act, c_w, c_b, out_dim=width), width,
    n_networks, seed=seed, dtype=dtype)`` (batched, memory-bounded); the readout
    has ``width`` units so layer depth + 1 is measured like the others.
    Reductions run in float64.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w, c_b: weight and bias variances.
        x: (2 P, n_0) inputs, pairs in consecutive rows (e.g. :func:`pair_inputs`).
        width: hidden width n >= 1.
        depth: hidden layers L >= 1.
        n_networks: ensemble size E >= 2.
        seed: the ensemble's root seed.
        dtype: of the networks.

    Returns:
        :class:`CorrelationSamples`.
    """
    s = activation(act)
    width = check_int("width", width, minimum=1)
    depth = check_int("depth", depth, minimum=1)
    n_networks = check_int("n_networks", n_networks, minimum=2)
    check_network_size(depth, width)
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64, detach=True)
    if x.shape[0] % 2:
        raise ValueError(message("x", "an even number of rows (pairs)", f"shape {tuple(x.shape)}"))
    spec = MLP(depth, s, c_w, c_b, out_dim=width)
    ens = ensemble(spec, width, n_networks, seed=seed, in_dim=x.shape[1], dtype=dtype)

    def statistic(z: torch.Tensor) -> torch.Tensor:  # (B, 2P, n) -> (B, 3)
        norm = z.norm(dim=-1, keepdim=True)
        u = z / norm
        u_a, u_b = u[:, 0::2], u[:, 1::2]
        corr = (u_a * u_b).sum(-1).mean(-1)
        gap = 0.5 * (u_a - u_b).square().sum(-1).mean(-1)
        var = norm[..., 0].square().mean(-1) / z.shape[-1]
        return torch.stack([corr, gap, var], dim=-1)

    samples = layer_samples(ens, x.to(dtype), statistic)  # (E, L + 1, 3)
    return CorrelationSamples(x, samples[..., 0], samples[..., 1], samples[..., 2])


@dataclass(frozen=True)
class ProfileComparison:
    """Measured correlations through depth against the infinite-width profile.

    Attributes:
        predicted: (depth + 1,) rho^(l) of :func:`~dltheory.criticality.depth_profile`.
        measured: rho_hat^(l) over networks (mean, stderr, n).
        samples: the per-network :class:`CorrelationSamples`.
        agrees: |measured - predicted| <= n_std stderr + (depth / width) |1 - predicted|
            at every layer (the O(l / n) finite-width margin of near-critical nets).
    """

    predicted: torch.Tensor
    measured: Estimate
    samples: CorrelationSamples
    agrees: bool


def compare_correlation_profile(
    act: str | Activation,
    c_w: float,
    c_b: float,
    rho_1: float,
    *,
    k_1: float = 1.0,
    width: int,
    depth: int,
    n_networks: int,
    n_pairs: int = 16,
    n_std: float = 5.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> ProfileComparison:
    """Sample correlations of pairs starting at (K^(1), rho^(1)) = (k_1, rho_1) and compare.

    Inputs from :func:`pair_inputs`; the prediction is the infinite-width
    recursion (:func:`~dltheory.criticality.depth_profile`) of one pair.
    """
    from .profiles import depth_profile  # profiles is the theory side; no cycle at import

    n_std = check_positive("n_std", n_std)
    x = pair_inputs(c_w, c_b, k_1, rho_1, n_pairs=n_pairs)
    predicted = depth_profile(act, c_w, c_b, x[:2], depth).correlation
    samples = correlation_samples(
        act, c_w, c_b, x, width=width, depth=depth, n_networks=n_networks, seed=seed, dtype=dtype
    )
    est = samples.estimate()
    margin = n_std * est.stderr + (depth / width) * (1.0 - predicted).abs()
    return ProfileComparison(
        predicted, est, samples, bool(((est.mean - predicted).abs() <= margin).all())
    )
