"""Depth scales off criticality and the order/chaos phase diagram, on finite networks.

Reproductions:

* ``correlation_depth_scale``: at an ordered or a chaotic tanh (C_w, C_b) two
  inputs' correlation approaches its fixed point rho* like exp(-l / xi_c),
  xi_c = -1 / log chi_c (Schoenholz et al. 2017, Eqs. (5)-(9)), measured at
  width 512 and depth 50; at criticality the approach is not exponential.
* ``phase_diagram_measured``: sampled tanh networks fall on the side of the
  boundary chi_perp(K*) = 1 that the theory's phase diagram gives.

The power laws at criticality are in :mod:`dltheory.report.experiments.criticality`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from matplotlib.lines import Line2D

from ...criticality import (
    compare_correlation_profile,
    correlation_samples,
    depth_profile,
    depth_scales,
    measured_correlation_scale,
    pair_inputs,
    phase_diagram,
    plot_phase_diagram,
)
from ...finite import Estimate
from ..figures import new_figure, png_bytes
from ..quantities import Table
from ..registry import reproduction
from ..result import Outcome

__all__ = ["correlation_depth_scale", "phase_diagram_measured"]

_N_STD = 5.0
_DTYPE = torch.float32  # the finite networks; the theory runs in float64
_COLORS = ("tab:blue", "tab:orange", "tab:green")


@dataclass(frozen=True)
class _ScaleSizes:
    width: int
    depth: int
    n_ordered: int  # networks at the ordered point
    n_chaotic: int  # networks at the chaotic point
    n_critical: int  # networks at the critical point
    n_pairs_chaotic: int  # input pairs per network on the chaotic side


_SCALE_FULL = _ScaleSizes(
    width=512, depth=50, n_ordered=16, n_chaotic=32, n_critical=16, n_pairs_chaotic=32
)
_SCALE_QUICK = _ScaleSizes(
    width=256, depth=30, n_ordered=8, n_chaotic=16, n_critical=8, n_pairs_chaotic=32
)
_XI_RTOL = 0.10  # the tolerance on xi_c
_XI_N_STD = 3.0
# (phase, c_w, c_b): xi_c of a few layers, so that depth 50 resolves several xi_c.
# Chaotic: odd tanh at C_b = 0 has rho* = 0 exactly at any width (x' -> -x' symmetry),
# so the theory's asymptote is used on both sides; C_w = 8 keeps xi_c short, which
# keeps the O(xi_c^2 / n) finite-width shift of xi_c (chi_c enters as -1 / log chi_c) small.
_SCALE_POINTS = (("ordered", 1.0, 0.05), ("chaotic", 8.0, 0.0))
_CRITICAL_RHO_1 = 0.5


def _critical_correlation(sizes: _ScaleSizes, seed: int) -> dict:
    """rho^(l) at tanh criticality, measured against the infinite-width profile."""
    c = compare_correlation_profile(
        "tanh",
        1.0,
        0.0,
        _CRITICAL_RHO_1,
        width=sizes.width,
        depth=sizes.depth,
        n_networks=sizes.n_critical,
        n_std=_N_STD,
        seed=seed,
        dtype=_DTYPE,
    )
    predicted, est, ok = c.predicted, c.measured, c.agrees
    return {"predicted": predicted, "measured": est, "agrees": ok}


@reproduction(
    "correlation_depth_scale",
    title="Off criticality two inputs' correlation converges exponentially with depth scale xi_c",
    claim=(
        "In a tanh MLP at an ordered or chaotic (C_w, C_b), the correlation of two inputs at "
        "the variance fixed point K* approaches its fixed point rho* like exp(-l / xi_c), "
        "xi_c = -1 / log(C_w E[s'(u) s'(v)]) at rho*; at criticality (C_w = 1, C_b = 0) the "
        "approach is the slow one of the kernel recursion, not an exponential."
    ),
    topic="criticality",
    reference=(
        "Schoenholz et al. (2017), 'Deep information propagation', Eqs. (5)-(9); "
        "Roberts, Yaida & Hanin (2022), Sec. 5.3"
    ),
)
def correlation_depth_scale(quick: bool = False, seed: int = 0) -> Outcome:
    """Measure xi_c on the ordered and chaotic sides; compare rho^(l) at criticality.

    Prediction: :func:`~dltheory.criticality.depth_scales` per point; at
    criticality the infinite-width rho^(l) of :func:`depth_profile`.

    Measurement: :func:`~dltheory.criticality.measured_correlation_scale`
    (ensembles of float32 networks, inputs at K^(1) = K*, exponential fitted
    where |rho - rho*| > 5 stderr, jackknife stderr over 8 groups of networks).
    Verdict: |xi_measured / xi_predicted - 1| <= max(10%, 3 stderr / xi_predicted)
    at both points, and at criticality |rho_measured - rho_predicted| <= 5 stderr
    + (depth / width) (1 - rho_predicted) at every layer.
    """
    sizes = _SCALE_QUICK if quick else _SCALE_FULL
    results = []
    for phase, c_w, c_b in _SCALE_POINTS:
        chaotic = phase == "chaotic"
        results.append(
            measured_correlation_scale(
                "tanh",
                c_w,
                c_b,
                width=sizes.width,
                depth=sizes.depth,
                n_networks=sizes.n_chaotic if chaotic else sizes.n_ordered,
                seed=seed,
                n_pairs=sizes.n_pairs_chaotic if chaotic else 4,
                asymptote="theory",
                dtype=_DTYPE,
            )
        )
    predicted = torch.tensor([r.predicted.xi_c for r in results], dtype=torch.float64)
    measured = Estimate(
        torch.tensor([float(r.xi_c.mean) for r in results], dtype=torch.float64),
        torch.tensor([float(r.xi_c.stderr) for r in results], dtype=torch.float64),
        results[0].xi_c.n,
    )
    rel = measured.mean / predicted - 1.0
    allowed = torch.maximum(
        torch.full_like(predicted, _XI_RTOL), _XI_N_STD * measured.stderr / predicted
    )
    scale_ok = bool((rel.abs() <= allowed).all())
    critical = _critical_correlation(sizes, seed)

    fig, (ax, ax_crit) = new_figure(2, width=5.0)
    for r, (phase, c_w, c_b), color in zip(results, _SCALE_POINTS, _COLORS, strict=False):
        dist = r.fit.distance
        ls = r.samples.layers.numpy()
        ok = dist.mean.numpy() > 0
        ax.errorbar(
            ls[ok],
            dist.mean.numpy()[ok],
            yerr=dist.stderr.numpy()[ok],
            fmt="o",
            ms=2.5,
            capsize=1.5,
            color=color,
            label=f"{phase} C_w={c_w:g}, C_b={c_b:g}: measured",
        )
        first, last = r.fit.window
        span = torch.arange(first, last + 1, dtype=torch.float64)
        anchor = float(dist.mean[first - 1])
        for xi, style, tag in (
            (r.predicted.xi_c, "-", "predicted"),
            (float(r.xi_c.mean), ":", "fit"),
        ):
            ax.plot(
                span.numpy(),
                (anchor * torch.exp(-(span - first) / xi)).numpy(),
                style,
                color=color,
                label=f"{tag} xi_c = {xi:.3g}",
            )
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel("|rho^(l) - rho*|")
    ax.set_title(f"tanh, width {sizes.width}: exponential approach")
    ax.legend(fontsize=6)
    ls = torch.arange(1, sizes.depth + 2).numpy()
    ax_crit.plot(ls, (1 - critical["predicted"]).numpy(), "k-", label="theory (infinite width)")
    est = critical["measured"]
    ax_crit.errorbar(
        ls,
        (1 - est.mean).numpy(),
        yerr=est.stderr.numpy(),
        fmt="o",
        ms=2.5,
        capsize=1.5,
        color="tab:green",
        label=f"measured, {sizes.n_critical} networks",
    )
    ax_crit.set_xscale("log")
    ax_crit.set_yscale("log")
    ax_crit.set_xlabel("layer l")
    ax_crit.set_ylabel("1 - rho^(l)")
    ax_crit.set_title("critical tanh (C_w = 1, C_b = 0): slow approach")
    ax_crit.legend(fontsize=7)

    parts = [
        f"{phase} (C_w={c_w:g}, C_b={c_b:g}): xi_c predicted {float(p):.3f}, "
        f"measured {float(m):.3f} ± {float(s):.2g} ({100 * float(e):+.1f}%)"
        for (phase, c_w, c_b), p, m, s, e in zip(
            _SCALE_POINTS, predicted, measured.mean, measured.stderr, rel, strict=True
        )
    ]
    return Outcome(
        prediction=predicted,
        measurement=measured,
        label="correlation depth scale ξ_c (layers) at the ordered and the chaotic point",
        index=[f"{phase} (C_w={c_w:g}, C_b={c_b:g})" for phase, c_w, c_b in _SCALE_POINTS],
        index_label="point",
        tolerance=f"max({_XI_RTOL:.0%}, {_XI_N_STD:g}σ) relative on ξ_c; {_N_STD:g}σ + L/n on ρ",
        caption=(
            "Left: |ρ^(l) - ρ*| against the layer at an ordered and a chaotic point, measured "
            "(points) with the exponential law exp(-l/ξ_c) (lines). Right: 1 - ρ^(l) at "
            "criticality, measured vs the kernel recursion: a slow, non-exponential approach."
        ),
        verdict=scale_ok and critical["agrees"],
        criterion=(
            f"|xi_measured / xi_predicted - 1| <= max({_XI_RTOL:.0%}, {_XI_N_STD:g} stderr / "
            "xi_predicted) at the ordered and the chaotic point (the stderr is a jackknife over "
            "8 groups of networks; where 3 stderr exceeds 10% the check is only that loose), "
            f"and at criticality |rho_measured - rho_predicted| <= {_N_STD:g} stderr + "
            "(depth / width) (1 - rho_predicted) at every layer"
        ),
        summary="; ".join(parts) + f"; critical profile agrees: {critical['agrees']}",
        parameters={
            **asdict(sizes),
            "activation": "tanh",
            "points": [list(p) for p in _SCALE_POINTS],
            "critical_rho_1": _CRITICAL_RHO_1,
            "dtype": str(_DTYPE).removeprefix("torch."),
            "seed": seed,
        },
        details={
            "relative_error": rel,
            "allowed_relative_error": allowed,
            "windows": [list(r.fit.window) for r in results],
            "rho_star": [float(r.fit.rho_star.mean) for r in results],
            "k_star": [r.predicted.k_star for r in results],
            "chi_c": [r.predicted.chi_c for r in results],
            "xi_c_within_tolerance": scale_ok,
            "critical_predicted": critical["predicted"],
            "critical_measured": critical["measured"],
            "critical_agrees": critical["agrees"],
        },
        figure=png_bytes(fig),
    )


@dataclass(frozen=True)
class _PhaseSizes:
    width: int
    depth: int
    n_networks: int  # per (C_w, C_b) point
    n_c_w: int  # grid of the theory's diagram
    n_c_b: int


# The phase is a sign, decided many stderr away at width 256 and depth 30 (|g| >= 3):
# the width >= 512, depth 50 applies to xi_c, not to this classification.
_PHASE_FULL = _PhaseSizes(width=256, depth=30, n_networks=4, n_c_w=12, n_c_b=5)
_PHASE_QUICK = _PhaseSizes(width=64, depth=30, n_networks=2, n_c_w=4, n_c_b=2)
# Tanh (C_w, C_b) points on both sides, each with |log chi_perp(K*)| depth >= 3 (the
# theory moves 1 - rho by a factor e^3 or more over the network), so none sits on the boundary.
_PHASE_POINTS = (
    (0.8, 0.05),
    (1.0, 0.2),
    (1.5, 0.5),
    (2.0, 1.0),
    (2.5, 0.05),
    (3.0, 0.05),
    (4.0, 0.1),
    (4.0, 0.5),
)
_PHASE_RHO_1 = 0.99  # two nearby inputs
_BOUNDARY_MARGIN = 3.0


def _classify(act: str, c_w: float, c_b: float, sizes: _PhaseSizes, seed: int) -> dict:
    """Predicted and measured log(1 - rho^(L+1)) - log(1 - rho^(1)) of two nearby inputs."""
    d = depth_scales(act, c_w, c_b)
    x = pair_inputs(c_w, c_b, d.k_star, _PHASE_RHO_1, n_pairs=4)
    profile = depth_profile(act, c_w, c_b, x[:2], sizes.depth).correlation
    predicted = math.log((1.0 - float(profile[-1])) / (1.0 - float(profile[0])))
    samples = correlation_samples(
        act,
        c_w,
        c_b,
        x,
        width=sizes.width,
        depth=sizes.depth,
        n_networks=sizes.n_networks,
        seed=seed,
        dtype=_DTYPE,
    )
    growth = torch.log(samples.one_minus[:, -1] / samples.one_minus[:, 0])
    measured = "ordered" if float(growth.mean()) < 0 else "chaotic"
    decisive = abs(math.log(d.chi_perp)) * sizes.depth >= _BOUNDARY_MARGIN
    return {
        "c_w": c_w,
        "c_b": c_b,
        "theory": d.phase,
        "measured": measured,
        "decisive": decisive,
        "predicted_log_growth": predicted,
        "samples": growth,
        "final_correlation": float(samples.correlation[:, -1].mean()),
        "rho_star": d.rho_star,
    }


@reproduction(
    "phase_diagram_measured",
    title="Finite tanh networks fall on the side of the order/chaos boundary the theory says",
    claim=(
        "For a tanh MLP, (C_w, C_b) with chi_perp(K*) < 1 is ordered (two nearby inputs "
        "become perfectly correlated with depth) and chi_perp(K*) > 1 is chaotic (they "
        "decorrelate to rho* < 1); the boundary is chi_perp(K*) = 1."
    ),
    topic="criticality",
    reference="Poole et al. (2016); Schoenholz et al. (2017), Fig. 1 and Eq. (9)",
)
def phase_diagram_measured(quick: bool = False, seed: int = 0) -> Outcome:
    """Classify sampled networks at (C_w, C_b) points and compare with the phase diagram.

    Prediction: :func:`~dltheory.criticality.phase_diagram` for tanh, and per
    point the infinite-width g = log[(1 - rho^(L+1)) / (1 - rho^(1))] of two
    inputs with rho^(1) = 0.99 at K^(1) = K*.

    Measurement: g per float32 network (mean over 4 input pairs), mean and
    standard error over the point's networks; g < 0 (nearby inputs merge)
    classifies the point as ordered, g > 0 as chaotic. Points with
    |log chi_perp(K*)| depth < 3 would be too close to the boundary to decide
    at this depth; the chosen points are all farther (``decisive`` in details),
    and any that were not would be excluded from the verdict.
    """
    sizes = _PHASE_QUICK if quick else _PHASE_FULL
    points = [_classify("tanh", c_w, c_b, sizes, seed) for c_w, c_b in _PHASE_POINTS]
    checked = [p for p in points if p["decisive"]]
    verdict = bool(checked) and all(p["measured"] == p["theory"] for p in checked)
    measurement = Estimate(
        torch.stack([p["samples"].mean() for p in points]),
        torch.stack([p["samples"].std() / math.sqrt(sizes.n_networks) for p in points]),
        sizes.n_networks,
    )
    prediction = [p["predicted_log_growth"] for p in points]
    # Margin of each classification: g in stderr, signed so that > 0 agrees with the theory.
    sign = torch.tensor([-1.0 if p["theory"] == "ordered" else 1.0 for p in points])
    margin = sign.double() * measurement.mean / measurement.stderr

    diagram = phase_diagram(
        "tanh",
        torch.linspace(0.5, 4.5, sizes.n_c_w, dtype=torch.float64),
        torch.linspace(0.0, 1.0, sizes.n_c_b, dtype=torch.float64),  # C_b = 0 meets C_w = 1
    )
    fig, (ax,) = new_figure(width=5.5, height=4.2)
    plot_phase_diagram(diagram, ax)
    # Centre the diverging colour scale on the boundary log chi_perp = 0 (white).
    mesh = ax.collections[0]
    lim = float(np.nanmax(np.abs(mesh.get_array())))
    mesh.set_clim(-lim, lim)
    for p in points:
        marker = "s" if p["measured"] == "ordered" else "^"
        color = "white" if p["measured"] == p["theory"] else "red"
        ax.plot(p["c_w"], p["c_b"], marker, ms=6, color=color, mec="black")
    handles = [
        Line2D([], [], color="black", label="chi_perp(K*) = 1 (theory boundary)"),
        Line2D(
            [],
            [],
            ls="",
            marker="s",
            ms=6,
            color="white",
            mec="black",
            label="measured ordered (agrees)",
        ),
        Line2D(
            [],
            [],
            ls="",
            marker="^",
            ms=6,
            color="white",
            mec="black",
            label="measured chaotic (agrees)",
        ),
        Line2D(
            [], [], ls="", marker="o", ms=6, color="red", mec="black", label="disagrees with theory"
        ),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=7)
    ax.set_title(f"tanh: measured phase, width {sizes.width}, depth {sizes.depth}", fontsize=9)
    agree = sum(p["measured"] == p["theory"] for p in checked)
    signed = Estimate(sign.double() * measurement.mean, measurement.stderr, sizes.n_networks)
    return Outcome(
        prediction=[0.0] * len(points),
        measurement=signed,
        verdict=verdict,
        criterion=(
            "every point with |log chi_perp(K*)| depth >= 3 is classified as the theory says "
            "(ordered if the mean over networks of log[(1 - rho^(L+1)) / (1 - rho^(1))] < 0, "
            "chaotic if > 0); points closer to the boundary would be excluded"
        ),
        summary=(
            f"{agree}/{len(checked)} decisive points classified as the theory says "
            f"({len(points) - len(checked)} excluded as too close to the boundary); "
            + ", ".join(f"({p['c_w']:g}, {p['c_b']:g}) {p['measured']}" for p in points)
            + f"; smallest margin {float(margin.min()):.1f} stderr"
        ),
        parameters={
            **asdict(sizes),
            "activation": "tanh",
            "points": [list(p) for p in _PHASE_POINTS],
            "rho_1": _PHASE_RHO_1,
            "boundary_margin": _BOUNDARY_MARGIN,
            "dtype": str(_DTYPE).removeprefix("torch."),
            "seed": seed,
        },
        details={
            "theory_phase": [p["theory"] for p in points],
            "measured_phase": [p["measured"] for p in points],
            "decisive": [p["decisive"] for p in points],
            "final_correlation": [p["final_correlation"] for p in points],
            "rho_star": [p["rho_star"] for p in points],
            "margin_stderr": margin,
            "predicted_log_growth": prediction,
            "boundary_c_b": diagram.c_b,
            "boundary_c_w": diagram.boundary_c_w,
        },
        figure=png_bytes(fig),
        label="s g, g = log[(1 - ρ^(L+1)) / (1 - ρ^(1))] signed toward the predicted phase "
        "(s = -1 ordered, +1 chaotic; > 0 agrees; dimensionless)",
        index=[f"({p['c_w']:g}, {p['c_b']:g})" for p in points],
        index_label="(C_w, C_b)",
        kind="bound",
        bound="lower",
        tolerance="none: the sign of g (a classification), decided where |log chi_perp| L >= 3",
        tables=[
            Table(
                "phase by point: theory vs measured",
                ("(C_w, C_b)", "theory", "measured", "g margin / stderr", "decisive"),
                [
                    (
                        f"({p['c_w']:g}, {p['c_b']:g})",
                        p["theory"],
                        p["measured"],
                        float(m),
                        "yes" if p["decisive"] else "no",
                    )
                    for p, m in zip(points, margin, strict=True)
                ],
            )
        ],
        note=(
            "The check is a classification (the sign of g), not an equality: the predicted g "
            "is the infinite-width value, and the margin column says how many standard errors "
            "each measured g lies on the theory's side."
        ),
        caption=(
            "log chi_perp(K*) of tanh over (C_w, C_b), the colour scale centred on the order/chaos "
            "boundary log chi_perp = 0 (white; black line), with the measured phase of each point: "
            "squares ordered, triangles chaotic, red where the measurement disagrees."
        ),
    )
