"""A challenge problem: a random walk whose speed depends on where it is.

The walk (see docs/topics/implicit_bias.md): theta on the circle [0, 2 pi)
moves theta(t + dt) = theta(t) +- v(theta) dt with probability 1/2 each,
v = 1 on [0, pi) and v = 2 on [pi, 2 pi). The step is set by the current
position (an Ito-type walk), so in the continuum limit it is a diffusion with
D(theta) = v^2 dt / 2 and zero probability current, whose stationary density
solves d/dtheta (D p) = 0: p proportional to 1 / v^2,

    p = 4 / (5 pi) on [0, pi),   p = 1 / (5 pi) on [pi, 2 pi)

(mass 4/5 on the slow half). Some notes give weights sqrt(2)/(sqrt(2)+1) and
1/(sqrt(2)+1) (density ratio sqrt(2)); that is not the stationary law of this
walk: exact lattice solutions and simulation give the ratio v_fast^2 / v_slow^2 = 4.
Their qualitative conclusion (less time where the noise is large) stands.
At finite dt the exact stationary law of the lattice chain (``dt = pi / M``)
is :func:`lattice_slow_mass`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from .._checks import as_float_tensor, check_bytes, check_int
from ..stats import Estimate

__all__ = ["WalkRun", "challenge_walk", "lattice_slow_mass", "walk_density"]


def walk_density(theta: torch.Tensor | float) -> torch.Tensor:
    """The continuum stationary density: 4 / (5 pi) on [0, pi), 1 / (5 pi) on [pi, 2 pi).

    ``theta`` (any shape, angles mod 2 pi) must be finite: a NaN or infinite angle
    has no position on the circle and is refused.

    >>> round(float(walk_density(1.0) / walk_density(4.0)), 12)
    4.0
    """
    theta = as_float_tensor("theta", theta, dtype=torch.float64, detach=True)
    theta = torch.remainder(theta, 2 * math.pi)
    slow = torch.full_like(theta, 4.0 / (5.0 * math.pi))
    return torch.where(theta < math.pi, slow, slow / 4.0)


def lattice_slow_mass(m: int) -> float:
    """Exact stationary mass on [0, pi) of the walk with dt = pi / m (a 2m-site Markov chain).

    >>> abs(lattice_slow_mass(400) - 0.8) < 0.002
    True
    """
    m = check_int("m", m, minimum=2)
    check_bytes("m", 256.0 * m)  # the sparse 2m x 2m chain and its LU factors
    n = 2 * m
    k = np.arange(n)
    step = np.where(k < m, 1, 2)
    rows = np.concatenate([(k + step) % n, (k - step) % n])
    cols = np.concatenate([k, k])
    P = sp.csr_matrix((np.full(2 * n, 0.5), (rows, cols)), shape=(n, n))
    A = (P - sp.eye(n)).tolil()
    A[0, :] = 1.0  # replace one balance equation by normalisation
    rhs = np.zeros(n)
    rhs[0] = 1.0
    p = spl.spsolve(A.tocsc(), rhs)
    return float(p[:m].sum())


@dataclass(frozen=True)
class WalkRun:
    """Independent walkers after a long run.

    Attributes:
        positions: (walkers,) final positions in [0, 2 pi).
        slow_mass: Estimate of the fraction on [0, pi) (binomial standard error).
        histogram: (bins,) density estimates; histogram_stderr: their standard errors.
        edges: (bins + 1,) bin edges.
    """

    positions: torch.Tensor
    slow_mass: Estimate
    histogram: torch.Tensor
    histogram_stderr: torch.Tensor
    edges: torch.Tensor


def challenge_walk(
    m: int = 50, steps: int = 20_000, *, walkers: int = 20_000, bins: int = 20, seed: int = 0
) -> WalkRun:
    """Simulate the challenge walk with dt = pi / m from uniform random starts.

    The walkers are independent; their final positions are i.i.d. draws from
    the stationary law (binomial histogram errors) once the run is many
    relaxation times long. The slowest mode of the 2m-site lattice chain relaxes
    in about 2 m^2 / pi^2 steps (diffusion with D = 1/2 lattice units per step
    around the circle of 2m sites; the exact spectral gap gives 73 steps at
    m = 20 against 81), so a run shorter than 20 of them (40 m^2 / pi^2 steps)
    warns (RuntimeWarning): the starting law has not fully decayed.

    Args:
        m: lattice resolution (dt = pi / m); steps: steps per walker;
        walkers: number of independent walkers; bins: histogram bins; seed: randomness.

    Returns:
        A :class:`WalkRun`.
    """
    m = check_int("m", m, minimum=2)
    steps = check_int("steps", steps, minimum=1)
    walkers = check_int("walkers", walkers, minimum=2)
    bins = check_int("bins", bins, minimum=2)
    relax = 2.0 * m * m / math.pi**2
    if steps < 20.0 * relax:
        warnings.warn(
            f"challenge_walk: steps = {steps} is fewer than 20 relaxation times "
            f"(20 * 2 m^2 / pi^2 = {math.ceil(20 * relax)} steps at m = {m}); the walkers may "
            "not have reached the stationary law. Raise steps or lower m",
            RuntimeWarning,
            stacklevel=2,
        )
    gen = torch.Generator().manual_seed(check_int("seed", seed))
    # Integer lattice coordinate k (theta = (k + offset) dt) keeps the walk exact.
    n = 2 * m
    k = torch.randint(n, (walkers,), generator=gen)
    for _ in range(steps):
        sign = torch.randint(2, (walkers,), generator=gen) * 2 - 1
        k = torch.remainder(k + sign * torch.where(k < m, 1, 2), n)
    offset = torch.rand(walkers, generator=gen, dtype=torch.float64)
    theta = (k.to(torch.float64) + offset) * (math.pi / m)
    slow = (k < m).to(torch.float64)
    edges = torch.linspace(0.0, 2 * math.pi, bins + 1, dtype=torch.float64)
    counts = torch.histc(theta, bins=bins, min=0.0, max=2 * math.pi)
    frac = counts / walkers
    width = 2 * math.pi / bins
    return WalkRun(
        theta,
        Estimate.from_samples(slow),
        frac / width,
        torch.sqrt(frac * (1 - frac) / walkers) / width,
        edges,
    )
