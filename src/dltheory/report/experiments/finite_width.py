"""The NNGP limit: outputs of finite networks become Gaussian as the width grows.

Reproductions:

* ``gaussian_outputs``: the excess kurtosis of a network output over random
  initialisations decays like 1/width, and the output covariance approaches
  the NNGP kernel (Neal 1996; Lee et al. 2018; Matthews et al. 2018).

The measurement needs hundreds of thousands of small networks, sampled and run
in batches by :func:`dltheory.finite.ensemble`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..._checks import message
from ...finite import Estimate, ensemble
from ...kernels import kernel
from ...kernels.corrections import relu_exact_excess_kurtosis
from ...spec import MLP
from ..figures import new_figure, png_bytes
from ..quantities import Quantity, Table
from ..registry import reproduction
from ..result import Outcome

__all__ = [
    "excess_kurtosis",
    "gaussian_outputs",
    "loglog_slope",
]


def excess_kurtosis(z: torch.Tensor) -> Estimate:
    """Excess kurtosis E[z^4] / E[z^2]^2 - 3 of a mean-zero sample, with a delta-method stderr.

    The mean is known to be zero (a network output is odd in its last weight
    matrix), so raw moments m2, m4 are used; the stderr propagates the sample
    covariance of (z^2, z^4) through the gradient (-2 m4 / m2^3, 1 / m2^2).

    >>> z = torch.tensor([-1.0, 1.0] * 50, dtype=torch.float64)  # E z^4 = E z^2 = 1
    >>> float(excess_kurtosis(z).mean)
    -2.0
    """
    z = z.to(torch.float64).flatten()
    if z.numel() < 2:
        raise ValueError(message("z", "at least 2 samples", z.numel()))
    moments = torch.stack([z.square(), z.pow(4)])
    m2, m4 = moments.mean(1)
    grad = torch.stack([-2.0 * m4 / m2**3, 1.0 / m2**2])
    var = grad @ torch.cov(moments) @ grad / z.numel()
    return Estimate(float(m4 / m2**2 - 3.0), float(var.clamp_min(0).sqrt()), z.numel())


@dataclass(frozen=True)
class _Fit:
    slope: float
    stderr: float
    intercept: float
    chi2_per_dof: float


def loglog_slope(widths: list[int], values: list[float], stderrs: list[float]) -> _Fit:
    """Weighted least-squares fit log|value| = intercept + slope log(width).

    The weight of each point is 1 / (stderr / |value|)^2 (the delta-method
    error of log|value|); the slope stderr is sqrt of (X^T W X)^-1's entry.

    >>> fit = loglog_slope([1, 2, 4], [8.0, 4.0, 2.0], [0.1, 0.1, 0.1])
    >>> round(fit.slope, 12)
    -1.0
    """
    logn = torch.tensor(widths, dtype=torch.float64).log()
    values_t = torch.tensor(values, dtype=torch.float64).abs()
    y = values_t.log()
    sigma = torch.tensor(stderrs, dtype=torch.float64) / values_t
    design = torch.stack([torch.ones_like(logn), logn], dim=1)
    weight = 1.0 / sigma.square()
    normal = design.T @ (weight[:, None] * design)
    cov = torch.linalg.inv(normal)
    coef = cov @ (design.T @ (weight * y))
    resid = y - design @ coef
    dof = max(len(widths) - 2, 1)
    chi2 = float((weight * resid.square()).sum()) / dof
    return _Fit(float(coef[1]), float(cov[1, 1].sqrt()), float(coef[0]), chi2)


@dataclass(frozen=True)
class _Sizes:
    depth: int
    widths: tuple[int, ...]
    n_networks: int


_FULL = _Sizes(depth=2, widths=(16, 32, 64, 128), n_networks=120_000)
_QUICK = _Sizes(depth=2, widths=(16, 32, 64), n_networks=100_000)
_INPUTS = ((1.0, 0.5, -0.3, 0.8), (0.2, -1.0, 0.7, 0.4), (-0.6, 0.3, 0.9, -1.1))
_SLOPE_TOL, _SLOPE_NSTD = 0.25, 3.0
_N_STD, _COV_BIAS = 5.0, 4.0


def _seed(seed: int, index: int) -> int:
    """Independent root seeds for the widths of one run."""
    return 1_000_003 * seed + index


@reproduction(
    "gaussian_outputs",
    title="Finite networks become Gaussian processes as the width grows",
    claim=(
        "Over random initialisations, the output of a finite MLP is a Gaussian process "
        "up to O(1/width): its excess kurtosis decays like 1/width (log-log slope -1) "
        "and its covariance approaches the NNGP kernel K^(L+1)."
    ),
    topic="NNGP limit",
    reference="Neal (1996); Lee et al. (2018); Roberts, Yaida & Hanin (2022), Ch. 4-5",
)
def gaussian_outputs(quick: bool = False, seed: int = 0) -> Outcome:
    """Measure the output kurtosis and covariance of ReLU ensembles across widths.

    For each width, ``n_networks`` ReLU MLPs (He initialisation, float32) are
    sampled as one ensemble per width (root seed from ``seed``); the output at three
    fixed inputs gives (a) the excess kurtosis at the first input, with a
    delta-method stderr, and (b) the covariance E[z_a z_b] over networks.

    Verdict, all three: the weighted log-log slope of the kurtosis is within
    max(3 stderr, 0.25) of -1 (the margin covers the O(1/width^2) curvature at
    small widths); at every width the kurtosis agrees within 5 stderr with the
    exact finite-width value 3 (prod_l (1 + 5/n_l) - 1)
    (:func:`~dltheory.kernels.corrections.relu_exact_excess_kurtosis`); and the covariance
    agrees with the NNGP within 5 stderr + (4/width) |K| (an O(1/width) bias is
    expected off the diagonal).
    """
    sizes = _QUICK if quick else _FULL
    spec = MLP(sizes.depth, "relu", c_w=2.0, c_b=0.0)
    x = torch.tensor(_INPUTS, dtype=torch.float64)
    nngp = kernel(spec, x, backend="torch").nngp  # three inputs: no compilation warm-up

    kurtosis, exact, cov_z, cov_rel, cov_noise, cov_ok = [], [], [], [], [], []
    for index, width in enumerate(sizes.widths):
        networks = ensemble(spec, width, sizes.n_networks, seed=_seed(seed, index), in_dim=4)
        z = networks.forward(x).to(torch.float64)[:, :, 0]
        kurtosis.append(excess_kurtosis(z[:, 0]))
        exact.append(relu_exact_excess_kurtosis([width] * sizes.depth))
        cov = Estimate.from_samples(z[:, :, None] * z[:, None, :])
        cov_z.append(float(cov.zscore(nngp).abs().max()))
        cov_rel.append(float(((cov.mean - nngp) / nngp).abs().max()))
        cov_noise.append(float((cov.stderr / nngp.abs()).max()))
        cov_ok.append(cov.agrees(nngp, n_std=_N_STD, rtol=_COV_BIAS / width))

    widths = list(sizes.widths)
    k_mean = [k.mean for k in kurtosis]
    k_se = [k.stderr for k in kurtosis]
    fit = loglog_slope(widths, k_mean, k_se)
    exact_fit = loglog_slope(widths, exact, k_se)
    k_z = [(k - e) / s for k, e, s in zip(k_mean, exact, k_se, strict=True)]
    slope_ok = abs(fit.slope + 1.0) <= max(_SLOPE_NSTD * fit.stderr, _SLOPE_TOL)
    exact_ok = all(abs(z) <= _N_STD for z in k_z)
    verdict = slope_ok and exact_ok and all(cov_ok)

    fig = _figure(sizes, fit, kurtosis, cov_rel, cov_noise)
    return Outcome(
        prediction=-1.0,
        measurement=Estimate(fit.slope, fit.stderr, sizes.n_networks * len(widths)),
        verdict=verdict,
        criterion=(
            f"|slope + 1| <= max({_SLOPE_NSTD:g} stderr, {_SLOPE_TOL}); kurtosis within "
            f"{_N_STD:g} stderr of 3((1+5/n)^L - 1) at every width; covariance within "
            f"{_N_STD:g} stderr + ({_COV_BIAS:g}/width)|K| of the NNGP at every width"
        ),
        summary=(
            f"slope {fit.slope:.3f} ± {fit.stderr:.3f} (asymptotic -1; exact finite-width "
            f"{exact_fit.slope:.3f}); kurtosis at width {widths[-1]}: {k_mean[-1]:.3f} ± "
            f"{k_se[-1]:.3f} vs exact {exact[-1]:.3f}; covariance max rel. deviation "
            f"{cov_rel[-1]:.2%} (max |z| {cov_z[-1]:.2f})"
        ),
        parameters={
            **asdict(sizes),
            "activation": "relu",
            "c_w": 2.0,
            "c_b": 0.0,
            "inputs": x,
            "dtype": "float32",
            "seed": seed,
        },
        details={
            "widths": widths,
            "excess_kurtosis": k_mean,
            "excess_kurtosis_stderr": k_se,
            "excess_kurtosis_exact": exact,
            "excess_kurtosis_zscore_vs_exact": k_z,
            "slope_stderr": fit.stderr,
            "slope_chi2_per_dof": fit.chi2_per_dof,
            "intercept": fit.intercept,
            "slope_of_exact_values": exact_fit.slope,
            "slope_ok": slope_ok,
            "kurtosis_matches_exact": exact_ok,
            "nngp": nngp,
            "covariance_max_abs_zscore": cov_z,
            "covariance_max_relative_deviation": cov_rel,
            "covariance_max_relative_stderr": cov_noise,
            "covariance_ok": cov_ok,
        },
        figure=fig,
        label="log-log slope of the output excess kurtosis κ₄ against the width n",
        tolerance=(
            f"slope: max({_SLOPE_NSTD:g}σ, {_SLOPE_TOL}); κ₄: {_N_STD:g}σ per width; "
            f"covariance: {_N_STD:g}σ + ({_COV_BIAS:g}/n)|K| (O(1/n) bias)"
        ),
        max_z=max([abs(fit.slope + 1.0) / fit.stderr, *map(abs, k_z), *cov_z]),
        rows=[
            Quantity(
                "slope of log κ₄ vs log n",
                -1.0,
                Estimate(fit.slope, fit.stderr, 1),
                note=f"the exact finite-width values have slope {exact_fit.slope:.3f}",
            ),
        ],
        tables=[
            Table(
                "output excess kurtosis κ₄ and covariance, width by width",
                (
                    "width n",
                    "κ₄ exact 3((1+5/n)^L - 1)",
                    "κ₄ measured ± stderr",
                    "z",
                    "cov. max |z| vs NNGP",
                    "cov. max rel. dev.",
                ),
                [
                    (w, e, Estimate(m, s, sizes.n_networks), z, cz, cr)
                    for w, e, m, s, z, cz, cr in zip(
                        widths, exact, k_mean, k_se, k_z, cov_z, cov_rel, strict=True
                    )
                ],
            )
        ],
        note="max |z| covers the slope, the kurtosis at every width and the covariance.",
        caption=(
            "Left: excess kurtosis of the output against the width (log-log), measured ± "
            "stderr with the exact finite-width value; the slope -1 is the 1/n law. Right: "
            "deviation of the output covariance from the NNGP kernel."
        ),
    )


def _figure(sizes: _Sizes, fit: _Fit, kurtosis, cov_rel, cov_noise) -> bytes:
    widths = torch.tensor(sizes.widths, dtype=torch.float64)
    fine = torch.logspace(math.log10(widths[0] / 1.3), math.log10(widths[-1] * 1.3), 50)
    fig, (left, right) = new_figure(2)
    left.errorbar(
        widths.numpy(),
        [k.mean for k in kurtosis],
        yerr=[k.stderr for k in kurtosis],
        fmt="o",
        capsize=3,
        label=f"measured ({sizes.n_networks} networks per width)",
    )
    left.plot(
        fine.numpy(),
        (math.exp(fit.intercept) * fine**fit.slope).numpy(),
        label=f"fit: slope {fit.slope:.3f} ± {fit.stderr:.3f}",
    )
    exact = 3.0 * ((1.0 + 5.0 / fine) ** sizes.depth - 1.0)  # relu_exact_excess_kurtosis at real n
    left.plot(fine.numpy(), exact.numpy(), "k--", lw=1, label="exact 3((1+5/n)^L - 1)")
    left.plot(fine.numpy(), (15 * sizes.depth / fine).numpy(), ":", color="gray", label="15 L / n")
    left.set(ylabel="excess kurtosis of z(x_1)", title=f"ReLU MLP, depth {sizes.depth}, He init")

    right.plot(widths.numpy(), cov_rel, "o-", label="max |Cov - K| / K over input pairs")
    right.plot(widths.numpy(), cov_noise, "x:", color="gray", label="Monte-Carlo stderr / K")
    right.plot(
        fine.numpy(),
        (_COV_BIAS / fine).numpy(),
        "--",
        color="tab:red",
        lw=1,
        label=f"allowed O(1/n) bias, {_COV_BIAS:g} / n",
    )
    right.set(ylabel="relative deviation from the NNGP", title="output covariance vs NNGP")
    for ax in (left, right):
        ax.set(xscale="log", yscale="log", xlabel="width n")
        ax.set_xticks(sizes.widths, [str(n) for n in sizes.widths])
        ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        ax.legend(fontsize=8)
    return png_bytes(fig)
