"""Depth profiles of the variance K^(l) and the correlation rho^(l) of two inputs.

The analytic profile is read from the infinite-width kernel of
``MLP(depth, act, c_w, c_b)`` layer by layer (Roberts, Yaida & Hanin 2022,
Eq. (4.118); Schoenholz et al. 2017, Eqs. (3)-(5)):

    K_ab^(l+1) = C_b + C_w E[s(z_a) s(z_b)],   rho^(l) = K_12^(l) / sqrt(K_11^(l) K_22^(l)).

The measured profile runs sampled finite networks of the same spec and reports,
per layer, the mean and standard error over networks of

    var_a = (1 / n) sum_i z_i(x_a)^2,   rho = (1 / n) sum_i z_i(x_1) z_i(x_2) / sqrt(var_1 var_2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .._checks import as_float_tensor, check_finite_result, check_int, check_nonnegative, message
from ..activations import Activation, activation
from ..finite.ensemble import ensemble
from ..finite.moments import layer_samples
from ..spec.mlp import MLP
from ..stats import Estimate
from ._sizes import MAX_DEPTH, check_kernel_scale, check_network_size

__all__ = ["DepthProfile", "MeasuredDepthProfile", "depth_profile", "measured_depth_profile"]

_MC = "samples the 10^12 networks asked for (time linear in n_networks)"
__fuzz_exempt__ = {
    "measured_depth_profile:cases": {"n_networks:1e12": _MC},
    "DepthProfile": "result record, built by depth_profile()",
}


@dataclass(frozen=True)
class DepthProfile:
    """Infinite-width profile through the Dense layers l = 1 .. depth + 1.

    Attributes:
        variance: (depth + 1, 2) K_aa^(l) of the two inputs.
        correlation: (depth + 1,) rho^(l).
    """

    variance: torch.Tensor
    correlation: torch.Tensor

    def __post_init__(self) -> None:
        if self.variance.shape != (len(self.correlation), 2):
            raise ValueError(message("variance", "of shape (n_layers, 2)", self.variance.shape))


@dataclass(frozen=True)
class MeasuredDepthProfile:
    """Profile measured on finite networks: mean and standard error over networks.

    Attributes:
        variance: (depth + 1, 2) mean over networks of var_a^(l).
        variance_se: (depth + 1, 2) its standard error (std / sqrt(n_networks)).
        correlation: (depth + 1,) mean over networks of rho^(l).
        correlation_se: (depth + 1,) its standard error.
        width: hidden width of the networks.
        n_networks: number of sampled networks.
    """

    variance: torch.Tensor
    variance_se: torch.Tensor
    correlation: torch.Tensor
    correlation_se: torch.Tensor
    width: int
    n_networks: int


def signal_correlation(k12: torch.Tensor, k11: torch.Tensor, k22: torch.Tensor) -> torch.Tensor:
    """rho = k12 / (sqrt(k11) sqrt(k22)), with rho = 1 where both signals vanish.

    Where K = 0 for both inputs (e.g. C_w = C_b = 0) the two signals are the same
    point (zero), which is what rho = 1 means; where only one vanishes, rho = 0.
    The square roots are taken separately so that k11 * k22 never overflows.

    >>> signal_correlation(torch.tensor([0.5, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0]),
    ...                    torch.tensor([1.0, 0.0, 2.0])).tolist()
    [0.5, 1.0, 0.0]
    """
    both_zero = (k11 == 0) & (k22 == 0)
    denominator = torch.sqrt(k11) * torch.sqrt(k22)
    rho = torch.where(
        denominator > 0, k12 / denominator.clamp_min(torch.finfo(k12.dtype).tiny), 0.0
    )
    return torch.where(both_zero, torch.ones_like(rho), rho)


def _inputs(x: Any) -> torch.Tensor:
    x = as_float_tensor("x", x, dtype=torch.float64, detach=True)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(message("x", "of shape (2, in_dim): two inputs", tuple(x.shape)))
    return x


def depth_profile(
    act: str | Activation, c_w: float, c_b: float, x: Any, depth: int
) -> DepthProfile:
    """Analytic K^(l)_aa and rho^(l) of two inputs, l = 1 .. depth + 1.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w: weight variance C_w >= 0.
        c_b: bias variance C_b >= 0.
        x: (2, in_dim) two inputs.
        depth: number of hidden layers L >= 1.

    Returns:
        :class:`DepthProfile` (float64).

    Example:
        >>> p = depth_profile("relu", 2.0, 0.0, [[1.0, 0.0], [0.0, 1.0]], 3)
        >>> [round(v, 12) for v in p.variance[:, 0].tolist()]  # He init keeps K = 1
        [1.0, 1.0, 1.0, 1.0]
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    depth = check_int("depth", depth, minimum=1)
    if depth > MAX_DEPTH:
        raise ValueError(message("depth", f"<= {MAX_DEPTH} layers", depth))
    x = _inputs(x)
    check_kernel_scale(s, c_b + c_w * (x * x).sum(1) / x.shape[1])
    if not s.has_closed_form and c_w > 1e4:
        raise ValueError(
            message("c_w", f"<= 1e4 for {s.name!r} (its maps are evaluated by quadrature)", c_w)
        )
    state = MLP(depth, s, c_w, c_b).kernel(x, return_layers=True)
    k = torch.stack([layer.nngp for layer in state.layers])
    variance = torch.diagonal(k, dim1=1, dim2=2)
    correlation = signal_correlation(k[:, 0, 1], variance[:, 0], variance[:, 1])
    check_finite_result("c_w, c_b, x", (variance, correlation), "The variances overflow float64")
    return DepthProfile(variance=variance.clone(), correlation=correlation)


