"""Finite width: the 1/n law of the four-point function and of the kernel shift.

Reproductions:

* ``fourth_cumulant_1n``: for a GELU MLP off criticality, the excess kurtosis
  of a hidden preactivation and the shift of its second moment from the NNGP
  are a/n and c/n to leading order, with a and c from the single-input
  recursions of Roberts, Yaida & Hanin (2022), Ch. 4
  (:func:`dltheory.kernels.finite_width_corrections`), measured over widths
  16..1024 on ensembles (:func:`dltheory.finite.ensemble`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..._checks import message
from ...finite import Estimate, ensemble, preactivation_moments
from ...kernels import finite_width_corrections
from ...parallel import sweep
from ...spec import MLP
from ..figures import new_figure, png_bytes
from ..quantities import Quantity, Table
from ..registry import reproduction
from ..result import Outcome

__all__ = ["Fit", "fit_one_over_n", "fourth_cumulant_1n", "measure_width"]


@dataclass(frozen=True)
class Fit:
    """Weighted least squares y(n) = a / n + b / n^2: the 1/n coefficient a and its stderr."""

    a: float
    a_stderr: float
    b: float
    chi2_per_dof: float


def fit_one_over_n(widths: list[int], values: list[float], stderrs: list[float]) -> Fit:
    """Fit y = a/n + b/n^2 weighted by 1/stderr^2 (stderr of a from the unscaled covariance).

    >>> n = [16, 32, 64, 128]
    >>> f = fit_one_over_n(n, [3 / m + 5 / m**2 for m in n], [0.01] * 4)
    >>> round(f.a, 10), round(f.b, 8)
    (3.0, 5.0)
    """
    if not len(widths) == len(values) == len(stderrs) or len(widths) < 2:
        raise ValueError(message("widths", "at least 2, as many as values and stderrs", widths))
    n = torch.tensor(widths, dtype=torch.float64)
    y = torch.tensor(values, dtype=torch.float64)
    se = torch.tensor(stderrs, dtype=torch.float64)
    if not bool((se > 0).all()) or not bool(torch.isfinite(y).all()):
        raise ValueError(message("stderrs", "> 0 with finite values", stderrs))
    w = 1 / se
    design = torch.stack([1 / n, 1 / n**2], dim=1)
    coef = torch.linalg.lstsq(design * w[:, None], (y * w)[:, None]).solution[:, 0]
    cov = torch.linalg.inv((design * w[:, None]).T @ (design * w[:, None]))
    resid = ((design @ coef - y) * w).square().sum()
    dof = max(len(widths) - 2, 1)
    return Fit(float(coef[0]), float(cov[0, 0].sqrt()), float(coef[1]), float(resid / dof))


@dataclass(frozen=True)
class _Sizes:
    depth: int
    widths: tuple[int, ...]
    samples: int  # at least this many networks x width per point (neuron samples)
    work: int  # and at least this many networks x width^2 (equal cost per small width)

    def n_networks(self, width: int) -> int:
        return max(self.samples // width, self.work // width**2)


_FULL = _Sizes(depth=4, widths=(16, 32, 64, 128, 256, 512, 1024), samples=1 << 18, work=1 << 26)
_QUICK = _Sizes(depth=4, widths=(16, 32, 64, 128), samples=1 << 16, work=1 << 24)
_C_W, _C_B, _ACT = 1.5, 0.1, "gelu"
_INPUT = (0.3, -1.2, 0.8)
_N_STD = 5.0


def measure_width(depth: int, width: int, n_networks: int, seed: int) -> dict[str, float]:
    """One sweep point: kurtosis and kernel shift of z^(L) over a GELU ensemble of one width."""
    spec = MLP(depth, _ACT, c_w=_C_W, c_b=_C_B)
    x = torch.tensor([_INPUT], dtype=torch.float64)
    networks = ensemble(spec, width, n_networks, seed=seed, in_dim=x.shape[1])
    m = preactivation_moments(networks, x)
    k = finite_width_corrections(spec, x, width).kernel
    layer = depth - 1  # the last hidden layer's preactivation z^(L)
    return {
        "kurtosis": float(m.excess_kurtosis.mean[layer, 0]),
        "kurtosis_stderr": float(m.excess_kurtosis.stderr[layer, 0]),
        "shift": float(m.second.mean[layer, 0] - k[layer, 0]),
        "shift_stderr": float(m.second.stderr[layer, 0]),
        "n": m.second.n,
    }


@reproduction(
    "fourth_cumulant_1n",
    title="Finite-width corrections: the four-point function and kernel shift scale as 1/n",
    claim=(
        "At one input, a hidden preactivation of a width-n MLP has excess kurtosis "
        "3 V^(l) / (n K^2) and second moment K + Delta^(l), Delta = O(1/n), with V and "
        "n Delta given by the leading-order recursions."
    ),
    topic="path counting, finite width",
    reference="Roberts, Yaida & Hanin (2022), Ch. 4 (eqs. 4.90, 4.118 at one input)",
)
def fourth_cumulant_1n(quick: bool = False, seed: int = 0) -> Outcome:
    """Measure kurtosis and kernel shift of the last hidden layer of GELU ensembles.

    For each width n, n_networks = max(samples / n, work / n^2) GELU MLPs
    (C_w = 1.5, C_b = 0.1, float32; moments accumulated in float64) are run at
    one input; each network contributes its neuron averages of z^2 and z^4
    (:func:`dltheory.finite.preactivation_moments`).
    The 1/n coefficients are fitted as y = a/n + b/n^2 (the b term absorbs the
    next order) and compared with the predicted a.

    Verdict: both fitted coefficients (kurtosis and shift) within 5 stderr of
    the prediction.
    """
    sizes = _QUICK if quick else _FULL
    spec = MLP(sizes.depth, _ACT, c_w=_C_W, c_b=_C_B)
    x = torch.tensor([_INPUT], dtype=torch.float64)
    layer = sizes.depth - 1
    tasks = [
        {
            "depth": sizes.depth,
            "width": n,
            "n_networks": sizes.n_networks(n),
            "seed": 1_000_003 * seed + index,
        }
        for index, n in enumerate(sizes.widths)
    ]
    points = sweep(measure_width, tasks, threads_per_task=None)  # Dask if configured
    kurt = [Estimate(p["kurtosis"], p["kurtosis_stderr"], p["n"]) for p in points]
    shift = [Estimate(p["shift"], p["shift_stderr"], p["n"]) for p in points]
    theory = finite_width_corrections(spec, x, 1)  # at n = 1 the 1/n coefficients themselves
    a_kurt = float(theory.excess_kurtosis[layer, 0])
    a_shift = float(theory.shift[layer, 0])
    widths = list(sizes.widths)
    fit_k = fit_one_over_n(widths, [e.mean for e in kurt], [e.stderr for e in kurt])
    fit_s = fit_one_over_n(widths, [e.mean for e in shift], [e.stderr for e in shift])
    z_k = (fit_k.a - a_kurt) / fit_k.a_stderr
    z_s = (fit_s.a - a_shift) / fit_s.a_stderr
    verdict = abs(z_k) <= _N_STD and abs(z_s) <= _N_STD
    return Outcome(
        prediction=a_kurt,
        measurement=Estimate(fit_k.a, fit_k.a_stderr, sum(sizes.n_networks(n) for n in widths)),
        verdict=verdict,
        criterion=(
            f"fitted 1/n coefficients of the kurtosis and of the kernel shift each within "
            f"{_N_STD:g} stderr of the prediction (fit a/n + b/n^2 over the widths)"
        ),
        summary=(
            f"n x kurtosis -> {fit_k.a:.2f} ± {fit_k.a_stderr:.2f} (predicted {a_kurt:.2f}); "
            f"n x shift -> {fit_s.a:.3f} ± {fit_s.a_stderr:.3f} (predicted {a_shift:.3f}); "
            f"K^({sizes.depth}) = {float(theory.kernel[layer, 0]):.4f}"
        ),
        parameters={
            **asdict(sizes),
            "activation": _ACT,
            "c_w": _C_W,
            "c_b": _C_B,
            "input": list(_INPUT),
            "layer": sizes.depth,
            "seed": seed,
            "dtype": "float32",
        },
        details={
            "widths": widths,
            "n_networks": [sizes.n_networks(n) for n in widths],
            "excess_kurtosis": [e.mean for e in kurt],
            "excess_kurtosis_stderr": [e.stderr for e in kurt],
            "kernel_shift": [e.mean for e in shift],
            "kernel_shift_stderr": [e.stderr for e in shift],
            "kurtosis_fit": asdict(fit_k),
            "shift_fit": asdict(fit_s),
            "kurtosis_zscore": z_k,
            "shift_zscore": z_s,
        },
        figure=_figure(widths, kurt, shift, a_kurt, a_shift, fit_k, fit_s),
        label=f"a in κ₄ = a/n + b/n²: 1/n coefficient of the excess kurtosis at l = {layer + 1}",
        tolerance=f"{_N_STD:g}σ on each fitted coefficient",
        max_z=max(abs(z_k), abs(z_s)),
        rows=[
            Quantity(
                f"n·κ₄ → a (excess kurtosis, layer {layer + 1})",
                a_kurt,
                Estimate(fit_k.a, fit_k.a_stderr, len(widths)),
            ),
            Quantity(
                f"n·Δ → a (kernel shift Δ = E z² - K^({layer + 1}))",
                a_shift,
                Estimate(fit_s.a, fit_s.a_stderr, len(widths)),
            ),
        ],
        tables=[
            Table(
                "measured excess kurtosis κ₄ and kernel shift Δ, width by width",
                ("width n", "networks", "n·κ₄ measured", "n·Δ measured"),
                [
                    (
                        n,
                        sizes.n_networks(n),
                        Estimate(n * k.mean, n * k.stderr, k.n),
                        Estimate(n * d.mean, n * d.stderr, d.n),
                    )
                    for n, k, d in zip(widths, kurt, shift, strict=True)
                ],
            )
        ],
        caption=(
            f"n × excess kurtosis (left) and n × kernel shift (right) of a GELU MLP "
            f"(C_w = {_C_W:g}, C_b = {_C_B:g}) against the width, measured ± stderr, with the "
            "fitted a + b/n and the predicted 1/n coefficient a."
        ),
    )


def _figure(widths, kurt, shift, a_kurt, a_shift, fit_k, fit_s) -> bytes:
    n = torch.tensor(widths, dtype=torch.float64)
    fine = torch.logspace(torch.log10(n[0] / 1.2), torch.log10(n[-1] * 1.2), 60)
    fig, axes = new_figure(2)
    for ax, est, a, fit, name in (
        (axes[0], kurt, a_kurt, fit_k, "n x excess kurtosis"),
        (axes[1], shift, a_shift, fit_s, "n x (E[z^2] - K)"),
    ):
        ax.errorbar(
            widths,
            [w * e.mean for w, e in zip(widths, est, strict=True)],
            yerr=[w * e.stderr for w, e in zip(widths, est, strict=True)],
            fmt="o",
            capsize=3,
            label="measured",
        )
        ax.axhline(a, color="k", ls="--", lw=1, label=f"predicted 1/n coefficient {a:.3g}")
        ax.plot(
            fine.numpy(),
            (fit.a + fit.b / fine).numpy(),
            color="tab:orange",
            label=f"fit a + b/n: a = {fit.a:.3g} ± {fit.a_stderr:.2g}",
        )
        ax.set(xscale="log", xlabel="width n", ylabel=name)
        ax.set_xticks(widths, [str(w) for w in widths])  # the widths, not crowded 10^k labels
        ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        ax.legend(fontsize=8)
    axes[0].set_title("four-point function, last hidden layer")
    axes[1].set_title("kernel shift from the NNGP")
    return png_bytes(fig)
