"""Implicit bias: diagonal nets (11/9), max margin of logistic GD (11/14), SGD noise (11/16).

Reproductions:

* ``diagonal_net_regimes``: the gradient-flow limit of a diagonal linear net
  equals argmin Q_alpha for alpha from 1e-2 to 1e2 and moves from the min-L1
  to the min weighted-L2 interpolant (Woodworth et al. 2020).
* ``max_margin_logistic``: GD on logistic loss turns toward the SVM direction
  at the 1 / log t rate, with |w(t)| ~ log t / margin (Soudry et al. 2018).
* ``sgd_fluctuation_dissipation``: <grad L> = 0 and <theta . grad L> =
  (eta / 2) <tr C~> on SGD for linear regression (Yaida 2018).
* ``sgd_entropic_force``: SGD drifts along a flat valley toward lower
  curvature at the predicted speed, and the challenge walk spends mass
  proportional to 1 / speed^2 (Wei & Schwab 2019).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...finite import Estimate
from ...implicit_bias import (
    challenge_walk,
    diagonal_flow,
    diagonal_flow_limit,
    lattice_slow_mass,
    logistic_gd,
    min_l1_interpolant,
    min_weighted_l2_interpolant,
    q_alpha_argmin,
    separable_dataset,
    sgd_fluctuation_dissipation,
    soudry_asymptotics,
    valley_drift_prediction,
    valley_sgd,
)
from ...parallel import torch_threads
from ..figures import new_figure, png_bytes
from ..quantities import Quantity
from ..registry import reproduction
from ..result import Outcome

__all__ = [
    "diagonal_net_regimes",
    "max_margin_logistic",
    "sgd_entropic_force",
    "sgd_fluctuation_dissipation_check",
]

_TOPIC = "implicit bias"


def _under_determined(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return X, torch.randn(n, generator=g, dtype=torch.float64)


@reproduction(
    "diagonal_net_regimes",
    title="Diagonal linear nets: gradient flow minimises Q_alpha, from L1 to L2",
    claim=(
        "Gradient flow on beta = theta_+^2 - theta_-^2 from scale alpha converges to "
        "argmin Q_alpha subject to X beta = y, which tends to the min-L1 interpolant as "
        "alpha -> 0 and to the min weighted-L2 one as alpha -> infinity."
    ),
    topic=_TOPIC,
    reference="Woodworth et al. (2020), Theorem 1",
)
def diagonal_net_regimes(quick: bool = False, seed: int = 0) -> Outcome:
    """alpha sweep: flow limit (Radau ODE) vs argmin Q (dual Newton), L1 and L2 ends.

    Quick mode runs every step on a smaller problem, three alphas (1e-2, 1, 1e2)
    and a looser (still ~1e-12 accurate) integrator tolerance.
    """
    n, d = (3, 8) if quick else (6, 16)
    alphas = np.logspace(-2, 2, 3 if quick else 9)
    rtol = 1e-9 if quick else 1e-11
    X, y = _under_determined(n, d, seed)
    shape = 0.5 + torch.rand(
        d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )
    l1 = min_l1_interpolant(X, y)
    l2 = min_weighted_l2_interpolant(X, y, shape)
    errors, to_l1, to_l2 = [], [], []
    with torch_threads(1):
        for a in alphas:
            argmin = q_alpha_argmin(X, y, float(a), shape)
            flow = diagonal_flow_limit(X, y, float(a), shape, rtol=rtol)
            errors.append(float((flow - argmin).abs().max()))
            to_l1.append(float((argmin - l1).abs().max()))
            to_l2.append(float((argmin - l2).abs().max()))
        # The L1 end is approached like alpha^(2 delta), delta the dual certificate's gap: slow.
        tiny, huge = 1e-100, 1e8
        l1_end = float((q_alpha_argmin(X, y, tiny, shape) - l1).abs().max())
        l2_end = float((q_alpha_argmin(X, y, huge, shape) - l2).abs().max())
        # The trajectory is only drawn: a plotting tolerance is enough.
        traj = diagonal_flow(X, y, float(alphas[0]), np.logspace(-2, 3, 60), shape, rtol=1e-8)
    worst = max(errors)
    verdict = worst < 1e-6 and l1_end < 1e-2 and l2_end < 1e-6
    fig, (ax1, ax2) = new_figure(2)
    ax1.loglog(alphas, to_l1, "o-", label="|beta_alpha - beta_L1|")
    ax1.loglog(alphas, to_l2, "s-", label="|beta_alpha - beta_L2,w|")
    ax1.loglog(alphas, np.maximum(errors, 1e-17), "k^:", label="|flow - argmin Q|")
    ax1.set_xlabel("initialisation scale alpha")
    ax1.set_ylabel("distance (Euclidean norm)")
    ax1.set_title("rich (L1) to kernel (weighted L2) regime")
    ax1.legend(fontsize=8)
    lines = ax2.semilogx(traj.times.numpy(), traj.beta.numpy(), lw=1)
    lines[0].set_label("beta_i(t), one line per coordinate i")
    ax2.legend(fontsize=8)
    ax2.set_xlabel("t")
    ax2.set_ylabel("beta_i(t)")
    ax2.set_title(f"gradient flow, alpha = {alphas[0]:g}")
    return Outcome(
        prediction=0.0,
        measurement=Estimate(worst, 0.0, len(alphas)),
        label="max over α of |β(∞) - argmin Q_α| (flow limit vs the potential's minimiser)",
        exact=True,
        tolerance="1e-6 absolute (deterministic ODE solve and convex minimisation)",
        caption=(
            "Left: distance of the gradient-flow limit β_α from the minimum-ℓ1 and the weighted "
            "minimum-ℓ2 interpolants, and from argmin Q_α (floored at 1e-17), against the "
            "initialisation scale α. Right: the coordinates β_i(t) along one flow."
        ),
        verdict=verdict,
        criterion=(
            "max |flow limit - argmin Q| < 1e-6 over alpha; "
            "L1 end (alpha=1e-100) within 1e-2, L2 end (alpha=1e8) within 1e-6"
        ),
        summary=(
            f"max |flow - argmin Q| = {worst:.2e} over alpha in [1e-2, 1e2]; "
            f"|argmin - L1| = {l1_end:.1e} at alpha=1e-100, "
            f"|argmin - L2| = {l2_end:.1e} at alpha=1e8"
        ),
        parameters={"n": n, "d": d, "alphas": alphas.tolist(), "rtol": rtol, "seed": seed},
        details={
            "flow_vs_argmin": errors,
            "argmin_to_l1": to_l1,
            "argmin_to_l2": to_l2,
            "l1_end": l1_end,
            "l2_end": l2_end,
        },
        figure=png_bytes(fig),
    )


@reproduction(
    "max_margin_logistic",
    title="Logistic GD converges to the max-margin direction at rate 1 / log t",
    claim=(
        "On separable data GD on the logistic loss has w(t) = w_hat log t + w_tilde + o(1): "
        "|w(t)| grows like log t / margin and the angle to the SVM direction decays like 1 / log t."
    ),
    topic=_TOPIC,
    reference="Soudry et al. (2018), Theorems 3-4",
)
def max_margin_logistic(quick: bool = False, seed: int = 0) -> Outcome:
    """Fit cot(angle) and |w| against log t; compare slopes with the predicted ones."""
    eta, margin = 0.1, 0.5
    steps = 10**5 if quick else 10**6
    X, y, w_hat = separable_dataset(20, 2, margin, seed=seed)
    traj = logistic_gd(X, y, eta, steps, n_log=80)
    theory = soudry_asymptotics(X, y, eta)
    t = traj.steps.numpy().astype(float)
    late = t >= steps / 100
    log_t = np.log(t[late])
    cot = 1.0 / np.tan(traj.angle.numpy()[late])
    cot_fit = np.polyfit(log_t, cot, 1)
    norm_fit = np.polyfit(log_t, traj.norm.numpy()[late], 1)
    angle_times_log = float(traj.angle[-1] * math.log(steps))
    rel = abs(cot_fit[0] / theory.cot_slope - 1)
    verdict = bool(
        rel < 0.05
        and abs(norm_fit[0] / theory.norm_slope - 1) < 0.05
        and float((theory.w_hat - w_hat).abs().max()) < 1e-9
    )
    fig, (ax1, ax2) = new_figure(2)
    tt = t[1:]
    # The check compares slopes against log t: plot cot(angle) and |w| in those coordinates.
    ax1.semilogx(tt, 1.0 / np.tan(traj.angle.numpy()[1:]), label="GD: cot angle(w(t), w_hat)")
    ax1.semilogx(
        tt,
        theory.cot_slope * np.log(tt) + theory.cot_intercept,
        "k--",
        label=f"theory: slope {theory.cot_slope:.3f} in log t",
    )
    ax1.axvline(steps / 100, color="gray", lw=0.8, ls=":", label="fit window starts")
    ax1.set(
        xlabel="step t (log scale)",
        ylabel="cot angle(w(t), w_hat)",
        title="direction: cot of the angle to the max-margin w_hat",
    )
    ax1.legend(fontsize=8)
    ax2.semilogx(tt, traj.norm.numpy()[1:], label="GD: |w(t)|")
    ax2.semilogx(
        tt,
        theory.norm_slope * np.log(tt),
        "k--",
        label=f"theory slope 1/margin = {theory.norm_slope:.3g}",
    )
    ax2.set(xlabel="step t (log scale)", ylabel="|w(t)|", title="norm grows like log t / margin")
    ax2.legend(fontsize=8)
    return Outcome(
        prediction=theory.cot_slope,
        measurement=Estimate(float(cot_fit[0]), 0.0, int(late.sum())),
        verdict=verdict,
        criterion=(
            "fitted slopes of cot(angle) and |w| against log t within 5% of Soudry's prediction"
        ),
        summary=(
            f"cot(angle) slope {cot_fit[0]:.3f} vs {theory.cot_slope:.3f}; |w| slope "
            f"{norm_fit[0]:.3f} vs 1/margin = {theory.norm_slope:.3f}; "
            f"angle*log t = {angle_times_log:.3f} (-> {theory.angle_coefficient:.3f})"
        ),
        parameters={"n": 20, "d": 2, "margin": margin, "eta": eta, "steps": steps, "seed": seed},
        details={
            "cot_fit": cot_fit.tolist(),
            "norm_fit": norm_fit.tolist(),
            "angle_coefficient": theory.angle_coefficient,
            "w_tilde": theory.w_tilde,
            "final_angle": float(traj.angle[-1]),
        },
        figure=png_bytes(fig),
        label="slope of cot angle(w(t), w_hat) against log t",
        exact=True,
        tolerance="5 % relative on each slope (a deterministic run: no standard error)",
        rows=[
            Quantity("slope of cot(angle) vs log t", theory.cot_slope, float(cot_fit[0])),
            Quantity("slope of |w(t)| vs log t (1/margin)", theory.norm_slope, float(norm_fit[0])),
            Quantity(
                "angle × log t at the last step",
                theory.angle_coefficient,
                angle_times_log,
                note="approaches the coefficient as t grows",
            ),
        ],
        caption=(
            "Logistic-loss GD on separable data: cot of the angle to the max-margin direction "
            "(left) and the norm |w(t)| (right) against the step t, with Soudry et al.'s "
            "asymptotics; the slopes are fitted from the dotted line on."
        ),
    )


@reproduction(
    "sgd_fluctuation_dissipation",
    title="SGD's fluctuation-dissipation relations",
    claim=(
        "At stationarity of SGD, <grad L> = 0 and <theta . grad L> = (eta / 2) <tr C~>, "
        "C~ the second moment of the mini-batch gradient."
    ),
    topic=_TOPIC,
    reference="Yaida (2018), Eqs. (FDR1)-(FDR2)",
)
def sgd_fluctuation_dissipation_check(quick: bool = False, seed: int = 0) -> Outcome:
    """Linear regression with noisy labels, batched independent chains."""
    g = torch.Generator().manual_seed(seed)
    N, P, b, eta = 32, 4, 4, 0.1
    X = torch.randn(N, P, generator=g, dtype=torch.float64)
    y = (
        X @ torch.ones(P, dtype=torch.float64)
        + 1.0
        + 0.5 * torch.randn(N, generator=g, dtype=torch.float64)
    )
    chains, steps = (64, 800) if quick else (256, 4000)
    with torch_threads(1):
        res = {
            s: sgd_fluctuation_dissipation(
                X, y, eta, b, steps, chains=chains, sampling=s, seed=seed
            )
            for s in ("with_replacement", "bernoulli")
        }
    main = res["with_replacement"]
    verdict = all(r.holds(5.0) for r in res.values())
    fig, (ax,) = new_figure(1)
    names = list(res)
    for i, name in enumerate(names):
        r = res[name]
        ax.errorbar(
            [i - 0.1],
            [float(r.alignment.mean)],
            [2 * float(r.alignment.stderr)],
            fmt="o",
            color="tab:blue",
            label=r"$\langle \theta \cdot \nabla L \rangle$" if i == 0 else None,
        )
        ax.errorbar(
            [i + 0.1],
            [float(r.half_eta_trace.mean)],
            [2 * float(r.half_eta_trace.stderr)],
            fmt="s",
            color="tab:orange",
            label=r"$(\eta/2) \langle \mathrm{tr}\, \tilde C \rangle$" if i == 0 else None,
        )
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("stationary average (± 2 SE)")
    ax.legend(fontsize=8)
    return Outcome(
        prediction=0.0,
        measurement=main.difference,
        label="<θ·∇L> - (η/2)<tr C̃> at stationarity (first fluctuation-dissipation relation)",
        tolerance="5 SE (every gradient component and the relation, both samplings)",
        max_z=max(
            max(float(r.z_gradient.abs().max()), abs(float(r.z_difference))) for r in res.values()
        ),
        caption=(
            "Both sides of the fluctuation-dissipation relation, <θ·∇L> (circles) and "
            "(η/2)<tr C̃> (squares), for each sampling scheme, ± 2 stderr."
        ),
        verdict=verdict,
        criterion=(
            "|<grad L>_i| and |<theta.grad L> - (eta/2)<tr C~>| within 5 standard errors, "
            "for both samplings"
        ),
        summary=" ".join(
            f"{k}: max |z| of <grad L> {float(r.z_gradient.abs().max()):.2f}, "
            f"z of the relation {r.z_difference:.2f}, ratio {r.ratio:.3f}."
            for k, r in res.items()
        ),
        parameters={
            "N": N,
            "P": P,
            "batch_size": b,
            "eta": eta,
            "chains": chains,
            "steps": steps,
            "seed": seed,
        },
        details={
            k: {
                "z_gradient": r.z_gradient,
                "z_difference": r.z_difference,
                "ratio": r.ratio,
                "alignment": r.alignment,
                "half_eta_trace": r.half_eta_trace,
            }
            for k, r in res.items()
        },
        figure=png_bytes(fig),
    )


@reproduction(
    "sgd_entropic_force",
    title="SGD drifts toward flat minima; the challenge walk spends mass 1 / speed^2",
    claim=(
        "Along a flat valley L = h(x) y^2 / 2 SGD moves toward lower curvature at "
        "dx/dt = -eta^2 sigma^2 h'(x) / (2 b (2 - eta h)); a walk with speed 1 on [0, pi) and 2 on "
        "[pi, 2 pi) has stationary mass 4/5 on the slow half (not the sqrt(2) : 1 ratio "
        "sometimes quoted)."
    ),
    topic=_TOPIC,
    reference="Wei & Schwab (2019)",
)
def sgd_entropic_force(quick: bool = False, seed: int = 0) -> Outcome:
    """Valley drift vs the adiabatic prediction; walk mass vs the exact lattice law."""
    x0, eta, steps = 2.0, 0.1, 300
    chains = 500 if quick else 4000
    m, walk_steps, walkers = (20, 1700, 5000) if quick else (30, 4000, 20000)
    with torch_threads(1):
        run = valley_sgd(x0, eta, steps, chains=chains, seed=seed)
        walk = challenge_walk(m, walk_steps, walkers=walkers, seed=seed)
    predicted = valley_drift_prediction(x0, eta, steps) - x0
    lattice = lattice_slow_mass(m)
    notes = math.sqrt(2) / (math.sqrt(2) + 1)
    drift_ok = (
        run.displacement.agrees(predicted, 5.0, rtol=0.02) and float(run.curvature_change.mean) < 0
    )
    walk_ok = walk.slow_mass.agrees(lattice, 5.0)
    z_notes = float(walk.slow_mass.zscore(notes))
    fig, (ax1, ax2) = new_figure(2)
    times = np.linspace(0, steps, 60)
    ax1.errorbar(
        run.steps.numpy(),
        run.x_mean.numpy(),
        2 * run.x_stderr.numpy(),
        fmt=".",
        label="SGD (mean x)",
    )
    ax1.plot(
        times,
        [valley_drift_prediction(x0, eta, int(t)) for t in times],
        "k--",
        label="adiabatic drift",
    )
    ax1.axhline(x0, color="grey", lw=0.8, label="GD (no motion)")
    ax1.set_xlabel("step")
    ax1.set_ylabel("x along the valley (h = 1 + x^2)")
    ax1.legend(fontsize=8)
    centres = 0.5 * (walk.edges[1:] + walk.edges[:-1]).numpy()
    ax2.errorbar(
        centres,
        walk.histogram.numpy(),
        2 * walk.histogram_stderr.numpy(),
        fmt="o",
        label="simulation",
    )
    # The continuum law p(theta) ~ 1 / v^2: 4 / (5 pi) on the slow half, 1 / (5 pi) on the fast one.
    density = np.where(centres < np.pi, 4.0, 1.0) / (5 * np.pi)
    ax2.step(
        walk.edges.numpy(),
        np.r_[density, 1 / (5 * np.pi)],
        "k--",
        where="post",
        label="p ~ 1/v^2",
    )
    ax2.axhline(
        notes / np.pi, color="r", lw=0.8, ls=":", label="sqrt(2):1 ratio, rejected (slow half)"
    )
    ax2.set_xlabel("theta")
    ax2.legend(fontsize=8)
    return Outcome(
        prediction=predicted,
        measurement=run.displacement,
        label="displacement of SGD along the flat valley (adiabatic prediction)",
        tolerance="5σ + 2 % (adiabatic approximation); walk: 5σ",
        caption=(
            "Left: position of SGD along the flat valley against the step, with the adiabatic "
            "prediction. Right: stationary density of the challenge walk on the circle against "
            "the exact lattice law and the 1/v² law."
        ),
        verdict=bool(drift_ok and walk_ok),
        criterion=(
            "valley displacement within 5 s.e. + 2% of the adiabatic prediction and tr H "
            "decreasing; walk's slow-half mass within 5 s.e. of the exact lattice value"
        ),
        summary=(
            f"x drift {float(run.displacement.mean):.4f} ± {float(run.displacement.stderr):.4f} "
            f"vs {predicted:.4f}; Δ tr H = {float(run.curvature_change.mean):.3f}; "
            f"walk slow mass {float(walk.slow_mass.mean):.4f} ± {float(walk.slow_mass.stderr):.4f} "
            f"vs lattice {lattice:.4f} (continuum 0.8; the sqrt(2):1 ratio {notes:.3f} is "
            f"rejected at |z| = {abs(z_notes):.2f})"
        ),
        parameters={
            "x0": x0,
            "eta": eta,
            "steps": steps,
            "chains": chains,
            "m": m,
            "walk_steps": walk_steps,
            "walkers": walkers,
            "seed": seed,
        },
        details={
            "curvature_change": run.curvature_change,
            "walk_slow_mass": walk.slow_mass,
            "lattice_slow_mass": lattice,
            "notes_slow_mass": notes,
            "z_notes": z_notes,
        },
        figure=png_bytes(fig),
    )
