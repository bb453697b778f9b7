"""Criticality: the power-law decay of the K* = 0 universality class.

Reproductions:

* ``tanh_critical_decay``: at tanh criticality (C_w = 1, C_b = 0) the
  single-input kernel decays like K^(l) ~ 1 / (2 l), i.e. l K^(l) -> 1/2
  (Roberts, Yaida & Hanin 2022, Sec. 5.3.3; a_1 = -2 from
  :func:`~dltheory.criticality.k_star_zero_decay`).
* ``he_init_relu``: ReLU at C_w = 2, C_b = 0 is critical at every K; two
  inputs' correlation approaches 1 as 1 - rho^(l) ~ 9 pi^2 / (2 l^2).

The exponential approach off criticality (xi_c) and the measured phase diagram
are in :mod:`dltheory.report.experiments.depth_scales`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ...activations import activation
from ...criticality import compare_correlation_profile, k_star_zero_decay
from ...finite import Estimate, ensemble, layer_samples
from ...kernels import kernel
from ...spec import MLP
from ..figures import new_figure, png_bytes
from ..quantities import Quantity, Table
from ..registry import reproduction
from ..result import Outcome

__all__ = [
    "exact_decay",
    "he_init_relu",
    "relu_critical_correlation",
    "tanh_critical_decay",
]


@dataclass(frozen=True)
class _Sizes:
    depth: int
    width: int
    n_networks: int
    in_dim: int


_FULL = _Sizes(depth=50, width=256, n_networks=12, in_dim=10)
_QUICK = _Sizes(depth=20, width=128, n_networks=8, in_dim=10)
_N_STD = 5.0
_RTOL_PER_DEPTH_OVER_WIDTH = 0.5  # the O(depth / width) finite-width margin
_LONG = 10_000  # where the exact recursion is checked against the asymptote
_DTYPE = torch.float32  # the finite networks; the theory runs in float64
# Input norms |x|^2 / n_0: a few starting variances K^(1) = C_w |x|^2 / n_0.
_NORMS = (0.5, 1.0, 2.0)
_COLORS = ("tab:blue", "tab:orange", "tab:green")


def exact_decay(k_1: float, n_layers: int) -> torch.Tensor:
    """K^(1), ..., K^(n_layers) from K^(l+1) = E_{K^(l)}[tanh(z)^2] (C_w = 1, C_b = 0).

    Eq. (5.7) of Roberts, Yaida & Hanin (2022), iterated with the activation's
    own Gaussian second moment (float64).

    l K^(l) = 1/2 + O(log l / l) (a_1 = -2), so at l = 1000 it is within 0.005 of 1/2:

    >>> k = exact_decay(1.0, 1_000)
    >>> abs(1_000 * float(k[-1]) - 0.5) < 0.005
    True
    """
    s = activation("tanh")
    k = torch.tensor(k_1, dtype=torch.float64)
    out = [k]
    for _ in range(n_layers - 1):
        k = s.second_moment(k)
        out.append(k)
    return torch.stack(out)


@reproduction(
    "tanh_critical_decay",
    title="At tanh criticality the preactivation variance decays like 1/(2l)",
    claim=(
        "For a tanh MLP at its critical point C_w = 1, C_b = 0 (universality class K* = 0) "
        "the single-input kernel obeys K^(l) ~ 1/(-a_1 l) = 1/(2l): l K^(l) -> 1/2, "
        "a power law rather than an exponential."
    ),
    topic="criticality",
    reference="Roberts, Yaida & Hanin (2022), Sec. 5.3.3; Poole et al. (2016)",
)
def tanh_critical_decay(quick: bool = False, seed: int = 0) -> Outcome:
    """Predict l K^(l) from the exact recursion and measure it on sampled networks.

    Prediction: ``kernel(spec, x, return_layers=True)`` for inputs with
    |x|^2 / n_0 in {0.5, 1, 2}; l K^(l) per layer and input. The exact scalar
    recursion run to l = 10,000 must give l K^(l) within 1% of 1 / (-a_1) = 1/2.

    Measurement: ``n_networks`` float32 networks (an ensemble with root seed
    ``seed``, :func:`~dltheory.finite.layer_samples`); per layer and input the
    mean over units of z^(l)^2, times l,
    averaged over networks with its standard error. The finite-width
    correction grows like l / n at criticality, so the verdict allows
    5 standard errors plus 0.5 depth / width relative.
    """
    sizes = _QUICK if quick else _FULL
    spec = MLP(sizes.depth, "tanh", c_w=1.0, c_b=0.0, out_dim=sizes.width)
    base = torch.linspace(-1.0, 2.0, sizes.in_dim, dtype=torch.float64)
    base = base / base.square().mean().sqrt()
    x = torch.stack([base * norm**0.5 for norm in _NORMS])  # |x_a|^2 / n_0 = norm

    theory = kernel(spec, x, return_layers=True, backend="torch")
    layers = torch.arange(1, sizes.depth + 2, dtype=torch.float64)
    k_layers = torch.stack([layer.cov1 for layer in theory.layers])  # (L + 1, n_inputs)
    prediction = layers[:, None] * k_layers
    a_1 = k_star_zero_decay("tanh")
    asymptote = 1.0 / -a_1
    long_run = exact_decay(1.0, _LONG)
    l_k_long = _LONG * float(long_run[-1])
    asymptote_ok = abs(l_k_long - asymptote) <= 0.01 * asymptote

    networks = ensemble(
        spec, sizes.width, sizes.n_networks, seed=seed, in_dim=sizes.in_dim, dtype=_DTYPE
    )
    samples = layer_samples(networks, x.to(_DTYPE)) * layers[None, :, None]
    # (n_networks, L + 1, n_inputs)
    measurement = Estimate.from_samples(samples)
    rtol = _RTOL_PER_DEPTH_OVER_WIDTH * sizes.depth / sizes.width
    matches = measurement.agrees(prediction, n_std=_N_STD, rtol=rtol)
    zscores = measurement.zscore(prediction)
    worst = divmod(int(zscores.abs().argmax()), len(_NORMS))

    fig, (ax,) = new_figure(width=5.5)
    ls = layers.numpy()
    long_ls = torch.unique(torch.logspace(0, 4, 200).round()).to(torch.int64)
    for j, (norm, color) in enumerate(zip(_NORMS, _COLORS, strict=True)):
        ax.plot(
            ls, prediction[:, j].numpy(), color=color, lw=1, label=f"|x|^2/n_0 = {norm:g}: theory"
        )
        ax.errorbar(
            ls,
            measurement.mean[:, j].numpy(),
            yerr=measurement.stderr[:, j].numpy(),
            fmt="o",
            ms=2.5,
            color=color,
            capsize=1.5,
            label=f"|x|^2/n_0 = {norm:g}: measured (width {sizes.width})",
        )
    ax.plot(
        long_ls.numpy(),
        (long_ls.to(torch.float64) * long_run[long_ls - 1]).numpy(),
        color="black",
        lw=1,
        label="exact recursion, K^(1) = 1",
    )
    ax.axhline(asymptote, color="gray", ls="--", label="asymptote 1/(-a_1) = 1/2")
    ax.set_xscale("log")
    ax.set_xlabel(r"layer $\ell$")
    ax.set_ylabel(r"$\ell\,K^{(\ell)}$")
    ax.set_title(f"tanh at criticality (C_w = 1, C_b = 0), {sizes.n_networks} networks")
    ax.legend(fontsize=7)

    j = worst[1]
    return Outcome(
        prediction=prediction,
        measurement=measurement,
        verdict=bool(matches and asymptote_ok),
        criterion=(
            f"|measured - predicted| l K^(l) <= {_N_STD:g} stderr + {rtol:.3g} |predicted| at "
            f"every layer and input (relative margin {_RTOL_PER_DEPTH_OVER_WIDTH:g} depth/width), "
            f"and the exact recursion gives |{_LONG} K^({_LONG}) - 1/2| <= 1% of 1/2"
        ),
        summary=(
            f"l K^(l) at l = {sizes.depth + 1}: predicted {float(prediction[-1, 1]):.4f}, "
            f"measured {float(measurement.mean[-1, 1]):.4f} "
            f"± {float(measurement.stderr[-1, 1]):.2g} (|x|^2/n_0 = 1); "
            f"exact recursion {l_k_long:.4f} at l = {_LONG} (asymptote 0.5); "
            f"worst z = {float(zscores[worst]):+.2f} (layer {worst[0] + 1}, "
            f"|x|^2/n_0 = {_NORMS[j]:g})"
        ),
        parameters={
            **asdict(sizes),
            "activation": "tanh",
            "c_w": 1.0,
            "c_b": 0.0,
            "input_norms": list(_NORMS),
            "dtype": str(_DTYPE).removeprefix("torch."),
            "seed": seed,
        },
        details={
            "a_1": a_1,
            "asymptote": asymptote,
            "l_k_at_10000": l_k_long,
            "asymptote_within_1_percent": asymptote_ok,
            "measurement_matches": matches,
            "zscores": zscores,
            "max_abs_zscore": float(zscores.abs().max()),
            "rtol": rtol,
        },
        figure=png_bytes(fig),
        label="l K^(l) (tanh, C_w = 1, C_b = 0), layer by layer, for three input norms",
        tolerance=(
            f"{_N_STD:g}σ + {rtol:.3g}·|l K^(l)| ({_RTOL_PER_DEPTH_OVER_WIDTH:g} depth/width)"
        ),
        rows=[
            Quantity(
                f"{_LONG} K^({_LONG}) by the exact recursion (K^(1) = 1)",
                asymptote,
                l_k_long,
                note="a deterministic recursion: exact, checked to 1 %",
            ),
        ],
        tables=[
            Table(
                "l K^(l) at selected layers: theory vs measured ± stderr",
                (
                    "layer l",
                    *(f"theory, |x|^2/n_0 = {v:g}" for v in _NORMS),
                    *(f"measured, |x|^2/n_0 = {v:g}" for v in _NORMS),
                ),
                [
                    (
                        int(layers[i]),
                        *(float(prediction[i, j]) for j in range(len(_NORMS))),
                        *(
                            Estimate(
                                float(measurement.mean[i, j]),
                                float(measurement.stderr[i, j]),
                                measurement.n,
                            )
                            for j in range(len(_NORMS))
                        ),
                    )
                    for i in sorted(
                        {0, 1, 2, 4, 9, 19, 29, 39, 49, len(layers) - 1} & set(range(len(layers)))
                    )
                ],
            )
        ],
        caption=(
            "l K^(l) against the layer l (log scale) for tanh at criticality: theory (lines) "
            "and finite-network means ± stderr (points) for three input norms, the exact "
            f"recursion up to l = {_LONG} (black) and the asymptote 1/(-a_1) = 1/2 (dashed)."
        ),
    )


# --- He initialisation: ReLU's critical point on finite networks ---


@dataclass(frozen=True)
class _HeSizes:
    width: int
    depth: int
    n_networks: int


_HE_FULL = _HeSizes(width=512, depth=50, n_networks=16)
_HE_QUICK = _HeSizes(width=256, depth=20, n_networks=8)
# l^2 (1 - rho^(l)) -> 9 pi^2 / 2: with eps = 1 - rho, the arc-cosine map gives
# eps' = eps - (2 eps)^(3/2) / (3 pi) + ..., so d eps / dl = -a eps^(3/2), a = 2^(3/2) / (3 pi),
# and eps ~ 4 / (a l)^2 = 9 pi^2 / (2 l^2).
_RELU_CONSTANT = 9.0 * math.pi**2 / 2.0


def relu_critical_correlation(rho_1: float, n_layers: int) -> torch.Tensor:
    """rho^(1), ..., rho^(n_layers) under the ReLU correlation map at C_w = 2, C_b = 0.

    f(rho) = [sqrt(1 - rho^2) + (pi - arccos rho) rho] / pi (Cho & Saul 2009's
    arc-cosine kernel k_1 at C_w = 2), independent of K: He initialisation is
    critical for every K (chi_parallel = chi_perp = 1). Its approach to 1 is
    1 - rho^(l) ~ 9 pi^2 / (2 l^2).

    >>> rho = relu_critical_correlation(0.0, 10_000)
    >>> abs(10_000**2 * (1 - float(rho[-1])) / (9 * math.pi**2 / 2) - 1) < 0.01
    True
    """
    rho = torch.empty(n_layers, dtype=torch.float64)
    r = float(rho_1)
    for i in range(n_layers):
        rho[i] = r
        r = min(1.0, (math.sqrt(max(0.0, 1.0 - r * r)) + (math.pi - math.acos(r)) * r) / math.pi)
    return rho


@reproduction(
    "he_init_relu",
    title="He-initialised ReLU nets are critical: the correlation approaches 1 as a power law",
    claim=(
        "For ReLU at C_w = 2, C_b = 0 (He initialisation) chi_parallel = chi_perp = 1 at "
        "every K, so K^(l) stays constant and the correlation of two inputs approaches 1 "
        "with no depth scale: 1 - rho^(l) ~ 9 pi^2 / (2 l^2)."
    ),
    topic="criticality",
    reference=("He et al. (2015); Cho & Saul (2009); Roberts, Yaida & Hanin (2022), Sec. 5.2"),
)
def he_init_relu(quick: bool = False, seed: int = 0) -> Outcome:
    """Predict rho^(l) and K^(l) for He-ReLU; measure them on finite networks.

    Prediction: :func:`depth_profile` for two orthogonal inputs (rho^(1) = 0)
    with K^(1) = 1; the arc-cosine recursion to l = 10,000 must give
    l^2 (1 - rho^(l)) within 1% of 9 pi^2 / 2 (the power law; the constancy of
    K alone is ``fan_in_variance``).

    Measurement: per float32 network the correlation of 16 orthogonal pairs
    (averaged) and the mean preactivation variance at every layer; mean and
    stderr over networks. Verdict: at every layer |rho_measured - rho_predicted|
    <= 5 stderr + (depth / width) (1 - rho_predicted) and |K_measured - 1| <= 5
    stderr + depth / width (the O(l / n) finite-width fluctuations of a critical
    network), and the asymptote within 1%.
    """
    sizes = _HE_QUICK if quick else _HE_FULL
    c = compare_correlation_profile(
        "relu",
        2.0,
        0.0,
        0.0,
        width=sizes.width,
        depth=sizes.depth,
        n_networks=sizes.n_networks,
        n_std=_N_STD,
        seed=seed,
        dtype=_DTYPE,
    )
    predicted, est, samples, rho_ok = c.predicted, c.measured, c.samples, c.agrees
    ratio = sizes.depth / sizes.width
    var = Estimate.from_samples(samples.variance)
    var_ok = bool(((var.mean - 1.0).abs() <= _N_STD * var.stderr + ratio).all())
    long_run = relu_critical_correlation(0.0, _LONG)
    constant = _LONG**2 * (1.0 - float(long_run[-1]))
    asymptote_ok = abs(constant / _RELU_CONSTANT - 1.0) <= 0.01
    layers = samples.layers

    fig, (ax, ax_k) = new_figure(2, width=5.0)
    ax.plot(layers.numpy(), (layers**2 * (1 - predicted)).numpy(), "k-", label="theory")
    ax.errorbar(
        layers.numpy(),
        (layers**2 * (1 - est.mean)).numpy(),
        yerr=(layers**2 * est.stderr).numpy(),
        fmt="o",
        ms=2.5,
        capsize=1.5,
        color="tab:blue",
        label=f"measured, width {sizes.width}, {sizes.n_networks} networks",
    )
    long_ls = torch.unique(torch.logspace(0, 4, 200).round()).to(torch.int64)
    ax.plot(
        long_ls.numpy(),
        (long_ls.double() ** 2 * (1 - long_run[long_ls - 1])).numpy(),
        color="gray",
        lw=1,
        label="arc-cosine recursion",
    )
    ax.axhline(_RELU_CONSTANT, color="gray", ls="--", label="9 pi^2 / 2")
    ax.set_xscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("l^2 (1 - rho^(l))")
    ax.set_title("ReLU, C_w = 2, C_b = 0: power-law approach")
    ax.legend(fontsize=7)
    ax_k.errorbar(layers.numpy(), var.mean.numpy(), yerr=var.stderr.numpy(), fmt="o", ms=2.5)
    ax_k.axhline(1.0, color="black", label="K^(l) = 1")
    ax_k.set_xlabel("layer l")
    ax_k.set_ylabel("preactivation variance")
    ax_k.legend(fontsize=7)

    return Outcome(
        prediction=predicted,
        measurement=est,
        verdict=rho_ok and var_ok and asymptote_ok,
        criterion=(
            f"|rho_measured - rho_predicted| <= {_N_STD:g} stderr + (depth / width) "
            f"(1 - rho_predicted) and |K_measured - 1| <= {_N_STD:g} stderr + depth / width at "
            f"every layer, and {_LONG}^2 (1 - rho^({_LONG})) within 1% of 9 pi^2 / 2"
        ),
        summary=(
            f"rho^({sizes.depth + 1}): predicted {float(predicted[-1]):.5f}, measured "
            f"{float(est.mean[-1]):.5f} ± {float(est.stderr[-1]):.2g}; K^({sizes.depth + 1}) "
            f"= {float(var.mean[-1]):.3f} ± {float(var.stderr[-1]):.2g}; l^2 (1 - rho) at "
            f"l = {_LONG}: {constant:.3f} (9 pi^2 / 2 = {_RELU_CONSTANT:.3f})"
        ),
        parameters={
            **asdict(sizes),
            "activation": "relu",
            "c_w": 2.0,
            "c_b": 0.0,
            "n_pairs": 16,
            "dtype": str(_DTYPE).removeprefix("torch."),
            "seed": seed,
        },
        details={
            "correlation_agrees": rho_ok,
            "variance_agrees": var_ok,
            "variance": var,
            "l2_gap_at_10000": constant,
            "asymptote": _RELU_CONSTANT,
            "asymptote_within_1_percent": asymptote_ok,
            "zscores": est.zscore(predicted),
        },
        figure=png_bytes(fig),
        label="correlation ρ^(l) of two orthogonal inputs, layer by layer",
        index_label="layer l",
        index=list(range(1, len(predicted) + 1)),
        tolerance=f"{_N_STD:g}σ + (depth/width)(1 - ρ) (finite-width bias)",
        rows=[
            Quantity(
                f"{_LONG}² (1 - ρ^({_LONG})), exact recursion",
                _RELU_CONSTANT,
                constant,
                note="9π²/2 is the asymptote; a deterministic recursion, checked to 1 %",
            ),
        ],
        caption=(
            "Correlation ρ^(l) and variance K^(l) of He-initialised ReLU networks against the "
            "layer: theory (lines) vs finite-network means ± stderr (points)."
        ),
    )
