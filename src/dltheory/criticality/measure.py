"""The correlation depth scale xi_c measured on sampled finite networks.

Theory (Schoenholz et al. 2017, "Deep information propagation", Eqs. (5)-(9);
Roberts, Yaida & Hanin 2022, Sec. 5.3): two inputs whose variance already sits
at the fixed point K* have a correlation rho^(l) = K_12^(l) / K* that follows
the correlation map f of :func:`~dltheory.criticality.correlation_map`; near
its stable fixed point rho*,

    rho^(l) - rho* ~ A exp(-l / xi_c),   xi_c = -1 / log chi_c,
    chi_c = f'(rho*) = C_w E[s'(u) s'(v)],  (u, v) ~ N(0, K* [[1, rho*], [rho*, 1]]).

Measurement: :func:`~dltheory.criticality.correlation_samples` (an ensemble of
``MLP(depth, act, c_w, c_b, out_dim=width)``) runs ``n_pairs`` input pairs of
:func:`~dltheory.criticality.pair_inputs`, each with K^(1)_aa = K* and
K^(1)_12 = rho_1 K* (so only the correlation moves: the variance map has
converged before layer 1), and records rho_hat^(l) per network. Its mean
over networks has a standard error ~ 1 / sqrt(n E) and an O(1/n) bias, so the
exponential is fitted only where the signal |rho - rho*| is above ``min_snr``
standard errors, and xi_c's standard error is a jackknife over groups of
networks (a fit's covariance would ignore that one network's correlations at
successive layers are strongly correlated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import curve_fit

from .._checks import (
    Plain,
    as_float_tensor,
    check_choice,
    check_int,
    check_positive,
    check_real,
    message,
)
from ..activations import Activation, activation
from ..stats import Estimate
from .depth_scales import DepthScales, depth_scales
from .pair_correlations import CorrelationSamples, correlation_samples, pair_inputs

__all__ = [
    "CorrelationFit",
    "CorrelationScale",
    "fit_correlation_scale",
    "measured_correlation_scale",
]

Asymptote = Literal["theory", "fit"]
_ASYMPTOTES = ("theory", "fit")
_MIN_WINDOW = 5  # layers a fit needs


@dataclass(frozen=True)
class CorrelationFit:
    """An exponential fitted to rho^(l) - rho* over a window of layers.

    Attributes:
        xi_c: the decay length (jackknife standard error over ``n`` groups).
        rho_star: the asymptote used (stderr 0 when given, jackknife when fitted).
        window: (first, last) layers of the fit, 1-based and inclusive.
        distance: per layer |rho^(l) - rho*| (mean over networks, its stderr).
        resolved_until: last layer from ``window[0]`` on where the distance
            is above ``min_snr`` standard errors.
    """

    xi_c: Estimate
    rho_star: Estimate
    window: tuple[int, int]
    distance: Estimate
    resolved_until: int


@dataclass(frozen=True)
class CorrelationScale:
    """xi_c measured on finite networks, beside the theory's.

    Attributes:
        predicted: the theory's :class:`~dltheory.criticality.DepthScales`.
        fit: the :class:`CorrelationFit` on the measured correlations.
        samples: the :class:`CorrelationSamples` it was fitted to.
        predicted_correlation: (depth + 1,) the infinite-width rho^(l) of the same pairs.
        asymptote: ``"theory"`` (rho* from the theory) or ``"fit"`` (a free asymptote).
        width, depth, n_networks: the ensemble's sizes.
    """

    predicted: DepthScales
    fit: CorrelationFit
    samples: CorrelationSamples
    predicted_correlation: torch.Tensor
    asymptote: Asymptote
    width: int
    depth: int
    n_networks: int

    @property
    def xi_c(self) -> Estimate:
        """The measured xi_c."""
        return self.fit.xi_c

    @property
    def relative_error(self) -> float:
        """(measured - predicted) / predicted xi_c."""
        return float(self.fit.xi_c.mean) / self.predicted.xi_c - 1.0


def _wls_slope(layers: np.ndarray, dist: np.ndarray, se: np.ndarray) -> float:
    """Slope of log(dist) against layers, weights (dist / se)^2."""
    if (dist <= 0).any():
        return math.nan
    w = (dist / se) ** 2
    y = np.log(dist)
    lm, ym = np.average(layers, weights=w), np.average(y, weights=w)
    return float((w * (layers - lm) * (y - ym)).sum() / (w * (layers - lm) ** 2).sum())


def _fit_once(
    mean: np.ndarray,
    se: np.ndarray,
    layers: np.ndarray,
    rho_star: float | None,
    guess: tuple[float, float],
) -> tuple[float, float]:
    """(xi, rho*) from one set of per-layer means (``mean`` is rho or, given rho*, the distance)."""
    if rho_star is not None:
        slope = _wls_slope(layers, mean, se)
        return (-1.0 / slope if slope < 0 else math.nan), rho_star
    l0 = layers[0]

    def model(lay: np.ndarray, r: float, a: float, inv_xi: float) -> np.ndarray:
        return r + a * np.exp(-(lay - l0) * inv_xi)

    r0, xi0 = guess
    p0 = (r0, mean[0] - r0, 1.0 / xi0)
    try:
        params, _ = curve_fit(model, layers, mean, p0=p0, sigma=se, maxfev=10_000)
    except RuntimeError:
        return math.nan, math.nan
    return (1.0 / params[2] if params[2] > 0 else math.nan), float(params[0])


def fit_correlation_scale(
    samples: Any,
    *,
    start: int,
    rho_star: float | None,
    min_snr: float = 5.0,
    n_groups: int = 8,
    xi_guess: float = 10.0,
    one_minus: Any = None,
) -> CorrelationFit:
    """Fit rho^(l) - rho* ~ A exp(-l / xi_c) to per-network correlations.

    Given ``rho_star``: weighted least squares of log|mean rho^(l) - rho*| on l
    (weights (distance / stderr)^2) over layers ``start`` .. the last layer
    whose distance exceeds ``min_snr`` standard errors. With ``rho_star=None``
    the asymptote is free: a weighted nonlinear fit of rho* + A exp(-l / xi)
    from ``start`` to the last layer (the layers past the signal's reach are
    what pins rho*). Either way the standard errors of xi_c and rho* are a
    jackknife over ``n_groups`` groups of networks, each refitted on the same
    window.

    Args:
        samples: (E, n_layers) per-network correlations; column j is layer j + 1.
        start: first layer of the fit (1-based), past the nonlinear transient.
        rho_star: the asymptote, or None to fit it.
        min_snr: signal-to-noise that a layer of the window must have.
        n_groups: jackknife groups, 2 <= n_groups <= E.
        xi_guess: starting value of the free fit.
        one_minus: optional (E, n_layers) 1 - rho computed without cancellation,
            used for the distance when ``rho_star == 1``.

    Returns:
        :class:`CorrelationFit`.

    Raises:
        ValueError: fewer than 5 layers of the window are resolved.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> lay = torch.arange(1, 41, dtype=torch.float64)
        >>> rho = 1 - torch.exp(-lay / 4.0) * (1 + 0.01 * torch.randn(16, 40, generator=g))
        >>> fit = fit_correlation_scale(rho, start=1, rho_star=1.0)
        >>> abs(float(fit.xi_c.mean) - 4.0) < 0.05
        True
    """
    rho = as_float_tensor("samples", samples, ndim=2, dtype=torch.float64, detach=True).numpy()
    n_networks, n_layers = rho.shape
    start = check_int("start", start, minimum=1)
    if start > n_layers - _MIN_WINDOW + 1:
        raise ValueError(message("start", f"a layer <= {n_layers - _MIN_WINDOW + 1}", start))
    min_snr = check_positive("min_snr", min_snr)
    n_groups = check_int("n_groups", n_groups, minimum=2)
    if n_groups > n_networks:
        raise ValueError(message("n_groups", f"<= the number of networks ({n_networks})", n_groups))
    xi_guess = check_positive("xi_guess", xi_guess)
    if rho_star is not None:
        rho_star = check_real("rho_star", rho_star)
    if one_minus is not None and rho_star == 1.0:
        om = as_float_tensor("one_minus", one_minus, dtype=torch.float64, detach=True).numpy()
        if om.shape != rho.shape:
            raise ValueError(message("one_minus", f"of shape {rho.shape}", om.shape))
        signed = om  # 1 - rho: the distance to rho* = 1
    else:
        signed = rho - (rho_star if rho_star is not None else 0.0)

    groups = np.array_split(np.arange(n_networks), n_groups)
    root_n = math.sqrt(n_networks)
    se = np.maximum(signed.std(0, ddof=1) / root_n, 1e-300)
    layers = np.arange(1, n_layers + 1, dtype=np.float64)

    def distance(values: np.ndarray, r: float | None) -> np.ndarray:
        mean = values.mean(0)
        if rho_star is None:
            mean = mean - r
        return mean * np.sign(mean[start - 1]) if mean[start - 1] != 0 else np.abs(mean)

    if rho_star is None:
        # A first guess of the asymptote: the mean of the last layers.
        _, r_full = _fit_once(
            rho.mean(0)[start - 1 :],
            se[start - 1 :],
            layers[start - 1 :],
            None,
            (float(rho.mean(0)[-3:].mean()), xi_guess),
        )
        if not math.isfinite(r_full):
            raise ValueError(
                message("samples", "fit by rho* + A exp(-l / xi)", "a failed fit", "Check start")
            )
    else:
        r_full = rho_star
    dist_full = distance(signed, r_full)
    resolved = dist_full > min_snr * se
    stop = start - 1
    while stop < n_layers and resolved[stop]:
        stop += 1
    resolved_until = stop  # last resolved layer (1-based)
    if resolved_until - start + 1 < _MIN_WINDOW:
        raise ValueError(
            message(
                "samples",
                f"resolved (|rho - rho*| > {min_snr:g} stderr) on >= {_MIN_WINDOW} layers "
                f"from layer {start}",
                f"{max(0, resolved_until - start + 1)} layers",
                "Use more networks, a wider network, or a point with a longer xi_c",
            )
        )
    last = resolved_until if rho_star is not None else n_layers
    window = slice(start - 1, last)

    def fit(idx: np.ndarray) -> tuple[float, float]:
        if rho_star is not None:
            return _fit_once(
                distance(signed[idx], None)[window], se[window], layers[window], rho_star, (0, 0)
            )
        return _fit_once(
            rho[idx].mean(0)[window], se[window], layers[window], None, (r_full, xi_guess)
        )

    xi, r = fit(np.arange(n_networks))
    loo = np.array([fit(np.setdiff1d(np.arange(n_networks), g)) for g in groups])
    factor = (n_groups - 1) / n_groups
    xi_se = math.sqrt(factor * ((loo[:, 0] - loo[:, 0].mean()) ** 2).sum())
    r_se = 0.0 if rho_star is not None else math.sqrt(factor * ((loo[:, 1] - r) ** 2).sum())
    if not all(math.isfinite(v) for v in (xi, r, xi_se, r_se)) or xi <= 0:
        raise ValueError(
            message(
                "samples",
                "correlations that decay exponentially toward rho_star",
                Plain(f"a failed fit (xi_c = {xi:g})"),
                "Check rho_star and start",
            )
        )
    return CorrelationFit(
        xi_c=Estimate(xi, xi_se, n_groups),
        rho_star=Estimate(r, r_se, n_groups),
        window=(start, last),
        distance=Estimate(torch.from_numpy(dist_full), torch.from_numpy(se), n_networks),
        resolved_until=resolved_until,
    )


def _linear_start(distance: torch.Tensor, xi_c: float, tol: float) -> int:
    """First layer from which the infinite-width decay rate stays within tol of 1 / xi_c."""
    d = distance.numpy()
    ok = d > 1e-12 * d[0]
    rates = np.log(d[:-1] / np.where(d[1:] > 0, d[1:], np.nan))
    good = np.abs(rates * xi_c - 1.0) <= tol
    for i in range(len(good)):
        if not ok[i + 1]:
            return i + 1
        if good[i:][ok[i + 1 :]].all():
            return i + 1
    return len(d)


def measured_correlation_scale(
    act: str | Activation,
    c_w: float,
    c_b: float,
    *,
    width: int = 512,
    depth: int = 50,
    n_networks: int = 64,
    seed: int = 0,
    rho_1: float | None = None,
    n_pairs: int = 4,
    asymptote: Asymptote = "theory",
    start: int | None = None,
    linear_tol: float = 0.02,
    min_snr: float = 5.0,
    n_groups: int = 8,
    dtype: torch.dtype = torch.float32,
) -> CorrelationScale:
    """Measure xi_c on finite networks and set it beside -1 / log chi_c.

    Prediction: :func:`~dltheory.criticality.depth_scales` (Schoenholz et al.
    2017, Eq. (9); ordered phase: chi_c = chi_perp(K*), rho* = 1; chaotic
    phase: chi_c = f'(rho*) at the stable rho* < 1).

    Measurement: :func:`correlation_samples` on :func:`pair_inputs` with
    K^(1) = K* and K^(1)_12 = rho_1 K*, then :func:`fit_correlation_scale`.
    The window starts where the infinite-width profile's decay rate is within
    ``linear_tol`` of 1 / xi_c (the linearised regime), unless ``start`` is given.

    ``asymptote="theory"`` uses the theory's rho*; it is exact at any width
    when rho* = 1 (ordered: identical inputs stay identical) or when rho* = 0
    for an odd activation at C_b = 0 (the sign flip x' -> -x' is a symmetry).
    Elsewhere on the chaotic side rho* moves by O(1/n) at finite width, which
    bends log|rho - rho*| near the noise floor: use ``asymptote="fit"``.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w, c_b: an ordered or chaotic point with K* > 0.
        width: hidden width n.
        depth: hidden layers L.
        n_networks: ensemble size E.
        seed: root seed of the ensemble.
        rho_1: first-layer correlation; default 0 (ordered), (1 + rho*) / 2 (chaotic).
        n_pairs: input pairs per network (their average is one sample per network).
        asymptote: ``"theory"`` or ``"fit"``.
        start: first layer of the fit (default: from ``linear_tol``).
        linear_tol: relative tolerance on the decay rate that defines the start.
        min_snr: signal-to-noise the window's layers must have.
        n_groups: jackknife groups of networks.
        dtype: of the networks (reductions are float64).

    Returns:
        :class:`CorrelationScale`.

    Raises:
        ValueError: at criticality (xi_c infinite: a power law, see
            :func:`~dltheory.criticality.depth_profile`), at K* = 0, or when
            the signal is resolved on fewer than 5 layers.
    """
    s = activation(act)
    asymptote = check_choice("asymptote", asymptote, _ASYMPTOTES)
    linear_tol = check_positive("linear_tol", linear_tol)
    d = depth_scales(s, c_w, c_b)
    if d.phase == "critical" or not math.isfinite(d.xi_c) or d.k_star == 0.0:
        raise ValueError(
            message(
                "(c_w, c_b)",
                "an ordered or chaotic point with K* > 0 and a finite xi_c",
                (c_w, c_b),
                "At criticality the approach is a power law: compare depth_profile instead",
            )
        )
    if rho_1 is None:
        rho_1 = 0.0 if d.phase == "ordered" else 0.5 * (1.0 + d.rho_star)
    x = pair_inputs(c_w, c_b, d.k_star, rho_1, n_pairs)
    from .profiles import depth_profile  # profiles imports nothing from here

    profile = depth_profile(s, c_w, c_b, x[:2], depth)
    predicted = profile.correlation
    if start is None:
        start = _linear_start((predicted - d.rho_star).abs(), d.xi_c, linear_tol)
    samples = correlation_samples(
        s, c_w, c_b, x, width=width, depth=depth, n_networks=n_networks, seed=seed, dtype=dtype
    )
    fit = fit_correlation_scale(
        samples.correlation,
        start=start,
        rho_star=d.rho_star if asymptote == "theory" else None,
        min_snr=min_snr,
        n_groups=n_groups,
        xi_guess=d.xi_c,
        one_minus=samples.one_minus,
    )
    return CorrelationScale(
        predicted=d,
        fit=fit,
        samples=samples,
        predicted_correlation=predicted,
        asymptote=asymptote,
        width=width,
        depth=depth,
        n_networks=n_networks,
    )
