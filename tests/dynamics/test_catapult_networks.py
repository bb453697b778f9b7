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


def test_three_phases_on_a_relu_net_and_the_boundaries_of_the_theory():
    torch.set_num_threads(1)
    x, y = _data()
    spec = MLP(depth=1, activation="relu", c_w=2.0)
    factors = [0.9, 1.1, 2.0, 2.5]
    scan = catapult_scan(spec, x, y, width=512, factors=factors, steps=120, seeds=1)
    lazy, cat, cat_high, div = scan.runs[0]
    # Lewkowycz et al. (2020): lazy below eta = 2N / lambda_max(Theta_0) (c = 1), a
    # catapult above it; 10 % on either side of c = 1 is beyond the O(1/sqrt(width)) ~ 5 %
    # drift of lambda_max at width 512, so the phases on each side are the theory's.
    assert (lazy.phase, cat.phase) == ("lazy", "catapult")
    assert lazy.spike == 1.0 and cat.spike > 1.0  # the loss spike only above c = 1
    assert cat.final_factor < 1.0  # eta < 2N / lambda_max(Theta_final) after the catapult
    # lazy: the NTK barely moves, so eta / threshold stays at 0.9 up to O(1/sqrt(width))
    assert lazy.final_factor == pytest.approx(0.9, rel=0.1)
    # The uv model diverges from c = 2 (eta = 4 / lambda_0; exact only for the uv model
    # with y = 0): the two-layer ReLU net still converges at c = 2 and diverges at 2.5.
    assert (cat_high.phase, div.phase) == ("catapult", "divergent")
    assert cat_high.final_factor < 1.0
    assert math.isinf(div.final_loss_ratio) and math.isnan(div.final_factor)
    # The measured boundaries (per-seed cell midpoints, stderr with the half-cell width)
    # bracket the theory's c = 1 and the uv model's c_max = 2 within one stderr.
    assert abs(scan.lower.mean - 1.0) <= scan.lower.stderr
    assert abs(scan.upper.mean - 2.0) <= scan.upper.stderr


@pytest.mark.parametrize(
    ("kwargs", "exc", "text"),
    [
        ({"spec": "mlp"}, TypeError, "spec must be a Serial spec"),
        ({"factors": [2.0, 1.0]}, ValueError, "factors must be an increasing"),
        ({"factors": []}, ValueError, "factors must be non-empty"),
        ({"factors": [True, True]}, TypeError, "factors must be an array of real numbers"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"conv_tol": 2.0}, ValueError, "conv_tol must be in"),
        ({"seeds": 10**12}, ValueError, "seeds must be small enough for the memory budget"),
        ({"width": 10**12}, ValueError, "width must be small enough for the memory budget"),
        ({"width": 0}, ValueError, "width must be an integer >= 1"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
    ],
)
def test_errors(kwargs, exc, text):
    x, y = _data()
    args = {"spec": MLP(depth=1), "x": x, "y": y, "width": 8, "factors": np.array([1.0])}
    with pytest.raises(exc, match=text):
        catapult_scan(**(args | kwargs))
