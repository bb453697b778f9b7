"""tanh_critical_decay (the 1/(2l) law of the K* = 0 class) and he_init_relu."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dltheory.report import registered
from dltheory.report.experiments import MODULES
from dltheory.report.experiments.criticality import (
    exact_decay,
    tanh_critical_decay,
)
from dltheory.report.figures import PNG_SIGNATURE

from .conftest import reader_problems


def test_exact_decay_matches_a_naive_quadrature_recursion():
    # Independent reference: Gauss-Hermite (NumPy, 200 nodes) for E_K[tanh(z)^2].
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    weights = weights / weights.sum()
    k, expected = 1.3, []
    for _ in range(30):
        expected.append(k)
        k = float(weights @ np.tanh(math.sqrt(k) * nodes) ** 2)
    np.testing.assert_allclose(exact_decay(1.3, 30).numpy(), expected, rtol=1e-10)


def test_tanh_critical_decay_quick_passes_with_a_figure():
    outcome = tanh_critical_decay(quick=True, seed=0)
    assert reader_problems("tanh_critical_decay", outcome) == []
    assert outcome.verdict is True
    assert outcome.figure is not None and outcome.figure.startswith(PNG_SIGNATURE)
    assert abs(outcome.details["l_k_at_10000"] - 0.5) <= 0.005
    assert outcome.details["a_1"] == -2.0 or abs(outcome.details["a_1"] + 2.0) < 1e-12
    depth = outcome.parameters["depth"]
    prediction = np.array(outcome.prediction)
    assert prediction.shape == (depth + 1, 3)
    # l = 1: l K^(1) = C_w |x|^2 / n_0 = the input norms.
    np.testing.assert_allclose(prediction[0], outcome.parameters["input_norms"], rtol=1e-12)
    assert outcome.measurement.n == outcome.parameters["n_networks"]


def test_registered_in_the_report():
    assert "criticality" in MODULES
    assert registered()["tanh_critical_decay"].topic == "criticality"


def _tiny(monkeypatch) -> None:
    from dltheory.report.experiments import criticality as c

    monkeypatch.setattr(c, "_HE_QUICK", c._HeSizes(64, 6, 4))


def test_he_init_relu_plumbing(monkeypatch):
    from dltheory.report.experiments.criticality import he_init_relu

    _tiny(monkeypatch)
    outcome = he_init_relu(quick=True, seed=0)
    assert reader_problems("he_init_relu", outcome) == []
    assert outcome.figure.startswith(PNG_SIGNATURE)
    assert len(outcome.prediction) == 7
    assert outcome.prediction[0] == 0.0  # orthogonal inputs at layer 1 (C_b = 0)
    assert outcome.prediction[1] == pytest.approx(1.0 / math.pi, rel=1e-10)  # f(0) = 1 / pi
    assert outcome.details["asymptote_within_1_percent"] is True


def test_relu_critical_correlation_power_law():
    from dltheory.report.experiments.criticality import relu_critical_correlation

    rho = relu_critical_correlation(0.0, 3)
    assert rho[1].item() == pytest.approx(1 / math.pi, rel=1e-14)
    # Independent check of the asymptote: 1 - f(1 - e) = e - (2 e)^(3/2) / (3 pi) + O(e^2).
    e = 1e-6
    step = relu_critical_correlation(1 - e, 2)
    assert 1 - step[1].item() == pytest.approx(e - (2 * e) ** 1.5 / (3 * math.pi), rel=1e-4)


def test_he_init_relu_registered():
    assert registered()["he_init_relu"].topic == "criticality"
