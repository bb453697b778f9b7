"""The deep linear / random-matrix / JL reproductions (quick mode), each run once."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import bayes_linear as bl
from dltheory.report.figures import PNG_SIGNATURE

_RUNS = {
    "deep_linear_evidence": bl.deep_linear_evidence,
    "marchenko_pastur_spectrum": bl.marchenko_pastur_spectrum,
    "product_norm_lognormal": bl.product_norm_lognormal,
    "jl_distortion": bl.jl_distortion_vs_m,
}


@pytest.mark.parametrize("name", list(_RUNS))
def test_quick_reproduction_passes_with_a_figure(quick_outcome, name):
    result = quick_outcome(name)
    assert result.verdict is True, result.summary
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)


def test_registered():
    from dltheory.report.registry import REGISTRY

    assert set(_RUNS) <= set(REGISTRY)
