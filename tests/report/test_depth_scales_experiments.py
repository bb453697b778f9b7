"""correlation_depth_scale (xi_c off criticality) and phase_diagram_measured."""

from __future__ import annotations

import math

from dltheory.report import registered
from dltheory.report.experiments import MODULES
from dltheory.report.figures import PNG_SIGNATURE

from .conftest import reader_problems


def _tiny(monkeypatch) -> None:
    from dltheory.report.experiments import depth_scales as d

    monkeypatch.setattr(d, "_SCALE_QUICK", d._ScaleSizes(128, 20, 8, 16, 4, 16))
    monkeypatch.setattr(d, "_PHASE_QUICK", d._PhaseSizes(32, 20, 2, 3, 2))
    monkeypatch.setattr(d, "_PHASE_POINTS", ((1.0, 0.2), (4.0, 0.1)))


def test_correlation_depth_scale_plumbing(monkeypatch):
    from dltheory.report.experiments.depth_scales import correlation_depth_scale

    _tiny(monkeypatch)
    outcome = correlation_depth_scale(quick=True, seed=0)
    assert reader_problems("correlation_depth_scale", outcome) == []
    assert outcome.figure is not None and outcome.figure.startswith(PNG_SIGNATURE)
    assert len(outcome.prediction) == 2
    # Predictions are -1 / log chi_c at the two points (ordered: chi_c = chi_perp(K*)).
    from dltheory.criticality import depth_scales

    assert outcome.prediction[0] == -1.0 / math.log(depth_scales("tanh", 1.0, 0.05).chi_perp)
    assert set(outcome.details) >= {"relative_error", "windows", "critical_agrees"}


def test_phase_diagram_measured_plumbing(monkeypatch):
    from dltheory.report.experiments.depth_scales import phase_diagram_measured

    _tiny(monkeypatch)
    outcome = phase_diagram_measured(quick=True, seed=0)
    assert reader_problems("phase_diagram_measured", outcome) == []
    assert outcome.details["theory_phase"] == ["ordered", "chaotic"]
    assert outcome.details["measured_phase"] == ["ordered", "chaotic"]
    assert outcome.verdict is True
    assert outcome.figure.startswith(PNG_SIGNATURE)


def test_registered_in_the_report_after_criticality():
    assert MODULES.index("depth_scales") == MODULES.index("criticality") + 1
    reps = registered()
    for name in ("correlation_depth_scale", "phase_diagram_measured"):
        assert reps[name].topic == "criticality"
