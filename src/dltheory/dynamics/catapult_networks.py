"""The catapult phase measured on real networks under full-batch GD with MSE.

Lewkowycz et al. (2020), Sec. 3: for wide networks the learning rate in units of
the linear threshold, c = eta / (2N / lambda_max(Theta_0)), splits training
into a lazy phase (c < 1), a catapult phase (1 < c < c_max: the loss first grows
to O(width), the NTK's top eigenvalue falls below 2N/eta, then training
converges) and a divergent phase (c > c_max). In the uv model c_max = 2 (i.e.
eta = 4/lambda_0); the paper reports c_max of about 6 (eta ~ 12/lambda_0) for
deep ReLU nets. :func:`catapult_scan` measures c_max per architecture with its
uncertainty; the growth phase lasts about log(width) / (2 log|2c - 1|) steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import (
    as_float_array,
    as_float_tensor,
    check_bytes,
    check_int,
    check_positive,
    message,
)
from ..finite import Estimate
from ..spec import Serial
from .learning_rate import max_stable_lr
from .training import train

__all__ = ["CatapultRun", "CatapultScan", "catapult_scan"]

__fuzz_exempt__ = {
    "catapult_scan:nan": "NaN boundaries where no run reached the phase on the grid, and "
    "inf / NaN loss ratio and factor for diverged runs (documented)",
}


@dataclass(frozen=True)
class CatapultRun:
    """One GD run at eta = factor * 2N / lambda_max(Theta_0).

    Attributes:
        factor: eta in units of the linear threshold 2N / lambda_max(Theta_0).
        phase: "lazy" (loss never above its start), "catapult" (a spike, then
            convergence), "divergent" (the trajectory diverged) or "not_converged".
        spike: max_t loss_t / loss_0.
        spike_step: the first step at which the loss reaches half its maximum (robust
            to later, smaller bumps; the end of the catapult's growth phase).
        final_loss_ratio: loss_T / loss_0 (inf if diverged).
        final_factor: eta / (2N / lambda_max(Theta_T)), < 1 after a catapult (NaN if diverged).
        losses: the recorded loss curve.
    """

    factor: float
    phase: str
    spike: float
    spike_step: int
    final_loss_ratio: float
    final_factor: float
    losses: np.ndarray


@dataclass(frozen=True)
class CatapultScan:
    """Phases over a grid of factors and seeds, with the measured boundaries.

    Attributes:
        factors: the grid of eta / (2N / lambda_max(Theta_0)), shape (K,).
        runs: ``runs[s][k]`` for seed s and factor k.
        lower: the lazy/catapult boundary in units of 2N / lambda_max(Theta_0): per seed
            the midpoint of the grid cell where the phase changes; mean +- stderr over
            seeds (stderr includes the half-cell width in quadrature).
        upper: the catapult/divergent boundary, same conventions.

    A boundary that no seed's run reached on the grid is NaN (mean and stderr); a
    boundary reached by only some seeds is NaN too: widen the grid of factors.
    """

    factors: np.ndarray
    runs: tuple[tuple[CatapultRun, ...], ...]
    lower: Estimate
    upper: Estimate


def _classify(losses: np.ndarray, diverged: bool, conv_tol: float) -> str:
    if diverged:
        return "divergent"
    if losses[-1] > conv_tol * losses[0]:
        return "not_converged"
    return "catapult" if losses.max() > 1.05 * losses[0] else "lazy"


def _boundary(factors: np.ndarray, phases_by_seed: list[list[str]], to: set[str]) -> Estimate:
    cells, half = [], []
    for phases in phases_by_seed:
        hit = [k for k, p in enumerate(phases) if p in to]
        if not hit:
            cells.append(math.nan)
            half.append(math.nan)
            continue
        k = hit[0]
        lo = factors[k - 1] if k > 0 else 0.0
        cells.append(0.5 * (lo + factors[k]))
        half.append(0.5 * (factors[k] - lo))
    cells_a, half_a = np.array(cells), np.array(half)
    n = len(cells)
    spread = float(np.std(cells_a, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    grid = float(np.sqrt(np.mean(half_a**2)))
    return Estimate(float(np.mean(cells_a)), math.hypot(spread, grid), n)


def catapult_scan(
    spec: Serial | Callable[[int, int], nn.Module],
    x: Any,
    y: Any,
    *,
    width: int,
    factors: Any,
    steps: int = 300,
    seeds: int = 3,
    seed: int = 0,
    conv_tol: float = 1e-2,
) -> CatapultScan:
    """Train networks of ``spec`` at eta = c 2N / lambda_max(Theta_0) for each c.

    Each seed samples one network (float64); for each factor a fresh copy is
    trained by full-batch GD (:func:`dltheory.dynamics.train`, MSE) for ``steps``
    steps. Phases follow Lewkowycz et al. (2020): divergence is an outcome.

    Args:
        spec: the architecture (e.g. ``MLP(depth=1, activation="relu", c_w=2.0)``), or
            a factory ``(width, seed) -> nn.Module`` (conv nets, transformers, ...;
            trained in the module's dtype and mode, Dropout in train mode refused).
        x: (N, n_0) inputs for a spec; with a factory, batch-first inputs of any shape
            and dtype, passed to the model as given. y: (N, k) targets.
        width: hidden width.
        factors: increasing grid of c > 0.
        steps: GD steps per run.
        seeds: number of independent networks.
        seed: root seed (independent streams spawned from it).
        conv_tol: converged means final loss <= conv_tol * initial loss.
    """
    if isinstance(spec, Serial):
        x = as_float_tensor("x", x, ndim=2, dtype=torch.float64)

        def build(w: int, s: int) -> nn.Module:
            return spec.sample(width=w, in_dim=x.shape[1], seed=s).double()
    elif callable(spec):
        build = spec
    else:
        raise TypeError(
            message(
                "spec",
                "a Serial spec (e.g. MLP(...)) or a factory (width, seed) -> nn.Module",
                type(spec).__name__,
            )
        )
    y = as_float_tensor("y", y, dtype=torch.float64)
    if y.ndim == 0 or y.shape[0] != len(x):
        raise ValueError(message("y", f"targets with {len(x)} rows", tuple(y.shape)))
    y = y.reshape(len(x), -1)
    width = check_int("width", width, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    seeds = check_int("seeds", seeds, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    conv_tol = check_positive("conv_tol", conv_tol)
    if not conv_tol < 1:
        raise ValueError(
            message("conv_tol", "in (0, 1): converged is a loss below conv_tol x L0", conv_tol)
        )
    grid = as_float_array("factors", factors, ndim=1)
    if np.any(grid <= 0) or np.any(np.diff(grid) <= 0):
        raise ValueError(message("factors", "an increasing 1-D grid of values > 0", grid))
    check_bytes("seeds", 8.0 * seeds * grid.size * (steps + 1), fix="Use fewer seeds or steps")
    if isinstance(spec, Serial):
        n_in = x.shape[1]
        check_bytes("width", 8.0 * width * (width * max(spec.depth - 1, 0) + n_in + y.shape[1] + 2))
    streams = np.random.SeedSequence(seed).spawn(seeds)
    all_runs, phases = [], []
    for stream in streams:
        net_seed = int(stream.generate_state(1)[0])
        net0 = build(width, net_seed)
        thr0 = max_stable_lr(net0, x, y, hessian=False).ntk_lr
        runs = []
        for c in grid:
            net = build(width, net_seed)
            traj = train(net, x, y, lr=float(c * thr0), steps=steps, track=("loss",))
            losses = np.asarray(traj.values["loss"], dtype=np.float64)
            phase = _classify(losses, traj.diverged, conv_tol)
            final = (
                math.nan
                if traj.diverged
                else float(c * thr0 / max_stable_lr(net, x, y, hessian=False).ntk_lr)
            )
            runs.append(
                CatapultRun(
                    factor=float(c),
                    phase=phase,
                    spike=float(losses.max() / losses[0]),
                    spike_step=int(traj.steps[int(np.argmax(losses >= 0.5 * losses.max()))]),
                    final_loss_ratio=math.inf if traj.diverged else float(losses[-1] / losses[0]),
                    final_factor=final,
                    losses=losses,
                )
            )
        all_runs.append(tuple(runs))
        phases.append([r.phase for r in runs])
    return CatapultScan(
        factors=grid,
        runs=tuple(all_runs),
        lower=_boundary(grid, phases, {"catapult", "divergent", "not_converged"}),
        upper=_boundary(grid, phases, {"divergent"}),
    )
