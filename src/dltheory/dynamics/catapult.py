"""The catapult mechanism of the uv model: an exact two-variable recursion.

Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari (2020), "The large learning
rate phase of deep learning: the catapult mechanism", Sec. 2. The model is

    f = v . u x / sqrt(m),   u, v in R^m,   loss L = (f - y)^2 / 2,

(one training point, so this is the project's 1/(2N) MSE with N = 1) and its
neural tangent kernel is lambda = (|u|^2 + |v|^2) x^2 / m. One GD step
u <- u - eta r v x/sqrt(m), v <- v - eta r u x/sqrt(m), with r = f - y, gives
exactly (write c = x^2 / m)

    f'      = f - eta lambda r + eta^2 c r^2 f,
    lambda' = lambda + eta c r (eta lambda r - 4 f).

For y = 0 this is Eq. (3) of the paper. The pair (f, lambda) is closed under
GD, so the recursion equals full GD on (u, v) up to rounding. Cauchy-Schwarz
makes only |f| <= lambda sqrt(m) / (2 |x|) realisable.

Phases (y = 0): eta lambda_0 < 2 lazy (lambda barely moves), 2 < eta lambda_0 < 4
catapult (the loss grows to O(m), lambda falls below 2/eta, then it converges)
and eta lambda_0 > 4 divergent. With y = 0 the upper threshold 4/lambda_0 is exact
at every width: with a = eta lambda and b = eta^2 c f^2 (b <= a^2/4 by
Cauchy-Schwarz) the map is a' = a + b (a - 4), b' = b (1 - a + b)^2. If a < 4, a
never grows and stays >= 0; if a > 4, a grows whenever b > 0, and b cannot tend
to 0 (then |1 - a + b| > 3), so lambda -> infinity. At a = 4 exactly lambda is
frozen and f wanders on a bounded chaotic orbit. For y != 0 the upper threshold is
4/lambda_0 only as m -> infinity (the -4 f term no longer has the sign of r);
some lecture notes state 4/lambda_0 without this restriction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .._checks import as_float_array, check_bytes, check_int, check_positive, check_real, message

__all__ = [
    "CatapultPhaseDiagram",
    "CatapultTrajectory",
    "catapult_divergence_threshold",
    "catapult_phase_diagram",
    "catapult_recursion",
]

__fuzz_exempt__ = {
    "catapult_recursion:nan": "final_lambda is NaN for a diverged run (documented)",
    "catapult_phase_diagram:nan": "NaN marks diverged points and thresholds not on the grid "
    "(documented)",
}

Outcome = Literal["converged", "diverged", "not_converged"]
Phase = Literal["lazy", "catapult", "divergent"]

# A step is called divergent once the quadratic term eta^2 c r^2 (the factor by which
# |r| is multiplied, to leading order) or eta lambda exceeds this: the run has left
# every bounded orbit of the map by many orders of magnitude and would overflow soon.
_BLOWUP = 1e12


@dataclass(frozen=True)
class CatapultTrajectory:
    """One run of the uv-model recursion.

    Attributes:
        f: outputs f_0, ..., f_T, shape (T + 1,) (T = steps, or the divergence step).
        lam: NTK values lambda_0, ..., lambda_T, shape (T + 1,).
        loss: (f_t - y)^2 / 2, shape (T + 1,).
        outcome: "converged" (|f_T - y| <= tol |f_0 - y| and eta lambda_T < 2),
            "diverged" (left every bounded orbit; a result, not an error) or
            "not_converged" (neither within ``steps``).
        phase: "lazy" (eta lambda_0 <= 2), "catapult" (eta lambda_0 > 2, not
            diverged) or "divergent".
        final_lambda: lambda_T (NaN if diverged).
        divergence_step: the step at which divergence was detected, or None.
        eta: the learning rate.
    """

    f: np.ndarray
    lam: np.ndarray
    loss: np.ndarray
    outcome: Outcome
    phase: Phase
    final_lambda: float
    divergence_step: int | None
    eta: float

    @property
    def spike(self) -> float:
        """max_t loss_t / loss_0 (the catapult's loss spike; inf if loss_0 = 0 < max)."""
        top, first = float(self.loss.max()), float(self.loss[0])
        if first > 0:
            return top / first
        return 1.0 if top == 0 else math.inf


@dataclass(frozen=True)
class CatapultPhaseDiagram:
    """The recursion swept over eta lambda_0.

    Attributes:
        eta_lambda0: the grid of eta * lambda_0, shape (K,).
        outcome: one outcome string per grid point.
        phase: one phase string per grid point.
        final_eta_lambda: eta * lambda_T per point (NaN where diverged); < 2 after a catapult.
        max_loss: max_t loss_t per point (inf where diverged).
        lower_threshold: smallest grid value of eta lambda_0 in the catapult phase (NaN if none).
        upper_threshold: smallest grid value of eta lambda_0 that diverged (NaN if none).
    """

    eta_lambda0: np.ndarray
    outcome: tuple[str, ...]
    phase: tuple[str, ...]
    final_eta_lambda: np.ndarray
    max_loss: np.ndarray
    lower_threshold: float
    upper_threshold: float


def _validate(f0, lam0, m, x, y, steps):
    f0 = check_real("f0", f0)
    lam0 = check_positive("lam0", lam0)
    m = check_int("m", m, minimum=1)
    x = check_real("x", x)
    if x == 0:
        raise ValueError(message("x", "non-zero", x, "With x = 0 the model is constant"))
    y = check_real("y", y)
    steps = check_int("steps", steps, minimum=1)
    check_bytes("steps", 16.0 * (steps + 1), fix="Use fewer steps")
    bound = lam0 * math.sqrt(m) / (2 * abs(x))
    if abs(f0) > bound * (1 + 1e-12):
        raise ValueError(
            message(
                "f0",
                f"at most lam0 sqrt(m) / (2|x|) = {bound:.6g} in magnitude "
                "(|v.u| <= (|u|^2 + |v|^2) / 2)",
                f0,
                "No (u, v) realises this pair; lower |f0| or raise lam0",
            )
        )
    return f0, lam0, m, x, y, steps


def _run(f0, lam0, eta, c, y, steps):
    """Iterate the recursion for an array of learning rates (vectorised over eta).

    Returns (f, lam, diverged_at) with f, lam of shape (steps + 1, K); entries after
    a point's divergence repeat its last finite value; diverged_at is -1 if never.
    """
    eta = np.asarray(eta, dtype=np.float64)
    f = np.empty((steps + 1, eta.size))
    lam = np.empty_like(f)
    f[0], lam[0] = f0, lam0
    diverged_at = np.full(eta.size, -1)
    alive = np.ones(eta.size, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            ft, lt = f[t], lam[t]
            r = ft - y
            f_new = ft - eta * lt * r + eta**2 * c * r**2 * ft
            lam_new = lt + eta * c * r * (eta * lt * r - 4.0 * ft)
            blown = ~np.isfinite(f_new) | ~np.isfinite(lam_new)
            blown |= (eta**2 * c * (f_new - y) ** 2 > _BLOWUP) | (eta * lam_new > _BLOWUP)
            newly = alive & blown
            diverged_at[newly] = t + 1
            alive &= ~blown
            f[t + 1] = np.where(alive, f_new, ft)
            lam[t + 1] = np.where(alive, lam_new, lt)
            if not alive.any():
                f[t + 2 :], lam[t + 2 :] = f[t + 1], lam[t + 1]
                break
    return f, lam, diverged_at


def _classify(f_last, lam_last, r0, eta, lam0, y, tol, diverged):
    if diverged:
        return "diverged", "divergent"
    phase = "catapult" if eta * lam0 > 2 else "lazy"
    done = abs(f_last - y) <= tol * abs(r0) and eta * lam_last < 2
    return ("converged" if done else "not_converged"), phase


def catapult_recursion(
    f0: float,
    lam0: float,
    eta: float,
    m: int,
    x: float = 1.0,
    y: float = 0.0,
    steps: int = 1000,
    tol: float = 1e-8,
) -> CatapultTrajectory:
    """Iterate GD on the uv model in its closed (f, lambda) form.

    f' = f - eta lambda r + eta^2 (x^2/m) r^2 f and
    lambda' = lambda + eta (x^2/m) r (eta lambda r - 4 f), r = f - y
    (Lewkowycz et al. 2020, Eq. (3) for y = 0; derived in the module docstring).

    Args:
        f0: initial output v.u x / sqrt(m); |f0| <= lam0 sqrt(m) / (2|x|).
        lam0: initial NTK (|u|^2 + |v|^2) x^2 / m, > 0.
        eta: learning rate, > 0.
        m: width, an integer >= 1.
        x: the input (non-zero).
        y: the target.
        steps: number of GD steps, >= 1.
        tol: converged means |f_T - y| <= tol |f_0 - y| and eta lambda_T < 2.

    Returns:
        A :class:`CatapultTrajectory`; divergence is an outcome, not an exception.

    >>> run = catapult_recursion(f0=0.5, lam0=2.0, eta=1.5, m=1000)  # eta lambda_0 = 3
    >>> run.phase, run.outcome, bool(run.eta * run.final_lambda < 2)
    ('catapult', 'converged', True)
    >>> catapult_recursion(f0=0.5, lam0=2.0, eta=2.05, m=1000).outcome  # eta lambda_0 > 4
    'diverged'
    """
    f0, lam0, m, x, y, steps = _validate(f0, lam0, m, x, y, steps)
    eta = check_positive("eta", eta)
    tol = check_positive("tol", tol)
    f, lam, div = _run(f0, lam0, np.array([eta]), x * x / m, y, steps)
    div_step = int(div[0]) if div[0] >= 0 else None
    end = steps if div_step is None else div_step - 1
    f, lam = f[: end + 1, 0].copy(), lam[: end + 1, 0].copy()
    outcome, phase = _classify(f[-1], lam[-1], f0 - y, eta, lam0, y, tol, div_step is not None)
    return CatapultTrajectory(
        f=f,
        lam=lam,
        loss=0.5 * (f - y) ** 2,
        outcome=outcome,
        phase=phase,
        final_lambda=math.nan if div_step is not None else float(lam[-1]),
        divergence_step=div_step,
        eta=eta,
    )


def catapult_phase_diagram(
    f0: float,
    lam0: float,
    m: int,
    *,
    x: float = 1.0,
    y: float = 0.0,
    eta_lambda0: np.ndarray | None = None,
    steps: int = 2000,
    tol: float = 1e-8,
) -> CatapultPhaseDiagram:
    """Sweep eta lambda_0 (default 0.5 to 6) through the uv-model recursion.

    The lazy / catapult / divergent boundaries are at eta lambda_0 = 2 and, for
    y = 0, exactly 4 (Lewkowycz et al. 2020, Sec. 2); the measured ones are the
    first grid points in each phase.

    >>> d = catapult_phase_diagram(0.5, 2.0, 1000, eta_lambda0=np.array([1.0, 3.0, 5.0]))
    >>> d.phase
    ('lazy', 'catapult', 'divergent')
    """
    f0, lam0, m, x, y, steps = _validate(f0, lam0, m, x, y, steps)
    tol = check_positive("tol", tol)
    if eta_lambda0 is None:
        grid = np.linspace(0.5, 6.0, 111)
    else:
        grid = as_float_array("eta_lambda0", eta_lambda0, ndim=1)
        if np.any(grid <= 0):
            raise ValueError(message("eta_lambda0", "a 1-D array of values > 0", grid))
    check_bytes("steps", 16.0 * (steps + 1) * grid.size, fix="Use fewer steps or grid points")
    eta = grid / lam0
    f, lam, div = _run(f0, lam0, eta, x * x / m, y, steps)
    outcomes, phases = [], []
    for k in range(grid.size):
        o, p = _classify(f[-1, k], lam[-1, k], f0 - y, eta[k], lam0, y, tol, div[k] >= 0)
        outcomes.append(o)
        phases.append(p)
    diverged = div >= 0
    final = np.where(diverged, np.nan, eta * lam[-1])
    max_loss = np.where(diverged, np.inf, (0.5 * (f - y) ** 2).max(axis=0))
    cat = [g for g, p in zip(grid, phases, strict=True) if p == "catapult"]
    bad = grid[diverged]
    return CatapultPhaseDiagram(
        eta_lambda0=grid,
        outcome=tuple(outcomes),
        phase=tuple(phases),
        final_eta_lambda=final,
        max_loss=max_loss,
        lower_threshold=float(min(cat)) if cat else math.nan,
        upper_threshold=float(bad.min()) if bad.size else math.nan,
    )


def catapult_divergence_threshold(
    f0: float,
    lam0: float,
    m: int,
    *,
    x: float = 1.0,
    y: float = 0.0,
    steps: int = 5000,
    rtol: float = 1e-10,
) -> float:
    """The smallest learning rate at which the uv-model recursion diverges, by bisection.

    Brackets [2/lambda_0, 4/lambda_0] are widened until the lower end survives
    ``steps`` steps and the upper one diverges, then bisected to relative width
    ``rtol``. For y = 0 the answer is exactly 4/lambda_0 (Lewkowycz et al. 2020);
    for y != 0 it tends to 4/lambda_0 only as m -> infinity.

    >>> round(catapult_divergence_threshold(0.3, 2.0, 100) * 2.0, 8)  # eta* lambda_0
    4.0
    """
    f0, lam0, m, x, y, steps = _validate(f0, lam0, m, x, y, steps)
    rtol = check_positive("rtol", rtol)
    if not 1e-15 <= rtol < 1:
        raise ValueError(message("rtol", "in [1e-15, 1) (a float64 bisection stops there)", rtol))
    c = x * x / m

    def diverges(eta: float) -> bool:
        return bool(_run(f0, lam0, np.array([eta]), c, y, steps)[2][0] >= 0)

    lo, hi = 2.0 / lam0, 4.0 / lam0
    for _ in range(60):
        if not diverges(lo):
            break
        lo /= 2
    else:
        raise ValueError(message("f0", "a start from which small learning rates converge", f0))
    for _ in range(60):
        if diverges(hi):
            break
        lo, hi = hi, 2 * hi
    else:
        raise ValueError(message("steps", "enough steps to see divergence", steps))
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if diverges(mid):
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)
