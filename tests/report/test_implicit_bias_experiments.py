"""The implicit-bias reproductions (quick mode), each run once per module."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import implicit_bias as ib
from dltheory.report.figures import PNG_SIGNATURE

_RUNS = {
    "diagonal_net_regimes": ib.diagonal_net_regimes,
    "max_margin_logistic": ib.max_margin_logistic,
    "sgd_fluctuation_dissipation": ib.sgd_fluctuation_dissipation_check,
    "sgd_entropic_force": ib.sgd_entropic_force,
}


@pytest.mark.parametrize("name", list(_RUNS))
def test_quick_reproduction_passes_with_a_figure(quick_outcome, name):
    result = quick_outcome(name)
    assert result.verdict is True, result.summary
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)


def test_diagonal_quick_mode_covers_the_alpha_range(quick_outcome):
    result = quick_outcome("diagonal_net_regimes")
    alphas = result.parameters["alphas"]
    assert min(alphas) == pytest.approx(1e-2) and max(alphas) == pytest.approx(1e2)
    assert len(result.details["flow_vs_argmin"]) == len(alphas)
    assert max(result.details["flow_vs_argmin"]) < 1e-6
    # argmin Q moves from the L1 end toward the weighted-L2 end as alpha grows.
    to_l1, to_l2 = result.details["argmin_to_l1"], result.details["argmin_to_l2"]
    assert to_l2[-1] < to_l2[0] and to_l1[0] < to_l1[-1]


def test_registered_with_the_topic():
    from dltheory.report.registry import REGISTRY

    for name in _RUNS:
        assert REGISTRY[name].topic == "implicit bias"
