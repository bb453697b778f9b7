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
    with pytest.raises(ValueError, match=r"^widths must be non-empty"):
        density_prediction([], 2)
    with pytest.raises(ValueError, match=r"^offset must be 0 when n_in = 1"):
        density_prediction([4], 1, offset=1.0)
    with pytest.raises(ValueError, match=r"^n_lines must be an integer >= 2\. Got 1\."):
        region_density([4], 2, n_lines=1)


@pytest.mark.parametrize(("alpha", "seed"), [(0.5, 11), (-0.8, 12)])
def test_leaky_relu_depth_recursion(alpha, seed):
    # gain C_w (1 + alpha^2) / 2 per layer; C_w = 1 makes it differ from ReLU's by ~5-13%
    widths, n_in, c_w = [32] * 4, 4, 1.0
    r = region_density(widths, n_in, c_w=c_w, negative_slope=alpha, n_lines=400, seed=seed)
    m, predicted = r.measurement, r.prediction.density
    assert m.agrees(predicted, n_std=5, rtol=0.03)
    relu = density_prediction(widths, n_in, c_w=c_w).density
    assert abs(float(m.mean) - predicted) < abs(float(m.mean) - relu)


def test_widths_validation_is_shared_with_path_counting():
    import numpy as np

    from dltheory.finite.path_counting import relu_jacobian_moments

    assert density_prediction(np.array([4, 4]), 2).n_neurons == 8
    assert relu_jacobian_moments(2, np.array([4, 4])).widths == (4, 4)
    for bad in ([3.0], [None], [True], (4, 2.5)):
        with pytest.raises(TypeError, match=r"^widths must be a sequence of integers >= 1"):
            density_prediction(bad, 2)
        with pytest.raises(TypeError, match=r"^widths must be a sequence of integers >= 1"):
            relu_jacobian_moments(2, bad)
    for bad in ([0], [4, -1]):
        with pytest.raises(ValueError, match=r"^widths must be a sequence of integers >= 1"):
            density_prediction(bad, 2)
        with pytest.raises(ValueError, match=r"^widths must be a sequence of integers >= 1"):
            relu_jacobian_moments(2, bad)
