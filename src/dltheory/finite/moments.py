"""Per-layer statistics of sampled networks, and measured preactivation moments.

:func:`layer_samples` is the library's one way to measure anything per layer on
sampled finite networks: it runs an :func:`~dltheory.finite.ensemble` batch by
batch (so every measurement shares the ensemble's independent per-network
streams and its memory bound), converts each Dense layer's preactivations to
float64 and applies a statistic per network. Criticality profiles, pair
correlations and the report's reproductions all measure through it.

The neurons of one network are exchangeable but not independent (their
fourth-order correlations are O(1/n), the same order as what is measured), so
each network contributes one sample: its neuron averages of z^2 and z^4.
Networks are independent, which makes the standard errors honest; ratios such
as the kurtosis get delta-method errors over those per-network samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import as_float_tensor, check_finite_result, check_int, message
from ..stats import Estimate
from .ensemble import Ensemble

__all__ = [
    "PreactivationMoments",
    "layer_samples",
    "preactivation_moments",
    "ratio_estimate",
    "second_moment",
]

Statistic = Callable[[torch.Tensor], torch.Tensor]


def second_moment(z: torch.Tensor) -> torch.Tensor:
    """(1 / n_l) sum_i z_i^2 per network and input: (B, N, n_l) -> (B, N)."""
    z = as_float_tensor("z", z)
    if z.ndim < 1:
        raise ValueError(message("z", "preactivations with a feature axis last", z.shape))
    out = z.square().mean(-1)
    check_finite_result("z", out)
    return out


def layer_samples(networks: Ensemble, x: Any, statistic: Statistic = second_moment) -> torch.Tensor:
    """A per-network statistic of every Dense layer's preactivations, (E, L + 1, ...).

    Args:
        networks: an :func:`~dltheory.finite.ensemble`.
        x: inputs (N, n_0).
        statistic: maps one layer's preactivations of a batch of networks,
            z^(l) as a float64 (B, N, n_l) tensor, to a (B, ...) tensor of the
            same trailing shape at every layer (default: :func:`second_moment`).

    Returns:
        float64 (E, L + 1, ...): row i is network i of the ensemble (independent
        rows, so ``Estimate.from_samples`` gives honest standard errors).

    Memory: per batch of networks, (batch, N, n_l) preactivations of every layer.

    >>> from dltheory import MLP
    >>> from dltheory.finite import ensemble
    >>> ens = ensemble(MLP(2, "relu", c_w=2.0), 8, 3, in_dim=2, seed=0)
    >>> layer_samples(ens, torch.ones(5, 2)).shape  # 3 networks, 3 Dense layers, 5 inputs
    torch.Size([3, 3, 5])
    """
    if not isinstance(networks, Ensemble):
        raise TypeError(message("networks", "a dltheory.finite.Ensemble", type(networks).__name__))
    if not callable(statistic):
        raise TypeError(message("statistic", "a callable z -> per-network tensor", statistic))
    parts = []
    for batch in networks.batches(x, keep_preactivations=True):
        layers = [statistic(z.to(torch.float64)) for z in batch.preactivations]
        parts.append(torch.stack(layers, dim=1))
    out = torch.cat(parts)
    check_finite_result("x", out, "Rescale x or the networks' variances")
    return out


@dataclass(frozen=True)
class PreactivationMoments:
    """Moments of z_i^(l)(x_a) for each Dense layer l (rows) and input a (columns).

    Attributes:
        second: E[z^2], (L + 1, N).
        excess_kurtosis: E[z^4] / E[z^2]^2 - 3, (L + 1, N).
        four_point: E[z^4] - 3 E[z^2]^2, the connected four-point function, (L + 1, N).
    """

    second: Estimate
    excess_kurtosis: Estimate
    four_point: Estimate


def ratio_estimate(m2: torch.Tensor, m4: torch.Tensor) -> tuple[Estimate, Estimate]:
    """Excess kurtosis m4 / m2^2 - 3 and four-point m4 - 3 m2^2 from per-sample (E, ...) values.

    Delta method on the sample means: gradients (-2 m4 / m2^3, 1 / m2^2) and
    (-6 m2, 1) against the sample covariance of (m2, m4), over E samples.

    >>> m2 = torch.tensor([1.0, 1.0, 1.0]); m4 = torch.tensor([3.0, 3.0, 3.0])
    >>> kurt, four = ratio_estimate(m2, m4)
    >>> float(kurt.mean), float(four.mean), float(kurt.stderr)
    (0.0, 0.0, 0.0)
    """
    m2 = as_float_tensor("m2", m2, dtype=torch.float64)
    m4 = as_float_tensor("m4", m4, dtype=torch.float64)
    if m2.shape != m4.shape:
        raise ValueError(
            message("m4", f"the shape of m2 {tuple(m2.shape)}", f"shape {tuple(m4.shape)}")
        )
    n = m2.shape[0]
    if n < 2:
        raise ValueError(message("m2", "at least 2 samples", n))
    a, b = m2.mean(0), m4.mean(0)
    if not bool((a > 0).all()):
        raise ValueError(
            message(
                "m2",
                "a positive mean (the kurtosis m4 / m2^2 - 3 is 0 / 0 otherwise)",
                "a zero mean",
                "Leave out samples of a variable that is identically 0",
            )
        )
    da, db = m2 - a, m4 - b
    var_a, var_b = da.square().sum(0) / (n - 1), db.square().sum(0) / (n - 1)
    cov = (da * db).sum(0) / (n - 1)

    def delta(ga: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
        var = ga**2 * var_a + 2 * ga * gb * cov + gb**2 * var_b
        return (var.clamp_min(0) / n).sqrt()

    kurt = Estimate(b / a**2 - 3, delta(-2 * b / a**3, 1 / a**2), n)
    four = Estimate(b - 3 * a**2, delta(-6 * a, torch.ones_like(a)), n)
    return kurt, four


def preactivation_moments(networks: Ensemble, x: Any) -> PreactivationMoments:
    """Measure E[z^2], the excess kurtosis and the four-point function at every Dense layer.

    Args:
        networks: an :func:`~dltheory.finite.ensemble` (at least 2 networks).
        x: inputs (N, n_0); each input's moments are measured separately.

    Memory: per batch of networks, (batch, N, n_l) preactivations of every layer.

    >>> from dltheory import MLP
    >>> from dltheory.finite import ensemble
    >>> ens = ensemble(MLP(1, "relu", c_w=2.0), 32, 400, in_dim=2, seed=0,
    ...                dtype=torch.float64)
    >>> m = preactivation_moments(ens, torch.tensor([[1.0, 1.0]]))
    >>> m.second.agrees(torch.tensor([[2.0], [2.0]]))  # K = 2 |x|^2 / n_0 at both layers
    True
    """
    if not isinstance(networks, Ensemble):
        raise TypeError(message("networks", "a dltheory.finite.Ensemble", type(networks).__name__))
    check_int("n_networks", networks.n_networks, minimum=2)
    both = layer_samples(
        networks, x, lambda z: torch.stack([z.square().mean(-1), z.pow(4).mean(-1)], dim=-1)
    )
    m2, m4 = both[..., 0], both[..., 1]  # (E, L + 1, N) each
    dead = (m2 == 0).all(0)  # z = 0 in every network: e.g. x_a = 0 with C_b = 0
    if bool(dead.any()):
        layer, a = (int(v) for v in dead.nonzero()[0])
        raise ValueError(
            message(
                "x",
                "inputs whose preactivations are not identically 0 (the excess kurtosis "
                "E[z^4] / E[z^2]^2 - 3 is 0 / 0 there)",
                f"input {a} with z^({layer + 1}) = 0 in every network",
                "Drop that input (its E[z^2] is exactly 0) or use C_b > 0",
            )
        )
    kurt, four = ratio_estimate(m2, m4)
    return PreactivationMoments(Estimate.from_samples(m2), kurt, four)
