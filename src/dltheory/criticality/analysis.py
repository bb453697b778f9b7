"""``analyze``: the practitioner's summary of one MLP architecture at initialisation.

Is the initialisation critical, how far from it (chi_parallel - 1, chi_perp - 1),
how the depth compares with the depth scales xi_q, xi_c (Schoenholz et al. 2017),
the kernel's depth profile, analytic and measured on sampled networks, and the
finite-width diagnostics: the leading 1/n output kurtosis and kernel shift
(:func:`dltheory.kernels.finite_width_corrections`), and for ReLU-family nets the
path-counting beta = 5 sum 1/n_l and the density of linear pieces along a line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .._checks import check_int, check_nonnegative, message
from ..activations import Activation, activation
from .critical_point import CriticalPoint, critical_point
from .depth_scales import DepthScales, depth_scales
from .profiles import DepthProfile, MeasuredDepthProfile, depth_profile, measured_depth_profile

if TYPE_CHECKING:
    from .residual import SpecCriticality

__all__ = ["Analysis", "FiniteWidthSummary", "analyze", "plot_analysis"]


@dataclass(frozen=True)
class FiniteWidthSummary:
    """Finite-width diagnostics at the analysed width (leading order in 1/n).

    Attributes:
        output_kurtosis: excess kurtosis of the output z^(L+1) at one input.
        output_shift: relative shift (E[z^2] - K) / K of the output variance.
        beta: 5 sum_l 1/n_l, the log-variance of ReLU Jacobian norms (ReLU only).
        region_density: expected linear pieces per unit length along a line at
            distance 1 from the origin (ReLU / leaky ReLU with C_b > 0; else None).
    """

    output_kurtosis: float
    output_shift: float
    beta: float | None
    region_density: float | None


@dataclass(frozen=True)
class Analysis:
    """Summary of one MLP architecture (see :func:`analyze`).

    ``phase`` and ``verdict`` are shared with
    :class:`~dltheory.criticality.SpecCriticality`, what :func:`analyze` returns for a spec.
    """

    activation: str
    depth: int
    width: int
    c_w: float
    c_b: float
    critical: CriticalPoint
    scales: DepthScales | None
    verdict: str
    profile: DepthProfile
    measured: MeasuredDepthProfile
    finite_width: FiniteWidthSummary | None = None

    @property
    def phase(self) -> str:
        """ "ordered", "critical" or "chaotic" (chaotic when no fixed point is stable)."""
        return "chaotic" if self.scales is None else self.scales.phase


def _depths(depth: int, xi: float, name: str) -> str:
    """``depth 30 = 20.8 xi_q``, or the one-layer case xi = 0."""
    if xi == 0.0:
        return f"{name} = 0 (it happens within one layer)"
    return f"depth {depth} = {depth / xi:.3g} {name} ({name} = {xi:.3g})"


def _verdict(scales: DepthScales | None, depth: int) -> str:
    """One sentence from both depth scales: xi_q (variance) and xi_c (correlations).

    K* = 0 attracting with chi_parallel < 1 is a vanishing signal even though
    correlations are formally kept (xi_c = inf): the verdict says so. Depth scales
    of 0 (C_w = 0, or step / sign) and inf never enter a division.
    """
    if scales is None:
        return "no stable fixed point of the variance map: signals diverge with depth"
    vanishing = scales.k_star == 0.0 and not math.isinf(scales.xi_q)
    if vanishing:
        return (
            "ordered (vanishing signal): the variance decays exponentially to K* = 0, "
            + _depths(depth, scales.xi_q, "xi_q")
            + (", the signal is lost" if depth > scales.xi_q else ", still trainable")
        )
    if scales.phase == "critical" and math.isinf(scales.xi_q):
        return "critical: correlations decay at most as a power law through depth"
    if scales.phase == "critical":
        return "critical in correlations (chi_perp = 1), variance converges: " + _depths(
            depth, scales.xi_q, "xi_q"
        )
    if math.isinf(scales.xi_c):
        return "critical: correlations decay at most as a power law through depth"
    side = "ordered (inputs merge)" if scales.phase == "ordered" else "chaotic (inputs decorrelate)"
    if scales.xi_c == 0.0:
        return f"{side}: correlations reach rho* = {scales.rho_star:.3g} after one layer"
    ratio = depth / scales.xi_c
    if ratio <= 1:
        return f"{side}, but depth {depth} <= xi_c = {scales.xi_c:.3g}: still trainable"
    return f"{side}: depth {depth} = {ratio:.3g} xi_c, information about inputs is lost"


def analyze(
    act: str | Activation,
    depth: int | None = None,
    width: int | None = None,
    c_w: float | None = None,
    c_b: float | None = None,
    *,
    n_networks: int = 8,
    seed: int = 0,
) -> Analysis | SpecCriticality:
    """Criticality, depth scales and depth profile of ``MLP(depth, act, c_w, c_b)``.

    (C_w, C_b) default to the activation's critical point. The measured profile
    uses ``n_networks`` sampled width-``width`` networks and two unit-norm inputs
    at 60 degrees (|x|^2 / n_0 = 1).

    >>> a = analyze("relu", depth=5, width=64, n_networks=2)
    >>> (a.c_w, a.c_b, a.scales.phase)
    (2.0, 0.0, 'critical')

    A spec (residual, LayerNorm, any kinds with criticality rules) in place of an
    activation is analysed layer by layer: :func:`~dltheory.criticality.spec_criticality`
    (variance, susceptibilities, APJN and phase through its top-level layers).

    Returns:
        :class:`Analysis` for an activation, :class:`~dltheory.criticality.SpecCriticality`
        for a spec: a spec has no single (C_w, C_b), fixed point or depth-scale pair to
        report, so the two types differ; both carry ``phase`` ("ordered", "critical",
        "chaotic") and a one-sentence ``verdict``. ``depth``, ``width``, ``c_w``,
        ``c_b``, ``n_networks`` and ``seed`` are not read for a spec (refused when given).
    """
    from ..spec.layers import Serial

    if isinstance(act, Serial):
        from .residual import spec_criticality

        given = {"depth": depth, "width": width, "c_w": c_w, "c_b": c_b}
        extra = sorted(name for name, v in given.items() if v is not None)
        if extra:
            raise ValueError(
                message(
                    extra[0],
                    "None when a spec is analysed (the spec fixes its layers and variances)",
                    given[extra[0]],
                    "Build the spec with these values instead",
                )
            )
        return spec_criticality(act)
    act = activation(act)
    depth = check_int("depth", depth, minimum=1)
    width = check_int("width", width, minimum=1)
    point = critical_point(act)
    if c_w is None or c_b is None:
        if point.c_w is None:
            raise ValueError(
                message("c_w", "given (with c_b)", c_w,
                        f"{act.name} has no critical point to default to: {point.reason}")
            )  # fmt: skip
        c_w = point.c_w if c_w is None else c_w
        c_b = point.c_b if c_b is None else c_b
    c_w, c_b = check_nonnegative("c_w", c_w), check_nonnegative("c_b", c_b)
    try:
        scales = depth_scales(act, c_w, c_b)
    except ValueError:  # no stable fixed point: a divergent initialisation
        scales = None
    n0 = 4
    x = math.sqrt(n0) * torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0, 0.0]], dtype=torch.float64
    )
    profile = depth_profile(act, c_w, c_b, x, depth)
    measured = measured_depth_profile(act, c_w, c_b, x, depth, width, n_networks, seed=seed)
    finite = _finite_width(act, depth, width, c_w, c_b, x[0])
    return Analysis(act.name, depth, width, c_w, c_b, point, scales, _verdict(scales, depth),
                    profile, measured, finite)  # fmt: skip


def _finite_width(
    act: Activation, depth: int, width: int, c_w: float, c_b: float, x: torch.Tensor
) -> FiniteWidthSummary | None:
    from ..kernels import finite_width_corrections
    from ..spec import MLP

    try:
        c = finite_width_corrections(MLP(depth, act, c_w=c_w, c_b=c_b), x, width)
    except ValueError:  # K = 0 somewhere: no expansion
        return None
    relu_family = act.name in ("relu", "leaky_relu")
    density = None
    if relu_family and c_b > 0 and c_w > 0:
        from ..regions import density_prediction

        slope = float(act.params.get("slope", 0.0))
        density = density_prediction(
            [width] * depth, x.shape[0], c_w=c_w, c_b=c_b, negative_slope=slope
        ).density
    return FiniteWidthSummary(
        output_kurtosis=float(c.excess_kurtosis[-1, 0]),
        output_shift=float(c.shift[-1, 0] / c.kernel[-1, 0]),
        beta=5.0 * depth / width if act.name == "relu" else None,
        region_density=density,
    )


def plot_analysis(analysis: Analysis) -> Any:
    """Figure: variance and correlation through depth, theory and measurement.

    Legends sit below the axes (never over the data), titles are mathtext and the
    layer axis has integer ticks.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    layers = torch.arange(1, analysis.profile.variance.shape[0] + 1)
    for ax, (name, theory, mean, se) in zip(
        fig.subplots(1, 2),
        [
            (r"variance $K^{(\ell)}_{aa}$", analysis.profile.variance[:, 0],
             analysis.measured.variance[:, 0], analysis.measured.variance_se[:, 0]),
            (r"correlation $\rho^{(\ell)}$", analysis.profile.correlation,
             analysis.measured.correlation, analysis.measured.correlation_se),
        ],
        strict=True,
    ):  # fmt: skip
        ax.plot(layers, theory, "-", label="infinite width")
        label = f"width {analysis.width} ({analysis.measured.n_networks} nets)"
        ax.errorbar(layers, mean, yerr=se, fmt="o", ms=3, label=label)
        ax.set_xlabel(r"layer $\ell$")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.suptitle(f"{analysis.activation}, depth {analysis.depth}, $C_w$={analysis.c_w:.4g}, "
                 f"$C_b$={analysis.c_b:.4g}: {analysis.verdict}", fontsize=9)  # fmt: skip
    return fig
