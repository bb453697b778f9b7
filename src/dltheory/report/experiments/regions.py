"""Linear regions of ReLU networks (Telgarsky 2016; Hanin & Rolnick 2019).

Reproductions:

* ``region_density``: at initialisation the breakpoints per unit length along a
  line grow like the number of neurons, not exponentially with depth; measured
  exactly on sampled networks against the Kac-Rice prediction and below the
  Kac-Rice bound #neurons * C_grad * C_bias in the form of Hanin & Rolnick (2019),
  with C_grad = E|dz/dt| (the paper's constant was not checked here).
* ``sawtooth_pieces``: Telgarsky's sawtooth (2L layers, 3L ReLUs) has exactly
  2^L pieces on [0, 1], counted exactly (Telgarsky 2016).
* ``region_map_2d``: the exact regions of a random ReLU net on a 2-D input box,
  as polygons, agree with brute-force pattern enumeration on a fine grid.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.ticker import NullFormatter

from ...finite import Estimate
from ...regions import (
    count_pieces_1d,
    pattern_bound,
    piecewise_linear_layers,
    plot_regions_2d,
    region_density,
    regions_2d,
    sawtooth,
    sawtooth_reference,
)
from ...spec import MLP
from ..figures import new_figure, png_bytes
from ..quantities import Quantity, Table
from ..registry import reproduction
from ..result import Outcome

__all__ = ["grid_patterns", "region_density_run", "region_map_2d", "sawtooth_pieces"]

_C_W, _C_B, _N_IN, _OFFSET, _LENGTH = 2.0, 0.1, 4, 1.0, 2.0
_N_STD, _RTOL = 5.0, 0.05  # 5 stderr, plus 5 % for the O(1/width) bias of deep layers


@reproduction(
    "region_density",
    title="Linear pieces per unit length grow like the number of neurons, not with depth",
    claim=(
        "For a He-initialised ReLU MLP (C_w = 2, C_b > 0) the expected number of pieces per "
        "unit length along a line is about #neurons times a constant (Kac-Rice: "
        "sum_l n_l sqrt(s q - c^2) / (pi q)), below the Kac-Rice bound in Hanin-Rolnick form "
        "#neurons C_grad C_bias with C_bias = 1/sqrt(2 pi C_b): linear in #neurons, "
        "not exponential in depth."
    ),
    topic="linear regions",
    reference="Hanin & Rolnick (2019), Thm. 1 (k = 1)",
)
def region_density_run(quick: bool = False, seed: int = 0) -> Outcome:
    """Exact piece counts on random segments of random nets over widths and depths."""
    depths = (1, 2, 4) if quick else (1, 2, 4, 8)
    widths = (16, 32) if quick else (16, 32, 64)
    n_lines = 40 if quick else 120
    rows = []
    for i, depth in enumerate(depths):
        for j, width in enumerate(widths):
            r = region_density(
                [width] * depth,
                _N_IN,
                c_w=_C_W,
                c_b=_C_B,
                offset=_OFFSET,
                length=_LENGTH,
                n_lines=n_lines,
                seed=seed * 1000 + 10 * i + j,
            )
            rows.append(r)
    pred = np.array([r.prediction.density for r in rows])
    mean = np.array([float(r.measurement.mean) for r in rows])
    se = np.array([float(r.measurement.stderr) for r in rows])
    bound = np.array([r.prediction.hanin_rolnick for r in rows])
    neurons = np.array([r.prediction.n_neurons for r in rows])
    agree = np.abs(mean - pred) <= _N_STD * se + _RTOL * pred
    below = mean <= bound + _N_STD * se
    ratio = mean / pred  # pooled with inverse-variance weights
    ratio_se = se / pred
    weight = 1.0 / ratio_se**2
    pooled = float((weight * ratio).sum() / weight.sum())
    pooled_se = float(1.0 / math.sqrt(weight.sum()))
    fig, (ax, ax2) = new_figure(2)
    for depth in depths:
        sel = [k for k, r in enumerate(rows) if len(r.widths) == depth]
        ax.errorbar(neurons[sel], mean[sel], 2 * se[sel], fmt="o", label=f"measured, L={depth}")
        ax.plot(neurons[sel], pred[sel], "k_", markersize=12)
    order = np.argsort(neurons)
    ax.plot(neurons[order], bound[order], "r--", label="Kac-Rice bound, Hanin-Rolnick form")
    ax.plot([], [], "k_", label="Kac-Rice prediction")
    ax.set(xlabel="# neurons", ylabel="breakpoints per unit length", xscale="log", yscale="log")
    ax.legend(fontsize=7)
    for depth in depths:  # same depth, same colour as in the left panel
        sel = [k for k, r in enumerate(rows) if len(r.widths) == depth]
        ax2.errorbar(
            neurons[sel],
            mean[sel] / neurons[sel],
            2 * se[sel] / neurons[sel],
            fmt="o",
            label=f"measured, L={depth}",
        )
    ax2.axhline(float(bound[0] / neurons[0]), color="r", ls="--", label="C_grad C_bias")
    ax2.set(xlabel="# neurons", ylabel="density / # neurons", xscale="log", ylim=(0, None))
    ax2.legend(fontsize=7)
    for axis in (ax, ax2):
        axis.xaxis.set_minor_formatter(NullFormatter())
    return Outcome(
        prediction=1.0,
        measurement=Estimate(pooled, pooled_se, int(n_lines * len(rows))),
        verdict=bool(agree.all() and below.all()),
        criterion=(
            f"every (depth, width): |measured - predicted| <= {_N_STD:g} stderr + "
            f"{_RTOL:g} predicted, and measured <= the H-R-form bound + {_N_STD:g} stderr; "
            "measurement: measured / predicted pooled over configurations"
        ),
        summary=(
            f"measured/predicted {pooled:.3f} ± {pooled_se:.3f}; density per neuron "
            f"{(mean / neurons).min():.3f}-{(mean / neurons).max():.3f} over "
            f"{neurons.min()}-{neurons.max()} neurons (bound {bound[0] / neurons[0]:.3f})"
        ),
        parameters={
            "depths": depths,
            "widths": widths,
            "n_lines": n_lines,
            "c_w": _C_W,
            "c_b": _C_B,
            "n_in": _N_IN,
            "offset": _OFFSET,
            "length": _LENGTH,
            "seed": seed,
        },
        details={
            "configs": [list(r.widths) for r in rows],
            "n_neurons": neurons,
            "predicted": pred,
            "measured": mean,
            "stderr": se,
            "hanin_rolnick": bound,
            "agree": agree,
        },
        figure=png_bytes(fig),
        label="pieces per unit length, measured / Kac-Rice prediction (pooled over configurations)",
        tolerance=f"{_N_STD:g}σ + {_RTOL:g}·prediction per configuration",
        max_z=float(np.max(np.abs(mean - pred) / se)),
        tables=[
            Table(
                "breakpoints per unit length, configuration by configuration",
                (
                    "depth L",
                    "width n",
                    "# neurons",
                    "Kac-Rice prediction",
                    "measured ± stderr",
                    "H-R-form bound",
                ),
                [
                    (
                        len(r.widths),
                        r.widths[0],
                        int(nn),
                        float(p),
                        Estimate(float(m), float(e), n_lines),
                        float(b),
                    )
                    for r, nn, p, m, e, b in zip(rows, neurons, pred, mean, se, bound, strict=True)
                ],
            )
        ],
        caption=(
            "Left: breakpoints per unit length along random segments against the number of "
            "neurons (log-log), measured ± 2 stderr per depth, the Kac-Rice prediction (black "
            "ticks) and the Hanin-Rolnick-form bound (red). Right: the same per neuron."
        ),
    )


@reproduction(
    "sawtooth_pieces",
    title="Telgarsky's sawtooth has exactly 2^L linear pieces",
    claim=(
        "f_L = f o ... o f with f(x) = relu(2 relu(x) - 4 relu(x - 1/2)) is a ReLU net with "
        "2L layers and 3L ReLUs (the last redundant on [0, 1]) and exactly 2^L linear pieces "
        "on [0, 1], with breakpoints k / 2^L: exponentially many in depth."
    ),
    topic="linear regions",
    reference="Telgarsky (2016), Lemma 2.4",
)
def sawtooth_pieces(quick: bool = False, seed: int = 0) -> Outcome:
    """Count the pieces of f_L exactly for L = 1 .. 20 (quick: 12)."""
    max_l = 12 if quick else 20
    ls = list(range(1, max_l + 1))
    counts, linear, dyadic = [], [], []
    for L in ls:
        p = count_pieces_1d(sawtooth(L), 0.0, 1.0)
        counts.append(p.n_pieces)
        linear.append(p.n_linear_pieces)
        expected = torch.arange(1, 2**L, dtype=torch.float64) / 2**L
        dyadic.append(bool(torch.equal(p.breakpoints, expected)))
    ok = all(c == 2**L == n for c, n, L in zip(counts, linear, ls, strict=True)) and all(dyadic)
    fig, (ax, ax2) = new_figure(2)
    x = torch.linspace(0, 1, 2001, dtype=torch.float64)
    for L in (1, 2, 3, 4):
        ax.plot(x.numpy(), sawtooth_reference(L, x.clone()).numpy(), label=f"L={L}")
    ax.set(xlabel="x", ylabel="f_L(x)")
    ax.legend(fontsize=7)
    ax2.semilogy(ls, counts, "o", label="exact count")
    ax2.semilogy(ls, [2.0**L for L in ls], "k-", label="2^L")
    ax2.set(xlabel="L", ylabel="# pieces on [0, 1]")
    ax2.legend(fontsize=7)
    return Outcome(
        prediction=2**max_l,
        measurement=Estimate(float(counts[-1]), 0.0, 1),
        label=f"number of linear pieces of f_L on [0, 1] at L = {max_l}",
        exact=True,
        tolerance="exact equality",
        tables=[
            Table(
                "pieces of the sawtooth f_L, exact count vs 2^L",
                ("L", "2^L", "exact count", "linear pieces", "breakpoints k/2^L"),
                [
                    (L, 2**L, c, n, "yes" if d else "no")
                    for L, c, n, d in zip(ls, counts, linear, dyadic, strict=True)
                ],
            )
        ],
        caption=(
            "Left: the sawtooth f_L for L = 1..4. Right: the exact number of pieces against L "
            "(points) and 2^L (line), log scale."
        ),
        verdict=ok,
        criterion="n_pieces = n_linear_pieces = 2^L and breakpoints = k / 2^L for every L",
        summary=(
            f"exact counts {counts[:4]} ... {counts[-1]} = 2^{max_l}; all dyadic: {all(dyadic)}"
        ),
        parameters={"L_max": max_l, "layers": 2 * max_l, "relus": 3 * max_l, "seed": seed},
        details={"L": ls, "n_pieces": counts, "n_linear_pieces": linear, "dyadic": dyadic},
        figure=png_bytes(fig),
    )


def grid_patterns(model, n: int, lo: float, hi: float) -> torch.Tensor:
    """(n * n, n_neurons) activation patterns of a 2-input net on an n x n grid of [lo, hi]^2."""
    net = piecewise_linear_layers(model)
    s = torch.linspace(lo, hi, n, dtype=torch.float64)
    h = torch.cartesian_prod(s, s)
    blocks = []
    for layer in net.hidden:
        z = net.affine(layer, h)
        blocks.append(z > 0)
        h = torch.where(z > 0, z, layer.slope * z)
    return torch.cat(blocks, dim=1)


@reproduction(
    "region_map_2d",
    title="Exact 2-D region map equals brute-force pattern enumeration",
    claim=(
        "The linear regions of a ReLU net on a 2-D box are convex polygons, one per activation "
        "pattern (Hanin & Rolnick 2019); refining cells layer by layer by each "
        "neuron's line finds all of them: every pattern seen on a fine grid is a region, and the "
        "regions the grid misses are smaller than its cells."
    ),
    topic="linear regions",
    reference="Hanin & Rolnick (2019), Sec. 2 and Fig. 1; Serra et al. (2018)",
)
def region_map_2d(quick: bool = False, seed: int = 0) -> Outcome:
    """Exact polygons of a random 2-input ReLU net vs patterns on a grid."""
    width, depth, n_grid = (8, 2, 400) if quick else (12, 3, 1000)
    lo, hi = -2.0, 2.0
    net = MLP(depth, "relu", c_w=2.0, c_b=0.1).sample(width, in_dim=2, seed=seed)
    result = regions_2d(net, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (lo, hi))
    grid = torch.unique(grid_patterns(net, n_grid, lo, hi), dim=0)
    exact = {tuple(p) for p in result.patterns.int().tolist()}
    seen = {tuple(p) for p in grid.int().tolist()}
    cell = ((hi - lo) / (n_grid - 1)) ** 2
    areas = result.areas
    missed = [k for k, p in enumerate(result.patterns.int().tolist()) if tuple(p) not in seen]
    missed_small = all(areas[k] < 4 * cell for k in missed)
    area_ok = abs(areas.sum() - (hi - lo) ** 2) <= 1e-9 * (hi - lo) ** 2
    ok = seen <= exact and missed_small and area_ok
    fig, (ax, ax2) = new_figure(2, width=4.5, height=4.2)
    plot_regions_2d(result, ax, seed=seed)
    ids = grid_patterns(net, 300, lo, hi).to(torch.float64) @ torch.rand(
        width * depth, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    ax2.imshow(
        ids.reshape(300, 300).T.numpy(), origin="lower", extent=(lo, hi, lo, hi), cmap="tab20"
    )
    ax2.set(
        title=f"patterns on a 300 x 300 grid (count: {n_grid} x {n_grid})", xlabel="s", ylabel="t"
    )
    return Outcome(
        prediction=result.n_regions,
        measurement=Estimate(float(len(seen)), 0.0, n_grid * n_grid),
        label=f"number of linear regions in [{lo:g}, {hi:g}]²: exact polygons vs grid patterns",
        exact=True,
        tolerance="grid ⊆ exact; missed regions < 4 grid cells",
        rows=[
            Quantity("regions (exact polygons)", result.n_regions, result.n_regions),
            Quantity(
                f"distinct patterns on the {n_grid}² grid",
                result.n_regions,
                len(seen),
                note=f"{len(missed)} regions smaller than the grid misses them"
                f" (largest missed area {max((areas[k] for k in missed), default=0):.2e},"
                f" grid cell {cell:.2e})",
            ),
            Quantity("sum of polygon areas", (hi - lo) ** 2, float(areas.sum())),
        ],
        note=(
            "The grid count is below the exact count because regions smaller than a grid cell "
            "contain no grid point; the check is that every missed region is that small."
        ),
        caption=(
            f"Left: the exact regions of a random width-{width}, depth-{depth} ReLU net on "
            f"[{lo:g}, {hi:g}]². Right: activation patterns on a 300 × 300 grid, one colour "
            "per pattern."
        ),
        verdict=bool(ok),
        criterion=(
            "grid patterns are a subset of the exact regions' patterns; every region the grid "
            "misses has area < 4 grid cells; polygon areas sum to the box area (1e-9)"
        ),
        summary=(
            f"{result.n_regions} exact regions, {len(seen)} patterns on a {n_grid}^2 grid, "
            f"{len(missed)} missed (max area {max((areas[k] for k in missed), default=0):.2e}); "
            f"bound 3^N = 3^{width * depth}"
        ),
        parameters={
            "width": width,
            "depth": depth,
            "n_grid": n_grid,
            "box": (lo, hi),
            "seed": seed,
        },
        details={
            "n_regions": result.n_regions,
            "grid_patterns": len(seen),
            "missed": len(missed),
            "area_sum": float(areas.sum()),
            "min_area": float(areas.min()),
            "pattern_bound_log3": width * depth,
            "pattern_bound_exceeds": pattern_bound(width * depth) > result.n_regions,
        },
        figure=png_bytes(fig),
    )
