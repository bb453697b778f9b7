"""Path counting for ReLU nets: exact finite-width Jacobian and NTK laws.

Reproductions:

* ``relu_lognormal_jacobian``: log R, R the squared Jacobian-vector norm of a
  bias-free He ReLU net, has exact finite-width mean and variance, and is
  N(-beta/2, beta) with beta = 5 sum_l 1/n_l to leading order (Hanin & Nica 2019):
  the variance grows linearly in the aspect ratio depth/width, so R itself
  fluctuates exponentially in it.
* ``relu_ntk_diagonal_mean``: the on-diagonal NTK has mean (L+1) c_out |x|^2 / n_0 at
  every width and depth, and an exact second moment (Hanin & Nica 2019).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ...finite import Estimate
from ...finite.path_counting import relu_jacobian_moments, relu_ntk_mean, relu_ntk_second_moment
from ...finite.relu_jacobian import sample_relu_jacobians
from ..figures import new_figure, png_bytes
from ..registry import reproduction
from ..result import Outcome

__all__ = ["relu_lognormal_jacobian", "relu_ntk_diagonal_mean"]

_N_STD = 5.0
_N0 = 4


@dataclass(frozen=True)
class _Grid:
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    n_networks: int


_LOG_FULL = _Grid(widths=(10, 20, 50, 100), depths=(1, 3, 10, 30), n_networks=2000)
_LOG_QUICK = _Grid(widths=(10, 40), depths=(2, 8), n_networks=1500)
_NTK_FULL = _Grid(widths=(10, 30, 100), depths=(1, 3, 10), n_networks=3000)
_NTK_QUICK = _Grid(widths=(10, 30), depths=(1, 4), n_networks=1500)
_SECOND_MAX_BETA = 2.0  # the sample E[Theta^2] is too heavy-tailed for a 5-stderr check beyond


def _binomial_agrees(fraction: float, p: float, n: int) -> bool:
    """|fraction - p| within 5 binomial stderr (of the exact p) plus half a count."""
    return abs(fraction - p) <= _N_STD * math.sqrt(p * (1 - p) / n) + 0.5 / n


def _seed(seed: int, index: int) -> int:
    return 1_000_003 * seed + index


@reproduction(
    "relu_lognormal_jacobian",
    title="ReLU Jacobian norms are log-normal with variance 5 depth/width",
    claim=(
        "For a bias-free He-initialised ReLU net, the squared Jacobian-vector norm "
        "R = (n_0/n_L)|D_L W_L ... D_1 W_1 u|^2 has E R = 1 and log R ~ N(-beta/2, beta), "
        "beta = 5 sum_l 1/n_l, to leading order in 1/n; its exact finite-width mean and "
        "variance follow from i.i.d. Bernoulli(1/2) activations."
    ),
    topic="path counting, finite width",
    reference="Hanin (2018), Thm. 1; Hanin & Nica (2019), 'Products of many large random "
    "matrices and gradients in deep neural networks'",
)
def relu_lognormal_jacobian(quick: bool = False, seed: int = 0) -> Outcome:
    """Measure mean and variance of log R over widths and depths against the exact law.

    For each (width n, depth L) ``n_networks`` nets with n_0 = 4 are sampled
    (float64); networks with a dead layer (J = 0, probability 1 - prod(1 - 2^-n))
    are counted and excluded from log R. Verdict: at every cell the sample mean of
    log R and of (log R - exact mean)^2 agree with the exact values of
    :func:`relu_jacobian_moments` within 5 stderr, the dead fraction agrees with
    its exact probability within 5 stderr, and at the widest width n the exact
    variance is within a relative 5/n of the leading-order beta.
    """
    grid = _LOG_QUICK if quick else _LOG_FULL
    cells, ok = [], True
    for index, (n, depth) in enumerate((n, d) for n in grid.widths for d in grid.depths):
        widths = (n,) * depth
        exact = relu_jacobian_moments(_N0, widths)
        s = sample_relu_jacobians(_N0, widths, grid.n_networks, seed=_seed(seed, index))
        log_r = s.hidden_sq_norm[s.alive].log()
        mean = Estimate.from_samples(log_r)
        var = Estimate.from_samples((log_r - exact.log_hidden_mean).square())
        alive = Estimate.from_samples(s.alive.to(torch.float64))
        cell_ok = (
            mean.agrees(exact.log_hidden_mean, _N_STD)
            and var.agrees(exact.log_hidden_var, _N_STD)
            and _binomial_agrees(float(alive.mean), exact.alive_probability, grid.n_networks)
        )
        ok = ok and cell_ok
        cells.append(
            {
                "width": n,
                "depth": depth,
                "beta": exact.beta,
                "log_mean": float(mean.mean),
                "log_mean_stderr": float(mean.stderr),
                "log_mean_exact": exact.log_hidden_mean,
                "log_var": float(var.mean),
                "log_var_stderr": float(var.stderr),
                "log_var_exact": exact.log_hidden_var,
                "alive_fraction": float(alive.mean),
                "alive_probability": exact.alive_probability,
                "agrees": cell_ok,
            }
        )
    widest = relu_jacobian_moments(_N0, (grid.widths[-1],))
    leading_error_wide = widest.log_hidden_var / widest.beta - 1
    narrow = relu_jacobian_moments(_N0, (10,))
    leading_ok = abs(leading_error_wide) <= 5.0 / grid.widths[-1]  # an O(1/n) correction
    head = cells[-1]
    return Outcome(
        prediction=head["log_var_exact"],
        measurement=Estimate(head["log_var"], head["log_var_stderr"], grid.n_networks),
        label=f"Var log R, R = Jacobian entry², at width {head['width']}, depth {head['depth']}",
        tolerance=f"{_N_STD:g}σ per cell; leading order: 5/n relative",
        caption=(
            "Log of the squared Jacobian entry of ReLU networks: variance (left) and mean "
            "(right) of log R against β = 5 Σ 1/n_l, measured ± stderr per (width, depth) "
            "cell, with the exact finite-width values and the leading-order log-normal law."
        ),
        verdict=ok and leading_ok,
        criterion=(
            f"mean and variance of log R and the dead fraction within {_N_STD:g} stderr of "
            "the exact finite-width values at every (width, depth); exact variance within "
            "a relative 5/n of beta = 5 L/n at the widest width n"
        ),
        summary=(
            f"Var log R at n={head['width']}, L={head['depth']}: {head['log_var']:.3f} ± "
            f"{head['log_var_stderr']:.3f} vs exact {head['log_var_exact']:.3f} (leading "
            f"beta = {head['beta']:.3f}); the leading order is off by "
            f"{narrow.log_hidden_var / narrow.beta - 1:+.0%} (variance) and "
            f"{narrow.log_hidden_mean / narrow.log_hidden_mean_leading - 1:+.0%} (mean) "
            f"at width 10, {leading_error_wide:+.1%} at width {grid.widths[-1]}"
        ),
        parameters={**asdict(grid), "n0": _N0, "c_out": 2.0, "dtype": "float64", "seed": seed},
        details={
            "cells": cells,
            "leading_order_relative_error_var_width10": narrow.log_hidden_var / narrow.beta - 1,
            "leading_order_relative_error_mean_width10": (
                narrow.log_hidden_mean / narrow.log_hidden_mean_leading - 1
            ),
            "leading_order_relative_error_var_widest": leading_error_wide,
        },
        figure=_lognormal_figure(grid, cells),
    )


def _lognormal_figure(grid: _Grid, cells: list[dict]) -> bytes:
    fig, (left, right) = new_figure(2)
    colour = {n: f"C{i}" for i, n in enumerate(grid.widths)}  # one colour per width, both panels
    for n in grid.widths:
        mine = [c for c in cells if c["width"] == n]
        ratio = [c["depth"] / n for c in mine]
        left.errorbar(
            ratio,
            [c["log_var"] for c in mine],
            yerr=[c["log_var_stderr"] for c in mine],
            fmt="o",
            capsize=3,
            color=colour[n],
            label=f"measured, n = {n}",
        )
        fine = torch.linspace(1, max(grid.depths), 60)
        exact = [relu_jacobian_moments(_N0, (n,)).log_hidden_var * float(d) for d in fine]
        left.plot((fine / n).numpy(), exact, "--", lw=1, color=colour[n])
    left.plot([], [], "--", lw=1, color="gray", label="exact, per width")
    top = max(grid.depths) / min(grid.widths)
    line = torch.linspace(0, top, 50)
    left.plot(line.numpy(), (5 * line).numpy(), "k-", lw=1, label="leading order 5 L / n")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="aspect ratio L / n",
        ylabel="Var log R",
        title="log-variance grows like 5 L/n (dashed: exact)",
    )
    left.legend(fontsize=7)
    widest = [c for c in cells if c["width"] == grid.widths[-1]]
    right.errorbar(
        [c["beta"] for c in widest],
        [c["log_mean"] for c in widest],
        yerr=[c["log_mean_stderr"] for c in widest],
        fmt="o",
        capsize=3,
        color=colour[grid.widths[-1]],
        label=f"measured mean log R, n = {grid.widths[-1]}",
    )
    betas = [c["beta"] for c in widest]
    right.plot(betas, [-b / 2 for b in betas], "k-", lw=1, label="-beta / 2")
    right.plot(betas, [c["log_mean_exact"] for c in widest], "--", color="gray", label="exact")
    right.set(xlabel="beta = 5 sum 1/n_l", ylabel="E log R", title="mean of log R")
    right.legend(fontsize=7)
    return png_bytes(fig)


@reproduction(
    "relu_ntk_diagonal_mean",
    title="The on-diagonal NTK of a ReLU net has mean (L+1) c_out |x|^2 / n_0 at any width",
    claim=(
        "For a bias-free He ReLU net in NTK parametrisation, E Theta(x, x) = (L+1) c_out "
        "|x|^2 / n_0 exactly at every width and depth (L+1 weight layers); its second "
        "moment is exact too and grows like exp(5 sum_l 1/n_l) to leading order."
    ),
    topic="path counting, finite width",
    reference="Hanin & Nica (2019), 'Finite depth and width corrections to the neural "
    "tangent kernel', Thm. 1",
)
def relu_ntk_diagonal_mean(quick: bool = False, seed: int = 0) -> Outcome:
    """Measure E Theta(x, x) and E Theta(x, x)^2 over widths and depths.

    For each (width n, depth L) ``n_networks`` nets (n_0 = 4, c_out = 2, float64)
    are sampled and Theta(x, x) computed by a batched backward pass (the same
    number ``empirical_ntk`` returns for the matching spec). Verdict: the mean
    agrees with (L+1) c_out |x|^2 / n_0 within 5 stderr at every cell, and the
    second moment with :func:`relu_ntk_second_moment` within 5 stderr where
    beta = 5 L/n <= 2 (beyond, the sample second moment is too heavy-tailed).
    """
    grid = _NTK_QUICK if quick else _NTK_FULL
    x = torch.tensor([1.0, -0.5, 2.0, 0.3], dtype=torch.float64)
    cells, ok = [], True
    for index, (n, depth) in enumerate((n, d) for n in grid.widths for d in grid.depths):
        widths = (n,) * depth
        mean_exact = float(relu_ntk_mean(x, widths))
        second_exact = float(relu_ntk_second_moment(x, widths))
        s = sample_relu_jacobians(
            _N0, widths, grid.n_networks, x=x, ntk=True, seed=_seed(seed, 100 + index)
        )
        mean = Estimate.from_samples(s.ntk)
        second = Estimate.from_samples(s.ntk.square())
        beta = 5.0 * depth / n
        cell_ok = mean.agrees(mean_exact, _N_STD) and (
            beta > _SECOND_MAX_BETA or second.agrees(second_exact, _N_STD)
        )
        ok = ok and cell_ok
        cells.append(
            {
                "width": n,
                "depth": depth,
                "beta": beta,
                "mean": float(mean.mean),
                "mean_stderr": float(mean.stderr),
                "mean_exact": mean_exact,
                "mean_zscore": float(mean.zscore(mean_exact)),
                "ratio": float(second.mean) / mean_exact**2,
                "ratio_stderr": float(second.stderr) / mean_exact**2,
                "ratio_exact": second_exact / mean_exact**2,
                "ratio_leading_exp_5beta": math.exp(beta),
                "second_zscore": float(second.zscore(second_exact)),
                "agrees": cell_ok,
            }
        )
    head = cells[-1]
    zs = [abs(c["mean_zscore"]) for c in cells]
    return Outcome(
        prediction=head["mean_exact"],
        measurement=Estimate(head["mean"], head["mean_stderr"], grid.n_networks),
        label=f"E Θ(x, x), the on-diagonal NTK, at width {head['width']}, depth {head['depth']}",
        tolerance=f"{_N_STD:g}σ per cell",
        caption=(
            "On-diagonal NTK of ReLU networks: mean / (|x|²/n₀) against the number of weight "
            "layers (left, theory L + 1) and the normalised second moment against β = 5L/n "
            "(right, dashed: exact), measured ± stderr."
        ),
        max_z=max(zs),
        verdict=ok,
        criterion=(
            f"E Theta within {_N_STD:g} stderr of (L+1) c_out |x|^2 / n_0 at every (width, "
            f"depth); E Theta^2 within {_N_STD:g} stderr of the exact value where 5L/n <= "
            f"{_SECOND_MAX_BETA:g}"
        ),
        summary=(
            f"E Theta at n={head['width']}, L={head['depth']}: {head['mean']:.3f} ± "
            f"{head['mean_stderr']:.3f} vs {head['mean_exact']:.3f}; max |z| over cells "
            f"{max(zs):.1f}; E Theta^2 / (E Theta)^2 = {head['ratio']:.2f} ± "
            f"{head['ratio_stderr']:.2f} vs exact {head['ratio_exact']:.2f} "
            f"(leading exp(5 L/n) = {head['ratio_leading_exp_5beta']:.2f})"
        ),
        parameters={
            **asdict(grid),
            "n0": _N0,
            "c_out": 2.0,
            "x": x,
            "parametrization": "ntk",
            "seed": seed,
        },
        details={"cells": cells},
        figure=_ntk_figure(grid, cells, float(x.square().sum())),
    )


def _ntk_figure(grid: _Grid, cells: list[dict], x_sq: float) -> bytes:
    fig, (left, right) = new_figure(2)
    scale = x_sq / _N0
    colour = {n: f"C{i}" for i, n in enumerate(grid.widths)}  # one colour per width, both panels
    for n in grid.widths:
        mine = [c for c in cells if c["width"] == n]
        left.errorbar(
            [c["depth"] + 1 for c in mine],
            [c["mean"] / scale for c in mine],
            yerr=[c["mean_stderr"] / scale for c in mine],
            fmt="o",
            capsize=3,
            color=colour[n],
            label=f"n = {n}",
        )
        right.errorbar(
            [c["beta"] for c in mine],
            [c["ratio"] for c in mine],
            yerr=[c["ratio_stderr"] for c in mine],
            fmt="o",
            capsize=3,
            color=colour[n],
            label=f"measured, n = {n}",
        )
        right.plot(
            [c["beta"] for c in mine], [c["ratio_exact"] for c in mine], "--", lw=1, color=colour[n]
        )
    right.plot([], [], "--", lw=1, color="gray", label="exact, per width")
    layers = torch.arange(1, max(grid.depths) + 2)
    left.plot(layers.numpy(), (2.0 * layers).numpy(), "k-", lw=1, label="c_out (L+1)")
    left.set(xlabel="weight layers L + 1", ylabel="E Theta(x,x) / (|x|^2 / n_0)")
    left.set_title("mean of the on-diagonal NTK", fontsize=9)
    left.legend(fontsize=7)
    betas = sorted({c["beta"] for c in cells})
    right.plot(betas, [math.exp(b) for b in betas], "k-", lw=1, label="exp(5 L / n)")
    right.set(yscale="log", xlabel="beta = 5 L / n", ylabel="E Theta^2 / (E Theta)^2")
    right.set_title("second moment (dashed: exact)", fontsize=9)
    right.legend(fontsize=7)
    return png_bytes(fig)
