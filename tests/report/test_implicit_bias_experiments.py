"""The implicit-bias reproductions (quick mode)."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import implicit_bias as ib
from dltheory.report.figures import PNG_SIGNATURE


@pytest.mark.parametrize(
    "run",
    [
        ib.diagonal_net_regimes,
        ib.max_margin_logistic,
        ib.sgd_fluctuation_dissipation_check,
        ib.sgd_entropic_force,
    ],
)
def test_quick_reproduction_passes_with_a_figure(run):
    outcome = run(quick=True, seed=0)
    assert outcome.verdict is True, outcome.summary
    assert outcome.figure is not None and outcome.figure.startswith(PNG_SIGNATURE)


def test_registered_with_the_topic():
    from dltheory.report.registry import REGISTRY

    for name in (
        "diagonal_net_regimes",
        "max_margin_logistic",
        "sgd_fluctuation_dissipation",
        "sgd_entropic_force",
    ):
        assert REGISTRY[name].topic == "implicit bias"
