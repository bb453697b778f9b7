"""catapult_scan on a small wide ReLU net: the three phases, lambda_final < 2/eta."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.dynamics.catapult_networks import catapult_scan


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True) * 2.0
    return x, torch.randn(8, 1, generator=g, dtype=torch.float64)


def test_three_phases_on_a_relu_net():
    torch.set_num_threads(1)
    x, y = _data()
    spec = MLP(depth=1, activation="relu", c_w=2.0)
    scan = catapult_scan(spec, x, y, width=512, factors=[0.8, 1.5, 4.0], steps=120, seeds=1)
    lazy, cat, div = scan.runs[0]
    assert (lazy.phase, cat.phase, div.phase) == ("lazy", "catapult", "divergent")
    assert lazy.spike == 1.0 and cat.spike > 2.0  # the loss spike only above 2/lambda_0
    assert cat.final_factor < 1.0  # eta < 2N / lambda_max(Theta_final) after the catapult
    # lazy: the NTK barely moves, so eta / threshold stays near 0.8 (O(1/sqrt(width)))
    assert lazy.final_factor == pytest.approx(0.8, rel=0.1)
    assert math.isinf(div.final_loss_ratio) and math.isnan(div.final_factor)
    # boundaries: midpoints of the cells (0.8, 1.5) and (1.5, 4.0), one seed: se = half-cell
    assert scan.lower.mean == pytest.approx(1.15) and scan.lower.stderr == pytest.approx(0.35)
    assert scan.upper.mean == pytest.approx(2.75) and scan.upper.stderr == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("kwargs", "exc", "text"),
    [
        ({"spec": "mlp"}, TypeError, "spec must be a Serial spec"),
        ({"factors": [2.0, 1.0]}, ValueError, "factors must be a non-empty increasing"),
        ({"factors": []}, ValueError, "factors must be a non-empty increasing"),
        ({"width": 0}, ValueError, "width must be an integer >= 1"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
    ],
)
def test_errors(kwargs, exc, text):
    x, y = _data()
    args = {"spec": MLP(depth=1), "x": x, "y": y, "width": 8, "factors": np.array([1.0])}
    with pytest.raises(exc, match=text):
        catapult_scan(**(args | kwargs))
