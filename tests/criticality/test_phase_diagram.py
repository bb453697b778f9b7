"""Order/chaos phase diagram and its plot."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from dltheory import activation
from dltheory.criticality.depth_scales import depth_scales
from dltheory.criticality.phase_diagram import PhaseDiagram, phase_diagram, plot_phase_diagram


@pytest.fixture(scope="module")
def tanh_diagram() -> PhaseDiagram:
    return phase_diagram("tanh", [0.5, 1.0, 1.5, 2.5], [0.0, 0.05, 0.2])


def _chi_perp_reference(c_w: float, c_b: float) -> float:
    """Independent: K* by iterating the variance map, E[sech^4] by Gauss-Hermite."""
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / math.sqrt(2 * math.pi)
    k = 1.0
    for _ in range(3000):
        k = c_b + c_w * float(np.sum(w * np.tanh(math.sqrt(k) * z) ** 2))
    return c_w * float(np.sum(w / np.cosh(math.sqrt(k) * z) ** 4))


def test_tanh_boundary_passes_through_unit_weights(tanh_diagram: PhaseDiagram) -> None:
    assert tanh_diagram.c_b[0] == 0.0
    assert tanh_diagram.boundary_c_w[0] == pytest.approx(1.0, abs=1e-10)


def test_boundary_points_have_unit_chi_perp(tanh_diagram: PhaseDiagram) -> None:
    s = activation("tanh")
    assert np.isfinite(tanh_diagram.boundary_c_w).all()
    for c_b, c_w in zip(tanh_diagram.c_b[1:], tanh_diagram.boundary_c_w[1:], strict=True):
        assert depth_scales(s, float(c_w), float(c_b)).chi_perp == pytest.approx(1.0, abs=1e-8)
        assert _chi_perp_reference(float(c_w), float(c_b)) == pytest.approx(1.0, abs=1e-6)
    # The boundary moves to larger C_w as C_b grows (Schoenholz et al. 2017, Fig. 1).
    assert np.all(np.diff(tanh_diagram.boundary_c_w) > 0)


def test_phases_and_chi_perp_on_grid(tanh_diagram: PhaseDiagram) -> None:
    assert tanh_diagram.phase[0].tolist() == ["ordered", "critical", "chaotic", "chaotic"]
    assert tanh_diagram.phase[2, 0] == "ordered"
    assert tanh_diagram.chi_perp[1, 3] == pytest.approx(_chi_perp_reference(2.5, 0.05), abs=1e-8)
    assert math.isinf(tanh_diagram.xi_c[0, 1])


def test_divergent_points_are_labelled() -> None:
    d = phase_diagram("relu", [1.0, 2.0, 3.0], [0.0, 0.5])
    assert d.phase.tolist() == [
        ["ordered", "critical", "divergent"],
        ["ordered", "divergent", "divergent"],
    ]
    assert np.isnan(d.chi_perp[1, 1])
    assert d.boundary_c_w[0] == pytest.approx(2.0, abs=1e-12)


def test_plot_with_divergent_and_zero_points(tmp_path) -> None:
    fig = plot_phase_diagram(phase_diagram("relu", [0.0, 2.0, 3.0], [0.0, 0.5]))
    fig.savefig(tmp_path / "relu.png")
    assert (tmp_path / "relu.png").stat().st_size > 1000


def test_plot_writes_png(tanh_diagram: PhaseDiagram, tmp_path) -> None:
    fig = plot_phase_diagram(tanh_diagram, measured=[[1.0, 0.0]])
    path = tmp_path / "phase.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grid_must_increase() -> None:
    with pytest.raises(ValueError, match=r"^c_w_grid must be increasing variances >= 0"):
        phase_diagram("tanh", [2.0, 1.0], [0.0])


def test_plot_needs_a_diagram() -> None:
    with pytest.raises(TypeError, match=r"^diagram must be a PhaseDiagram"):
        plot_phase_diagram({"c_w": [1.0]})


def test_tanh_boundary_at_zero_bias_is_unit_weights_off_grid() -> None:
    # 1.0 is not on this grid: the boundary search passes C_w = 1 + O(1e-8), where
    # K* ~ (C_w - 1) / 2 lies below the fixed-point scan (it used to raise).
    d = phase_diagram("tanh", np.linspace(0.5, 4.5, 12)[:4], [0.0])
    assert d.boundary_c_w[0] == pytest.approx(1.0, abs=1e-8)
    assert d.phase[0, 1] == "ordered" and d.phase[0, 2] == "chaotic"


def test_boundary_is_finite_wherever_chi_perp_crosses_one() -> None:
    d = phase_diagram("tanh", [0.5, 1.5, 3.0, 4.5], [0.0, 0.05, 1.0, 3.0])
    crosses = np.nanmin(d.chi_perp, axis=1) < 1.0
    crosses &= np.nanmax(d.chi_perp, axis=1) > 1.0
    assert crosses.tolist() == [True, True, True, False]
    assert np.isfinite(d.boundary_c_w[crosses]).all()
    assert np.isnan(d.boundary_c_w[~crosses]).all()  # C_b = 3: the boundary is past C_w = 4.5
    for c_b, c_w in zip(d.c_b[1:3], d.boundary_c_w[1:3], strict=True):
        assert _chi_perp_reference(float(c_w), float(c_b)) == pytest.approx(1.0, abs=1e-6)


def test_chaotic_points_next_to_the_boundary_keep_their_phase() -> None:
    # Just past the boundary rho* is within 0.01 of 1; the grid point is chaotic, not NaN.
    edge = phase_diagram("tanh", [1.0, 2.0], [0.05]).boundary_c_w[0]
    d = phase_diagram("tanh", [1.0, edge + 1e-3, 2.0], [0.05])
    assert d.phase[0].tolist() == ["ordered", "chaotic", "chaotic"]
    assert np.isfinite(d.xi_c).all() and d.xi_c[0, 1] > d.xi_c[0, 2]