def measured_depth_profile(
    act: str | Activation,
    c_w: float,
    c_b: float,
    x: Any,
    depth: int,
    width: int,
    n_networks: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> MeasuredDepthProfile:
    """The profile of :func:`depth_profile`, measured on sampled finite networks.

    The networks are ``ensemble(MLP(depth, act, c_w, c_b, out_dim=width), width,
    n_networks, seed=seed)`` (independent per-network streams), measured with
    :func:`~dltheory.finite.layer_samples`; the readout has ``width`` units, so
    layer depth + 1 is measured like the others. Reductions are in float64
    whatever ``dtype``.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w: weight variance C_w >= 0.
        c_b: bias variance C_b >= 0.
        x: (2, in_dim) two inputs.
        depth: number of hidden layers L >= 1.
        width: hidden width n >= 1.
        n_networks: number of networks, >= 2 (for a standard error).
        seed: the ensemble's root seed.
        dtype: dtype of the forward passes (float64 or float32).

    Returns:
        :class:`MeasuredDepthProfile`.
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    c_b = check_nonnegative("c_b", c_b)
    depth = check_int("depth", depth, minimum=1)
    width = check_int("width", width, minimum=1)
    n_networks = check_int("n_networks", n_networks, minimum=2)
    check_network_size(depth, width)
    seed = check_int("seed", seed)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(message("dtype", "torch.float32 or torch.float64", dtype))
    x = _inputs(x)
    spec = MLP(depth, s, c_w, c_b, out_dim=width)
    networks = ensemble(spec, width, n_networks, seed=seed, in_dim=x.shape[1], dtype=dtype)

    def statistic(z: torch.Tensor) -> torch.Tensor:  # (B, 2, n) -> (B, 3): var_1, var_2, rho
        var = z.square().mean(-1)
        rho = signal_correlation((z[:, 0] * z[:, 1]).mean(-1), var[:, 0], var[:, 1])
        return torch.cat([var, rho[:, None]], dim=1)

    samples = layer_samples(networks, x.to(dtype), statistic)  # (E, L + 1, 3)
    variance = Estimate.from_samples(samples[..., :2])
    correlation = Estimate.from_samples(samples[..., 2])
    return MeasuredDepthProfile(
        variance=variance.mean,
        variance_se=variance.stderr,
        correlation=correlation.mean,
        correlation_se=correlation.stderr,
        width=width,
        n_networks=n_networks,
    )
