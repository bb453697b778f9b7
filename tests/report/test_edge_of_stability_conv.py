"""The conv + BatchNorm edge-of-stability reproduction (quick mode)."""

from __future__ import annotations

import time

from dltheory.report.experiments.edge_of_stability_conv import edge_of_stability_conv_bn
from dltheory.report.figures import PNG_SIGNATURE


def test_quick_reproduction_passes_with_a_figure_in_seconds():
    c0 = time.process_time()
    result = edge_of_stability_conv_bn(quick=True, seed=0)
    assert time.process_time() - c0 < 30  # a few seconds of CPU on one thread
    assert result.verdict is True, result.summary
    assert abs(result.measurement.mean - 1.0) < 0.1
    assert result.label and result.tolerance
    assert result.figure is not None and result.figure.startswith(PNG_SIGNATURE)


def test_registered():
    from dltheory.report.registry import REGISTRY

    assert "edge_of_stability_conv_bn" in REGISTRY
