"""The large-learning-rate reproductions (quick mode), each run once per module."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import large_learning_rates as llr
from dltheory.report.figures import PNG_SIGNATURE

_RUNS = {
    "lr_threshold_two_over_lambda": llr.lr_threshold_two_over_lambda,
    "catapult_phase_diagram": llr.catapult_phase_diagram_uv_and_nets,
    "catapult_spike_time": llr.catapult_spike_time,
    "quadratic_model_eps_squared": llr.quadratic_model_eps_squared,
    "edge_of_stability_digits": llr.edge_of_stability_digits,
}


@pytest.mark.parametrize("name", list(_RUNS))
def test_quick_reproduction_passes_with_a_figure(quick_outcome, name):
    result = quick_outcome(name)
    assert result.verdict is True, result.summary
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)


def test_catapult_diagram_reports_each_architecture(quick_outcome):
    result = quick_outcome("catapult_phase_diagram")
    assert abs(result.details["uv_eta_star_lambda0"] - 4.0) < 1e-8
    assert set(result.details["upper"]) == set(result.parameters["archs"])
