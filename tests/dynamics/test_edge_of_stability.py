"""Sharpness tracker (against a dense Hessian) and a quick edge of stability on load_digits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from dltheory.dynamics import Sharpness, edge_of_stability_summary, train


def test_sharpness_tracker_matches_dense_hessian_and_warm_starts():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    net = net.double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randn(10, 2, generator=g, dtype=torch.float64)
    tracker = Sharpness(every=2, tol=1e-10)
    traj = train(net, x, y, lr=0.05, steps=4, track=("loss", tracker), every=1)
    values = traj.values["sharpness"]
    assert math.isnan(values[1]) and math.isnan(values[3])  # odd steps: not computed
    # dense reference at the final parameters (step 4)
    params = {k: v.detach() for k, v in net.named_parameters()}
    flat = torch.cat([v.reshape(-1) for v in params.values()])
    sizes = [v.numel() for v in params.values()]

    def loss(theta):
        ps = {
            k: t.reshape(v.shape)
            for (k, v), t in zip(params.items(), torch.split(theta, sizes), strict=True)
        }
        out = torch.func.functional_call(net, ps, (x,))
        return 0.5 * ((out - y) ** 2).sum() / 10

    top = float(torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))[-1])
    # residual <= tol |theta| bounds the eigenvalue error by 1e-10 relative
    assert values[-1] == pytest.approx(top, rel=1e-8)
    assert len(tracker.residuals) == 3 and max(tracker.residuals) <= 1e-10


def test_quick_edge_of_stability_on_digits():
    torch.set_num_threads(1)  # tiny model: one thread is fastest on a shared machine
    data, labels = load_digits(return_X_y=True)
    x = torch.tensor(data[:200] / 16.0, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 0.1)
    y = torch.nn.functional.one_hot(torch.tensor(labels[:200]), 10).float()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 10),
    )
    lr = 0.6
    traj = train(
        net, x, y, lr=lr, steps=900, track=("loss", Sharpness(every=20, tol=1e-3)), every=20
    )
    s = edge_of_stability_summary(
        traj.steps, traj.values["sharpness"], traj.values["loss"], lr, band=0.1, settle=400
    )
    assert s.initial < 0.8 * s.threshold  # starts well below 2/eta
    assert s.sharpened and s.reach_step >= 0  # progressive sharpening up to 2/eta
    assert s.late_max_deviation < 0.1  # then it hovers within 10 % of 2/eta
    assert s.loss_decreased and s.non_monotone


def test_summary_and_tracker_errors():
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        Sharpness(every=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        edge_of_stability_summary([0], [1.0], [1.0], lr=0.0)
    with pytest.raises(ValueError, match="sharpness must be computed at one step"):
        edge_of_stability_summary([0, 1], [np.nan, np.nan], [1.0, 1.0], lr=1.0)
    with pytest.raises(ValueError, match="sharpness must be 1-D and as long"):
        edge_of_stability_summary([0, 1], [1.0], [1.0, 1.0], lr=1.0)
    never = edge_of_stability_summary([0, 1], [0.1, 0.2], [1.0, 0.5], lr=1.0)
    assert never.reach_step == -1 and math.isnan(never.late_mean)
