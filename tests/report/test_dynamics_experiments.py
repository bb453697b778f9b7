"""The training-dynamics reproductions (quick mode), each run once per module."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import dynamics as dyn
from dltheory.report.figures import PNG_SIGNATURE

_RUNS = {
    "lazy_training_vs_width": dyn.lazy_training_vs_width,
    "linearized_vs_trained": dyn.linearized_vs_trained,
    "mup_coord_check": dyn.mup_coord_check,
    "du_exponential_convergence": dyn.du_exponential_convergence,
}


@pytest.mark.parametrize("name", list(_RUNS))
def test_quick_reproduction_passes_with_a_figure(quick_outcome, name):
    result = quick_outcome(name)
    assert result.verdict is True, result.summary
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)
