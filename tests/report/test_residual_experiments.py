"""residual_scaling, pre_ln_criticality and layernorm_kernel (quick mode)."""

from __future__ import annotations

import math

import pytest

from dltheory.report import registered
from dltheory.report.experiments.residual import (
    layernorm_kernel,
    pre_ln_criticality,
    residual_scaling,
)

_RUNS = {
    "residual_scaling": residual_scaling,
    "pre_ln_criticality": pre_ln_criticality,
    "layernorm_kernel": layernorm_kernel,
}


@pytest.mark.parametrize("name", sorted(_RUNS))
def test_quick_run_passes_and_is_registered(quick_outcome, name):
    outcome = quick_outcome(name)
    assert outcome.verdict is True, outcome.summary
    assert outcome.tolerance and outcome.label
    assert name in set(registered())


def test_residual_scaling_predictions_are_the_closed_forms(quick_outcome):
    outcome = quick_outcome("residual_scaling")
    depth = outcome.parameters["depth"]
    k_1, j_1, _, j_s, k_0, j_0 = (float(v) for v in outcome.prediction)
    # chi = 1 + alpha^2 per block, K^(0) = 1: K^(L) = J^(1,L) = chi^L.
    assert k_1 == pytest.approx(2.0**depth, rel=1e-12) and j_1 == pytest.approx(2.0**depth)
    assert j_s == pytest.approx((1 + 1 / depth) ** depth, rel=1e-12)
    assert (k_0, j_0) == (1.0, 1.0)


def test_layernorm_kernel_tells_the_mean_term_apart(quick_outcome):
    outcome = quick_outcome("layernorm_kernel")
    # The zero-mean convention misses the data by many standard errors.
    assert max(abs(float(z)) for z in outcome.details["zscores_zero_mean"]) > 5.0
    assert all(math.isfinite(float(m)) for m in outcome.measurement.mean)
