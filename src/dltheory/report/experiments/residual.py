"""Residual networks and LayerNorm: kernels and criticality through depth.

Reproductions:

* ``residual_scaling``: a ReLU residual net h + alpha W relu(h) (He init, C_w = 2)
  has chi = 1 + alpha^2 per block: the variance and the Jacobian norm grow as 2^L at
  alpha = 1, stay O(1) (-> e) at alpha = 1/sqrt(L) (Hayou et al. 2021) and stay 1 for
  zero-initialised branches (SkipInit, De & Smith 2020).
* ``pre_ln_criticality``: with LayerNorm before each branch the Jacobian norm grows
  only as a power of depth, J^(1,L) = K^(L)/K^(0), at any C_w (Doshi, He & Gromov 2023).
* ``layernorm_kernel``: LayerNorm after a ReLU subtracts the features' mean
  E[relu(z)] = sqrt(K / 2 pi): the NNGP of finite networks matches
  (K_ab - m_a m_b) / sqrt(V_a V_b), not the zero-mean formula K_ab / sqrt(K_aa K_bb).
"""

from __future__ import annotations

import math

import torch

from ...criticality.residual import measured_apjn, spec_criticality
from ...finite import Estimate
from ...spec import Dense, LayerNorm, Nonlinearity, Residual, Serial
from ..figures import new_figure, png_bytes
from ..registry import reproduction
from ..result import Outcome

__all__ = ["layernorm_kernel", "pre_ln_criticality", "residual_scaling"]

_N_STD = 5.0
RELU = Nonlinearity("relu")


