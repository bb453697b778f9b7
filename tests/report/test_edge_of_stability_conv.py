"""The conv + BatchNorm edge-of-stability reproduction (quick mode)."""

from __future__ import annotations

import time

from dltheory.report.experiments.edge_of_stability_conv import edge_of_stability_conv_bn
from dltheory.report.figures import PNG_SIGNATURE

from .conftest import reader_problems


def test_quick_reproduction_passes_with_a_figure_in_seconds():
    c0 = time.process_time()
    result = edge_of_stability_conv_bn(quick=True, seed=0)
    assert time.process_time() - c0 < 30  # a few seconds of CPU on one thread
    assert result.verdict is True, result.summary
    assert 0.0 <= result.measurement.mean < 0.1  # the largest late deviation from 2/eta
    assert all(abs(d["late_mean"] - 1.0) < 0.1 for d in result.details.values())
    assert result.label and result.tolerance
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)
    assert reader_problems("edge_of_stability_conv_bn", result) == []


def test_registered():
    from dltheory.report.registry import REGISTRY

    assert "edge_of_stability_conv_bn" in REGISTRY
