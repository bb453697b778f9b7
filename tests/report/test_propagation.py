"""fan_in_variance and its layer-by-layer measurement."""

from __future__ import annotations

import numpy as np
import torch

from dltheory import MLP
from dltheory.report.experiments.propagation import fan_in_variance, layer_second_moments


def test_layer_second_moments_match_a_manual_forward_pass():
    spec = MLP(3, "tanh", c_w=1.5, c_b=0.2)
    net = spec.sample(6, in_dim=4, seed=3, dtype=torch.float64)
    x = torch.tensor([[0.3, -1.2, 0.7, 2.0]], dtype=torch.float64)
    # Rebuild each Dense layer's effective W, b and run the network by hand (NumPy).
    dense = [m for m in net if hasattr(m, "w_mult")]
    h, expected = x.numpy()[0], []
    for i, module in enumerate(dense):
        w = (module.weight * module.w_mult).detach().numpy()
        b = (module.bias * module.b_mult).detach().numpy()
        z = w @ h + b
        expected.append(np.mean(z**2))
        h = np.tanh(z) if i < len(dense) - 1 else None
    np.testing.assert_allclose(layer_second_moments(net, x).numpy(), expected, rtol=1e-12)


def test_fan_in_variance_quick_passes_and_predicts_the_closed_form():
    outcome = fan_in_variance(quick=True, seed=0)
    x = np.array(outcome.details["input"])
    depth = outcome.parameters["depth"]
    # He initialisation: 2 |x|^2 / n_0 at each of the depth + 1 Dense layers.
    np.testing.assert_allclose(outcome.prediction, [2 * x @ x / len(x)] * (depth + 1), rtol=1e-12)
    assert len(outcome.measurement.mean) == depth + 1
    assert outcome.measurement.n == outcome.parameters["n_networks"]
    assert outcome.verdict is True
    assert outcome.figure is not None
    zscores = (np.array(outcome.measurement.mean) - outcome.prediction) / np.array(
        outcome.measurement.stderr
    )
    np.testing.assert_allclose(outcome.details["zscores"], zscores, rtol=1e-9)
