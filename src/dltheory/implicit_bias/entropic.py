"""The entropic force: SGD drifts along a flat valley toward lower curvature.

After Wei & Schwab (2019), "How noise affects the Hessian spectrum in
overparameterized neural networks". Model valley: two
parameters (x, y) and per-sample losses l_k = 1/2 (sqrt(h(x)) y - eps_k)^2 with
label noise eps_k ~ N(0, sigma^2) drawn fresh every step (online SGD, batch b).
The full loss is L = 1/2 h(x) y^2 + sigma^2 / 2: every point of the valley
y = 0 is a minimum with the same loss and Hessian diag(0, h(x)), so gradient
descent does not move along it. SGD does. At fixed x, y is an AR(1) process
y' = (1 - eta h) y + eta sqrt(h) eps_B with stationary
<y^2> = eta sigma^2 / (b (2 - eta h)), and the x-update has mean
-eta h'(x) y^2 / 2, so (adiabatically, x slow) x drifts as

    dx/dt = -eta^2 sigma^2 h'(x) / (2 b (2 - eta h(x)))   per step,

downhill in h = tr H: the entropic force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq

from .._checks import check_bytes, check_int, check_positive, check_real, message
from ..stats import Estimate

__all__ = ["ValleyRun", "valley_curvature", "valley_drift_prediction", "valley_sgd"]


def valley_curvature(x: torch.Tensor | float) -> torch.Tensor:
    """The valley's curvature h(x) = 1 + x^2 (= tr H on the valley y = 0).

    >>> float(valley_curvature(2.0))
    5.0
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    return 1.0 + x * x


def _check(x0: float, eta: float, noise: float, batch_size: int) -> tuple:
    x0 = check_real("x0", x0)
    eta = check_positive("eta", eta)
    noise = check_positive("noise", noise)
    b = check_int("batch_size", batch_size, minimum=1)
    if eta * float(valley_curvature(x0)) >= 2.0:
        raise ValueError(
            message(
                "eta",
                f"< 2 / h(x0) = {2.0 / float(valley_curvature(x0)):.4g}",
                eta,
                "SGD diverges across the valley",
            )
        )
    return x0, eta, noise, b


__fuzz_exempt__ = {
    "valley_sgd:cases": {"steps:1e12": "runs the 10^12 SGD steps asked for (time linear in steps)"}
}


def valley_drift_prediction(
    x0: float, eta: float, steps: int, *, noise: float = 1.0, batch_size: int = 1
) -> float:
    """x after ``steps`` steps from the adiabatic drift ODE (module docstring), h = 1 + x^2.

    >>> x = valley_drift_prediction(2.0, 0.1, 100, noise=1.0)
    >>> 0 < x < 2.0
    True
    """
    x0, eta, noise, b = _check(x0, eta, noise, batch_size)
    steps = check_int("steps", steps, minimum=0)
    if x0 == 0.0 or steps == 0:
        return x0
    # dx/dt = -k x / (2 - eta (1 + x^2)), k = eta^2 noise^2 / b, separates:
    # F(u) = (2 - eta)(u - u0) - eta (x^2 - x0^2) / 2 + k t = 0 with u = log|x|, and F is
    # increasing in u while eta (1 + x^2) < 2, so x(t) is its one root in (-inf, u0]: found by
    # bisection, any t (no stiff ODE to integrate).
    k = eta**2 * noise**2 / b
    a0, u0 = abs(x0), math.log(abs(x0))

    def f(u: float) -> float:
        return (2.0 - eta) * (u - u0) - 0.5 * eta * (math.exp(2 * u) - a0 * a0) + k * steps

    low = u0 - (k * steps + 0.5 * eta * a0 * a0) / (2.0 - eta) - 1.0  # f(low) < 0
    if low < -745.0:  # below the smallest float64: x(t) rounds to 0
        if f(-745.0) < 0:
            return math.copysign(math.exp(brentq(f, -745.0, u0, xtol=1e-15, rtol=1e-15)), x0)
        return math.copysign(0.0, x0)
    return math.copysign(math.exp(brentq(f, low, u0, xtol=1e-15, rtol=1e-15)), x0)


