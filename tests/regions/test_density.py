"""Region density at initialisation: Kac-Rice prediction, Hanin-Rolnick bound, measurement."""

from __future__ import annotations

import math

import pytest

from dltheory.regions import density_prediction, region_density


def test_one_layer_closed_forms():
    # through the origin the zeros t* = -b / (w.u) are Cauchy with scale sqrt(n_0 C_b / C_w)
    c_w, c_b, n_in, n1, length = 2.0, 0.5, 3, 7, 4.0
    p = density_prediction([n1], n_in, c_w=c_w, c_b=c_b, offset=0.0, length=length, n_quad=200)
    scale = math.sqrt(n_in * c_b / c_w)
    cauchy = n1 * (2 / math.pi) * math.atan(length / 2 / scale) / length
    assert p.density == pytest.approx(cauchy, rel=1e-10)
    # Hanin-Rolnick: n_1 C_grad C_bias, C_grad = sqrt(2 C_w / (pi n_0)), C_bias = 1/sqrt(2 pi C_b)
    bound = n1 * math.sqrt(2 * c_w / (math.pi * n_in)) / math.sqrt(2 * math.pi * c_b)
    assert p.hanin_rolnick == pytest.approx(bound, rel=1e-12)
    assert p.expected_pieces == pytest.approx(1 + cauchy * length)


def test_prediction_is_linear_in_neurons_and_below_the_bound():
    widths = [32] * 6
    p = density_prediction(widths, 4, offset=1.0)
    assert p.density <= p.hanin_rolnick
    assert all(0.5 < d / p.per_layer[0] <= 1.0 for d in p.per_layer)  # no growth with depth
    assert p.n_neurons == 192


def test_one_layer_measurement_is_exact_at_any_width():
    r = region_density([8], 3, c_b=0.3, n_lines=400, seed=1)
    assert r.measurement.agrees(r.prediction.density, n_std=4)
    leaky = region_density([6], 2, negative_slope=0.2, n_lines=300, seed=2)
    assert leaky.measurement.agrees(leaky.prediction.density, n_std=4)


def test_deep_measurement_agrees_up_to_finite_width():
    r = region_density([32] * 4, 4, n_lines=150, seed=3)
    assert r.measurement.agrees(r.prediction.density, n_std=4, rtol=0.05)
    assert float(r.measurement.mean) < r.prediction.hanin_rolnick


def test_error_messages():
    with pytest.raises(ValueError, match=r"^c_b must be > 0\. Got 0\.0\."):
        density_prediction([4], 2, c_b=0.0)
    with pytest.raises(ValueError, match=r"^widths must be equal hidden widths"):
        region_density([4, 5], 2)
    with pytest.raises(TypeError, match=r"^widths must be a non-empty list of hidden widths"):
        density_prediction([], 2)
    with pytest.raises(ValueError, match=r"^offset must be 0 when n_in = 1"):
        density_prediction([4], 1, offset=1.0)
    with pytest.raises(ValueError, match=r"^n_lines must be an integer >= 2\. Got 1\."):
        region_density([4], 2, n_lines=1)
