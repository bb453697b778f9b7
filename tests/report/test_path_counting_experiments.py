"""The path-counting reproductions run quickly, pass, and report exact-vs-measured numbers."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import path_counting
from dltheory.report.figures import PNG_SIGNATURE

from .conftest import reader_problems


@pytest.mark.parametrize(
    "run", [path_counting.relu_lognormal_jacobian, path_counting.relu_ntk_diagonal_mean]
)
def test_quick_reproduction_passes(run):
    outcome = run(quick=True, seed=0)
    assert reader_problems(run.__name__, outcome) == []
    assert outcome.verdict, outcome.summary
    assert outcome.figure.startswith(PNG_SIGNATURE)
    cells = outcome.details["cells"]
    assert cells and all(cell["agrees"] for cell in cells)


def test_lognormal_reports_the_leading_order_error_at_width_ten():
    outcome = path_counting.relu_lognormal_jacobian(quick=True, seed=1)
    # exact Var log X at n = 10 is 0.8667 against 5/n = 0.5 (computed from the binomial
    # mixture of chi^2 laws); the mean -0.3075 against -0.25
    assert outcome.details["leading_order_relative_error_var_width10"] == pytest.approx(
        0.8667 / 0.5 - 1, abs=1e-3
    )
    assert outcome.details["leading_order_relative_error_mean_width10"] == pytest.approx(
        0.3075 / 0.25 - 1, abs=1e-3
    )


def test_registered_under_the_path_counting_topic():
    from dltheory.report.registry import REGISTRY

    for name in ("relu_lognormal_jacobian", "relu_ntk_diagonal_mean"):
        assert REGISTRY[name].topic == "path counting, finite width"