@dataclass(frozen=True)
class ValleyRun:
    """Independent SGD chains on the valley loss.

    Attributes:
        steps: (T,) logged steps.
        x_mean: mean position along the valley at each logged step (over chains).
        x_stderr: its standard error.
        displacement: Estimate of x(T) - x0 over chains (negative: toward lower h for x0 > 0).
        curvature_change: Estimate of h(x(T)) - h(x0) (negative: the entropic force).
    """

    steps: torch.Tensor
    x_mean: torch.Tensor
    x_stderr: torch.Tensor
    displacement: Estimate
    curvature_change: Estimate


def _check_bounded(x: torch.Tensor, y: torch.Tensor, t: int, eta: float, h0: float, scale: float):
    """Divergence: non-finite iterates, or y far beyond its stationary spread (eta h(x) >~ 2)."""
    finite = bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())
    if not finite or float(y.abs().max()) > 1e6 * scale:
        raise ValueError(
            message(
                "eta",
                "small enough that every chain stays in the valley (eta h(x) < 2 along the "
                f"path, not only at x0 where eta h(x0) = {eta * h0:.3g})",
                eta,
                f"SGD diverged by step {t + 1}; lower eta (e.g. to {1.0 / h0:.3g}), the noise, "
                "or the number of steps",
            )
        )


def valley_sgd(
    x0: float,
    eta: float,
    steps: int,
    *,
    noise: float = 1.0,
    batch_size: int = 1,
    chains: int = 1000,
    n_log: int = 50,
    seed: int = 0,
) -> ValleyRun:
    """Online SGD on l = 1/2 (sqrt(h(x)) y - eps)^2, h = 1 + x^2, from (x0, stationary y).

    Args:
        x0: start along the valley; eta: step (eta h(x0) < 2); steps: SGD steps.
        noise: label-noise sigma; batch_size: b; chains: independent runs (>= 2).
        n_log: logged steps (>= 1); seed: randomness.

    Returns:
        A :class:`ValleyRun`.

    Raises:
        ValueError: bad inputs, or chains that diverge (eta h(x0) < 2 is necessary,
            not sufficient: noise can carry x to where eta h(x) >= 2).
    """
    x0, eta, noise, b = _check(x0, eta, noise, batch_size)
    steps = check_int("steps", steps, minimum=1)
    chains = check_int("chains", chains, minimum=2)
    n_log = min(check_int("n_log", n_log, minimum=1), steps + 1)  # distinct steps only
    check_bytes("chains", 8.0 * chains * 6)  # x, y, noise and work arrays per chain
    gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    h0 = float(valley_curvature(x0))
    x = torch.full((chains,), x0, dtype=torch.float64)
    y = math.sqrt(eta * noise**2 / (b * (2.0 - eta * h0))) * torch.randn(
        chains, generator=gen, dtype=torch.float64
    )
    y_scale = math.sqrt(eta * noise**2 / (b * (2.0 - eta * h0)))  # stationary spread at x0
    log_at = set(np.unique(np.linspace(0, steps, n_log).round().astype(int)).tolist())
    logged, means, ses = [], [], []
    scale = noise / math.sqrt(b)
    for t in range(steps + 1):
        if t in log_at:
            logged.append(t)
            means.append(float(x.mean()))
            ses.append(float(x.std() / math.sqrt(chains)))
        if t == steps:
            break
        eps = scale * torch.randn(chains, generator=gen, dtype=torch.float64)  # batch mean
        root = torch.sqrt(1.0 + x * x)
        residual = root * y - eps
        # d l / d y = residual sqrt(h);  d l / d x = residual y h'(x) / (2 sqrt(h)), h' = 2x.
        x, y = x - eta * residual * y * x / root, y - eta * residual * root
        if t % 10 == 9 or t == steps - 1:
            _check_bounded(x, y, t, eta, h0, y_scale)
    dx = Estimate.from_samples(x - x0)
    dh = Estimate.from_samples(valley_curvature(x) - h0)
    return ValleyRun(
        torch.tensor(logged), torch.tensor(means, dtype=torch.float64),
        torch.tensor(ses, dtype=torch.float64), dx, dh,
    )  # fmt: skip