def _inputs(n: int, d: int, seed: int) -> torch.Tensor:
    """n inputs with |x|^2 / d = 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(d)


def _nets(spec: Serial, width: int, n: int, d: int, seed: int) -> list[torch.nn.Sequential]:
    g = torch.Generator().manual_seed(seed)
    return [
        spec.sample(width=width, in_dim=d, generator=g, dtype=torch.float64)[:-1] for _ in range(n)
    ]


def _stack(estimates: list[Estimate]) -> Estimate:
    return Estimate(
        torch.stack([torch.as_tensor(e.mean) for e in estimates]),
        torch.stack([torch.as_tensor(e.stderr) for e in estimates]),
        min(e.n for e in estimates),
    )


@reproduction(
    "residual_scaling",
    title="Residual branches scaled by 1/sqrt(L) keep a deep ResNet critical",
    claim=(
        "A ReLU block h + alpha W relu(h) with C_w = 2 has chi = 1 + alpha^2: over L blocks "
        "the variance and the averaged partial Jacobian norm grow as 2^L at alpha = 1, "
        "reach (1 + 1/L)^L ~ e at alpha = 1/sqrt(L), and stay 1 at alpha = 0."
    ),
    topic="criticality",
    reference="Yang & Schoenholz (2017); Hayou et al. (2021); De & Smith (2020)",
)
def residual_scaling(quick: bool = False, seed: int = 0) -> Outcome:
    """K^(L) and J^(1,L) for three branch scalings: ``spec_criticality`` vs sampled nets.

    Measurement: ``measured_apjn`` (forward-mode probes, averaged over inputs and
    networks; standard errors over networks) on networks sampled from each spec.
    Tolerance: 5 standard errors plus 4 L / width relative (each block shifts the
    finite-width Jacobian norm by O(1/width)).
    """
    depth, width, n_nets = (12, 96, 3) if quick else (48, 256, 8)
    d = 8
    x = _inputs(6, d, seed)
    alphas = {"1": 1.0, "1/sqrt(L)": 1 / math.sqrt(depth), "0": 0.0}
    predicted, measured, curves = [], [], {}
    for name, alpha in alphas.items():
        block = Residual((RELU, Dense(2.0)), alpha=alpha)
        spec = Serial(Dense(1.0), *[block] * depth, Dense(1.0, width=1))
        theory = spec_criticality(spec, k0=1.0)
        apjn, variance = measured_apjn(_nets(spec, width, n_nets, d, seed), x)
        predicted += [float(theory.variance[depth]), float(theory.apjn[depth])]
        measured += [
            Estimate(variance.mean[depth], variance.stderr[depth], variance.n),
            Estimate(apjn.mean[depth], apjn.stderr[depth], apjn.n),
        ]
        curves[name] = (theory.apjn[: depth + 1], apjn)
    prediction = torch.tensor(predicted, dtype=torch.float64)
    measurement = _stack(measured)
    rtol = 4 * depth / width
    verdict = measurement.agrees(prediction, n_std=_N_STD, rtol=rtol)
    index = [f"{q}, alpha = {a}" for a in alphas for q in ("K^(L)", "J^(1,L)")]

    fig, (ax,) = new_figure()
    blocks = list(range(depth + 1))
    for name, (theory_curve, est) in curves.items():
        line = ax.semilogy(blocks, theory_curve.numpy(), label=f"theory, alpha = {name}")
        ax.errorbar(blocks, est.mean.numpy(), yerr=est.stderr.numpy(), fmt="o", ms=3,
                    color=line[0].get_color())  # fmt: skip
    ax.set_xlabel("block l")
    ax.set_ylabel("J^(1,l) (averaged partial Jacobian norm)")
    ax.legend(fontsize=8)
    return Outcome(
        prediction=prediction,
        measurement=measurement,
        verdict=verdict,
        criterion=f"|measured - predicted| <= {_N_STD:g} stderr + {rtol:.3g} |predicted|",
        summary=(
            f"J^(1,{depth}): {predicted[1]:.3g} (alpha = 1), {predicted[3]:.3g} "
            f"(alpha = 1/sqrt(L)), {predicted[5]:.3g} (alpha = 0); measured "
            f"{float(measurement.mean[1]):.3g}, {float(measurement.mean[3]):.3g}, "
            f"{float(measurement.mean[5]):.3g}"
        ),
        parameters={"depth": depth, "width": width, "n_networks": n_nets, "seed": seed},
        details={"zscores": measurement.zscore(prediction)},
        figure=png_bytes(fig),
        label="K^(L) = E[h^(L)^2] and J^(1,L) = E||dh^(L)/dh^(1)||_F^2 / n (dimensionless)",
        index=index,
        index_label="quantity",
        tolerance=f"{_N_STD:g}σ + {rtol:.3g}·|value| (4 L / width)",
        caption=(
            "Averaged partial Jacobian norm J^(1,l) through the blocks of a ReLU ResNet for "
            "three branch scalings: theory (lines) and sampled networks (points, ± stderr)."
        ),
    )


@reproduction(
    "pre_ln_criticality",
    title="Pre-LayerNorm residual nets are critical at any initialisation",
    claim=(
        "With LayerNorm before each ReLU branch, K grows by C_w / 2 per block whatever K is, so "
        "each block has chi_perp = 1 + C_w / (2K) and J^(1,L) = K^(L) / K^(0) grows only "
        "linearly in depth, for every C_w."
    ),
    topic="criticality",
    reference="Doshi, He & Gromov (ICLR 2023)",
)
def pre_ln_criticality(quick: bool = False, seed: int = 0) -> Outcome:
    """J^(1,L) for C_w in {0.5, 2, 8}: ``spec_criticality`` vs ``measured_apjn``."""
    depth, width, n_nets = (10, 96, 3) if quick else (32, 256, 6)
    d = 8
    x = _inputs(6, d, seed)
    c_ws = (0.5, 2.0, 8.0)
    predicted, measured = [], []
    for c_w in c_ws:
        block = Residual((LayerNorm(), RELU, Dense(c_w)))
        spec = Serial(Dense(1.0), *[block] * depth, Dense(1.0, width=1))
        theory = spec_criticality(spec, k0=1.0)
        apjn, _ = measured_apjn(_nets(spec, width, n_nets, d, seed), x)
        predicted.append(float(theory.apjn[depth]))
        measured.append(Estimate(apjn.mean[depth], apjn.stderr[depth], apjn.n))
    prediction = torch.tensor(predicted, dtype=torch.float64)
    measurement = _stack(measured)
    rtol = 4 * depth / width
    verdict = measurement.agrees(prediction, n_std=_N_STD, rtol=rtol)
    without_ln = [(1 + c_w / 2) ** depth for c_w in c_ws]
    return Outcome(
        prediction=prediction,
        measurement=measurement,
        verdict=verdict,
        criterion=f"|measured - predicted| <= {_N_STD:g} stderr + {rtol:.3g} |predicted|",
        summary=(
            f"J^(1,{depth}) = "
            + ", ".join(f"{p:.3g}" for p in predicted)
            + f" for C_w = {c_ws} (without LayerNorm: "
            + ", ".join(f"{w:.3g}" for w in without_ln)
            + ")"
        ),
        parameters={"depth": depth, "width": width, "n_networks": n_nets, "seed": seed},
        details={"without_layernorm": without_ln, "zscores": measurement.zscore(prediction)},
        label="J^(1,L) = E||dh^(L)/dh^(1)||_F^2 / n (dimensionless)",
        index=[f"C_w = {c}" for c in c_ws],
        index_label="branch C_w",
        tolerance=f"{_N_STD:g}σ + {rtol:.3g}·|J| (4 L / width)",
    )


@reproduction(
    "layernorm_kernel",
    title="LayerNorm after a ReLU: the NNGP subtracts the features' mean",
    claim=(
        "After Dense, ReLU, LayerNorm the NNGP is (K_ab - m_a m_b) / sqrt(V_a V_b) with "
        "m = sqrt(K / 2 pi) and V = K/2 - m^2; finite networks agree with it and not with "
        "the zero-mean formula K_ab / sqrt(K_aa K_bb)."
    ),
    topic="NNGP limit",
    reference="Ba, Kiros & Hinton (2016); Novak et al. (2020), stax.LayerNorm",
)
def layernorm_kernel(quick: bool = False, seed: int = 0) -> Outcome:
    """Output NNGP of Dense, [ReLU, LayerNorm, Dense] * 2 against a finite ensemble."""
    width, n_nets = (128, 150) if quick else (512, 400)
    d = 4
    x = _inputs(4, d, seed)
    spec = Serial(*[m for _ in range(2) for m in (Dense(2.0, 0.1), RELU, LayerNorm())],
                  Dense(1.0, width=1))  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    outputs = []
    with torch.no_grad():
        for _ in range(n_nets):
            net = spec.sample(width=width, in_dim=d, generator=g, dtype=torch.float64)
            outputs.append(net(x)[:, 0])
    z = torch.stack(outputs)
    rows, cols = torch.triu_indices(len(x), len(x))
    samples = (z[:, :, None] * z[:, None, :])[:, rows, cols]
    measurement = Estimate.from_samples(samples)
    prediction = spec.kernel(x).nngp[rows, cols]
    # The zero-mean convention (no mean subtracted), for comparison.
    zero_mean = _zero_mean_nngp(x)[rows, cols]
    rtol = 4.0 / width
    verdict = measurement.agrees(prediction, n_std=_N_STD, rtol=rtol)
    z_ours = measurement.zscore(prediction)
    z_zero = measurement.zscore(zero_mean)
    return Outcome(
        prediction=prediction,
        measurement=measurement,
        verdict=verdict,
        criterion=f"|measured - predicted| <= {_N_STD:g} stderr + {rtol:.3g} |predicted|",
        summary=(
            f"max |z| {float(z_ours.abs().max()):.2f} with the mean subtracted; "
            f"{float(z_zero.abs().max()):.1f} for the zero-mean formula"
        ),
        parameters={"width": width, "n_networks": n_nets, "c_w": 2.0, "c_b": 0.1, "seed": seed},
        details={"zero_mean_prediction": zero_mean, "zscores_zero_mean": z_zero},
        label="output NNGP K_ab = E[z(x_a) z(x_b)] (upper triangle)",
        index=[f"({int(a)},{int(b)})" for a, b in zip(rows, cols, strict=True)],
        index_label="input pair",
        tolerance=f"{_N_STD:g}σ + {rtol:.3g}·|K| (4 / width)",
    )


def _zero_mean_nngp(x: torch.Tensor) -> torch.Tensor:
    """The same network with LayerNorm taken as K_ab / sqrt(K_aa K_bb) (no mean)."""
    k = 2.0 * x @ x.T / x.shape[1] + 0.1
    for layer in range(2):
        d = k.diagonal().sqrt()
        cos = (k / torch.outer(d, d)).clamp(-1, 1)
        theta = torch.arccos(cos)
        k = torch.outer(d, d) / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * cos)
        d = k.diagonal().sqrt()
        k = k / torch.outer(d, d)
        if layer == 0:
            k = 2.0 * k + 0.1
    return k
