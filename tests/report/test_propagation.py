"""fan_in_variance (its per-layer measurement, ``layer_samples``, is tested in tests/finite)."""

from __future__ import annotations

import numpy as np

from dltheory.report.experiments.propagation import fan_in_variance

from .conftest import reader_problems


def test_fan_in_variance_quick_passes_and_predicts_the_closed_form():
    outcome = fan_in_variance(quick=True, seed=0)
    assert reader_problems("fan_in_variance", outcome) == []
    x = np.array(outcome.details["input"])
    depth = outcome.parameters["depth"]
    # He initialisation: 2 |x|^2 / n_0 at each of the depth + 1 Dense layers.
    np.testing.assert_allclose(outcome.prediction, [2 * x @ x / len(x)] * (depth + 1), rtol=1e-12)
    assert len(outcome.measurement.mean) == depth + 1
    assert outcome.measurement.n == outcome.parameters["n_networks"]
    assert outcome.verdict is True
    assert outcome.figure is not None
    zscores = (np.array(outcome.measurement.mean) - outcome.prediction) / np.array(
        outcome.measurement.stderr
    )
    np.testing.assert_allclose(outcome.details["zscores"], zscores, rtol=1e-9)
