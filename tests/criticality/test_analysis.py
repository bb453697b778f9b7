"""``analyze`` and ``dltheory analyze``: the summary of one architecture."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from dltheory.cli import app
from dltheory.criticality import chi_perp
from dltheory.criticality.analysis import analyze, plot_analysis


def test_defaults_to_the_critical_point():
    a = analyze("relu", depth=4, width=64, n_networks=3)
    assert (a.c_w, a.c_b) == (2.0, 0.0)
    assert a.scales.phase == "critical" and math.isinf(a.scales.xi_c)
    # K^(1) = C_w |x|^2 / n_0 = 2, and He-ReLU keeps it at every layer.
    assert a.profile.variance[:, 0].tolist() == pytest.approx([2.0] * 5, rel=1e-12)


def test_chaotic_tanh_is_flagged_and_profile_measured():
    a = analyze("tanh", depth=12, width=256, c_w=2.5, c_b=0.05, n_networks=6)
    assert a.scales.phase == "chaotic"
    assert a.scales.chi_perp == pytest.approx(float(chi_perp("tanh", 2.5, a.scales.k_star)))
    assert "chaotic" in a.verdict
    gap = (a.measured.variance[:, 0] - a.profile.variance[:, 0]).abs()
    assert bool((gap <= 5 * a.measured.variance_se[:, 0] + 0.05 * a.profile.variance[:, 0]).all())
    fig = plot_analysis(a)
    assert len(fig.axes) == 2


def test_cli_json_and_errors(tmp_path):
    runner = CliRunner()
    png = tmp_path / "a.png"
    out = runner.invoke(app, ["analyze", "--activation", "tanh", "--depth", "5", "--width",
                              "32", "--networks", "2", "--json", "--plot", str(png)])  # fmt: skip
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["c_w"] == 1.0 and doc["phase"] == "critical"
    assert png.stat().st_size > 1000
    bad = runner.invoke(app, ["analyze", "--activation", "sigmoid", "--depth", "3",
                              "--width", "8"])  # fmt: skip
    assert bad.exit_code != 0
    with pytest.raises(ValueError, match="c_w must be given"):
        analyze("sigmoid", depth=3, width=8)


def test_analyze_reports_finite_width_diagnostics():
    a = analyze("relu", depth=6, width=50, n_networks=2)  # He init, C_b = 0
    fw = a.finite_width
    assert fw.output_kurtosis == pytest.approx(15 * 6 / 50, rel=1e-12)  # 15 L / n
    assert abs(fw.output_shift) < 1e-12 and fw.beta == pytest.approx(5 * 6 / 50)
    assert fw.region_density is None  # Gaussian-bias density needs C_b > 0
    b = analyze("relu", depth=2, width=16, c_w=2.0, c_b=0.1, n_networks=2)
    assert b.finite_width.region_density > 0
    t = analyze("tanh", depth=4, width=64, n_networks=2)
    assert t.finite_width.beta is None and t.finite_width.output_kurtosis > 0


def test_vanishing_variance_is_not_called_critical():
    # tanh at C_w = 0.5, C_b = 0: K* = 0 attracts with chi_parallel = 0.5, xi_q = 1 / log 2.
    a = analyze("tanh", depth=30, width=32, c_w=0.5, c_b=0.0, n_networks=2)
    assert not a.verdict.startswith("critical")
    assert "vanishing" in a.verdict and f"xi_q = {1 / math.log(2):.3g}" in a.verdict


@pytest.mark.parametrize(
    ("act", "c_w", "c_b"),
    [("relu", 0.0, 0.0), ("relu", 0.0, 0.5), ("step", 1.0, 0.1), ("sign", 1.0, 0.1)],
)
def test_zero_depth_scales_never_divide(act, c_w, c_b):
    a = analyze(act, depth=4, width=16, c_w=c_w, c_b=c_b, n_networks=2)
    assert isinstance(a.verdict, str) and a.verdict
    if act in ("step", "sign"):
        assert a.verdict.startswith("chaotic")


def test_analyze_of_a_spec_returns_its_criticality_with_the_shared_fields():
    from dltheory.criticality import SpecCriticality
    from dltheory.spec import Dense, LayerNorm, Nonlinearity, Residual, Serial

    spec = Serial(Dense(1.0), *[Residual((LayerNorm(), Nonlinearity("relu"), Dense(2.0)))] * 8,
                  Dense(1.0))  # fmt: skip
    result = analyze(spec)
    assert isinstance(result, SpecCriticality)
    mlp = analyze("relu", depth=4, width=32, n_networks=2)
    assert mlp.phase == mlp.scales.phase == "critical"
    # Pre-LN residual nets are critical at any initialisation (Doshi, He & Gromov 2023).
    assert result.phase == "critical" and isinstance(result.verdict, str)
    with pytest.raises(ValueError, match=r"^depth must be None when a spec is analysed"):
        analyze(spec, depth=3)
