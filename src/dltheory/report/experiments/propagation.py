"""Initialisation and information propagation through depth.

Reproductions:

* ``fan_in_variance``: with fan-in initialisation W ~ N(0, C_w / n_{l-1}) and
  He's choice C_w = 2, C_b = 0, a ReLU network keeps the preactivation
  variance constant through depth (He et al. 2015; Poole et al. 2016).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from matplotlib.ticker import MaxNLocator

from ...finite import Estimate, ensemble, layer_samples
from ...kernels import kernel
from ...spec import MLP
from ..figures import new_figure, png_bytes
from ..registry import reproduction
from ..result import Outcome

__all__ = ["fan_in_variance"]


@dataclass(frozen=True)
class _Sizes:
    depth: int
    width: int
    n_networks: int
    in_dim: int


_FULL = _Sizes(depth=20, width=256, n_networks=50, in_dim=10)
_QUICK = _Sizes(depth=10, width=128, n_networks=40, in_dim=10)
_N_STD = 5.0
_DTYPE = torch.float32  # the finite networks; the theory runs in float64


@reproduction(
    "fan_in_variance",
    title="He initialisation keeps the preactivation variance constant through depth",
    claim=(
        "For a ReLU MLP with fan-in initialisation C_w = 2, C_b = 0 the preactivation "
        "variance K^(l)_aa = E[z_i^(l)(x_a)^2] equals 2|x_a|^2/n_0 at every layer l, "
        "neither vanishing nor exploding."
    ),
    topic="initialisation",
    reference="He et al. (2015); Poole et al. (2016)",
)
def fan_in_variance(quick: bool = False, seed: int = 0) -> Outcome:
    """Predict K^(l)_aa layer by layer and measure it on sampled networks.

    Prediction: ``kernel(spec, x, return_layers=True)`` gives K^(1), ..., K^(L+1);
    the closed form K^(1) = C_w |x|^2 / n_0 and K^(l+1) = C_w K^(l) / 2 = K^(l)
    (E[relu(z)^2] = K/2) is reported beside it.

    Measurement: for each of ``n_networks`` float32 networks (an
    :func:`~dltheory.finite.ensemble` with root seed ``seed``), the average over
    units of z^(l)^2 at every layer (:func:`~dltheory.finite.layer_samples`); the
    estimate is the mean over networks with its standard error. For ReLU with
    C_b = 0 the mean is exact at any width (E[relu(z)^2 | layer l-1] is half
    the conditional variance), so the verdict allows only 5 standard errors
    plus a 1/width relative margin.
    """
    sizes = _QUICK if quick else _FULL
    # A readout as wide as the hidden layers: every layer averages over n units.
    spec = MLP(sizes.depth, "relu", c_w=2.0, c_b=0.0, out_dim=sizes.width)
    x = torch.linspace(-1.0, 2.0, sizes.in_dim, dtype=torch.float64)[None, :]

    # The torch interpreter: for one input it needs no compilation warm-up.
    theory = kernel(spec, x, return_layers=True, backend="torch")
    prediction = torch.stack([layer.cov1[0] for layer in theory.layers])
    closed_form = 2.0 * float(x.square().sum()) / sizes.in_dim

    networks = ensemble(
        spec, sizes.width, sizes.n_networks, seed=seed, in_dim=sizes.in_dim, dtype=_DTYPE
    )
    samples = layer_samples(networks, x.to(_DTYPE))[..., 0]  # (n_networks, L + 1)
    measurement = Estimate.from_samples(samples)
    rtol = 1.0 / sizes.width
    verdict = measurement.agrees(prediction, n_std=_N_STD, rtol=rtol)
    zscores = measurement.zscore(prediction)
    worst = int(zscores.abs().argmax())
    spread = samples.std(0) / samples.mean(0)

    layers = list(range(1, sizes.depth + 2))
    fig, (ax,) = new_figure()
    lo, hi = torch.quantile(samples, torch.tensor([0.1, 0.9], dtype=samples.dtype), dim=0).numpy()
    ax.fill_between(layers, lo, hi, color="tab:blue", alpha=0.15, label="single networks, 10-90%")
    ax.plot(layers, prediction.numpy(), color="black", label="theory K^(l) (infinite width)")
    ax.errorbar(
        layers,
        measurement.mean.numpy(),
        yerr=measurement.stderr.numpy(),
        fmt="o",
        color="tab:blue",
        capsize=2,
        label=f"mean of {sizes.n_networks} networks, width {sizes.width}",
    )
    ax.set_xlabel(f"layer l (l = {sizes.depth + 1}: the readout)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("preactivation variance")
    ax.set_ylim(0.0, max(float(hi.max()), 2.0 * closed_form) * 1.05)
    ax.set_title("ReLU, C_w = 2, C_b = 0")
    ax.legend(fontsize=8)

    return Outcome(
        prediction=prediction,
        measurement=measurement,
        verdict=verdict,
        criterion=(
            f"|measured - predicted| <= {_N_STD:g} stderr + {rtol:.3g} |predicted| at every layer "
            "(relative margin 1/width for finite-width effects)"
        ),
        summary=(
            f"K^(l) = {closed_form:.4g} at all {len(layers)} layers; worst layer {worst + 1}: "
            f"{float(measurement.mean[worst]):.4g} ± {float(measurement.stderr[worst]):.2g} "
            f"(z = {float(zscores[worst]):+.2f})"
        ),
        parameters={
            **asdict(sizes),
            "activation": "relu",
            "c_w": 2.0,
            "c_b": 0.0,
            "dtype": str(_DTYPE).removeprefix("torch."),
            "seed": seed,
        },
        details={
            "input": x[0],
            "closed_form": closed_form,
            "zscores": zscores,
            "max_abs_zscore": float(zscores.abs().max()),
            "relative_spread_over_networks": spread,
        },
        figure=png_bytes(fig),
        label="K^(l)_aa = E[z^(l)(x)^2], layer by layer",
        index=layers,
        index_label="layer l",
        tolerance=f"{_N_STD:g}σ + {rtol:.3g}·|K| (1/width)",
        caption=(
            f"Preactivation variance K^(l) of a ReLU MLP with C_w = 2, C_b = 0 against the "
            f"layer l: theory (black line, the same {closed_form:.4g} at every layer), mean of "
            f"{sizes.n_networks} width-{sizes.width} networks ± stderr (points), and the 10-90 % "
            "band of single networks."
        ),
    )
