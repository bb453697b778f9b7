"""Linearised predictions: exact on linear models, GD / flow / infinity, edges."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from dltheory import MLP
from dltheory.dynamics import linearized_outputs, linearized_prediction, train


def _linear_model(seed=0, k=2):
    gen = torch.Generator().manual_seed(seed)
    net = nn.Linear(3, k).double()
    with torch.no_grad():
        net.weight.copy_(torch.randn(k, 3, generator=gen))
        net.bias.copy_(torch.randn(k, generator=gen))
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    xt = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(5, k, generator=gen, dtype=torch.float64)
    return net, x, xt, y


def test_linearized_gd_equals_explicit_gd_on_linear_model():
    net, x, xt, y = _linear_model()
    steps = [0, 1, 7, 40]
    pred = linearized_outputs(net, x, y, xt, lr=0.3, t=steps)
    outs_train, outs_test = [], []
    for s in range(max(steps) + 1):
        if s in steps:
            with torch.no_grad():
                outs_train.append(net(x).clone())
                outs_test.append(net(xt).clone())
        train(net, x, y, lr=0.3, steps=1, track=())
    # an exactly linear model equals its linearisation: only float64 round-off remains
    assert float((pred.train - torch.stack(outs_train)).abs().max()) < 1e-10
    assert float((pred.test - torch.stack(outs_test)).abs().max()) < 1e-10


def test_linearized_flow_equals_parameter_space_flow_on_linear_model():
    net, x, xt, y = _linear_model(1, k=1)
    n = x.shape[0]
    # independent reference: theta(t) - theta* evolves by exp(-eta t H), H = J^T J / N,
    # in parameter space (a different matrix from the function-space Theta = J J^T).
    jac = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1).numpy()
    jt = torch.cat([xt, torch.ones(4, 1, dtype=torch.float64)], dim=1).numpy()
    theta0 = np.concatenate([net.weight.detach().numpy().ravel(), net.bias.detach().numpy()])
    grad_at = lambda th: jac.T @ (jac @ th - y.numpy().ravel()) / n  # noqa: E731
    h = jac.T @ jac / n
    lr, t = 0.7, 3.5
    # d theta/dt = -lr (H theta - b): theta(t) = theta0 - (I - e^{-lr H t}) H^+ grad(theta0)
    evals, evecs = np.linalg.eigh(h)
    live = evals > 1e-12 * evals.max()
    phi = np.where(live, -np.expm1(-lr * t * evals) / np.where(live, evals, 1), lr * t)
    theta_t = theta0 - evecs @ (phi * (evecs.T @ grad_at(theta0)))
    ref = scipy.linalg.expm(-lr * t * h)  # cross-check of the eigen formula
    assert np.abs(ref - evecs @ np.diag(np.exp(-lr * t * evals)) @ evecs.T).max() < 1e-12
    pred = linearized_outputs(net, x, y, xt, lr=lr, t=t, dynamics="flow")
    assert np.abs(pred.train.numpy().ravel() - jac @ theta_t).max() < 1e-10
    assert np.abs(pred.test.numpy().ravel() - jt @ theta_t).max() < 1e-10


def test_infinity_is_kernel_regression():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    theta = a @ a.T + torch.eye(6, dtype=torch.float64)
    kt = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(6, generator=gen, dtype=torch.float64)
    f0, f0t = torch.zeros(6, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for dyn in ("gd", "flow"):
        lr = 0.9 * 2 * 6 / float(torch.linalg.eigvalsh(theta)[-1])
        pred = linearized_prediction(
            theta, y, f0, ntk_test_train=kt, f0_test=f0t, lr=lr, dynamics=dyn
        )
        assert float((pred.train - y).abs().max()) < 1e-12
        expected = kt @ torch.linalg.solve(theta, y)
        assert float((pred.test - expected).abs().max()) < 1e-10


def test_trained_wide_net_tracks_linearised_prediction():
    # width 4096, one hidden layer: the relative deviation of the trained net from its
    # linearisation is O(n^-1/2) (Lee et al. 2019, Thm 2.1); 2 % is the bound.
    spec = MLP(1, "tanh", c_w=1.0, c_b=0.1)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    xt = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(x[:, :1] * 2)
    net = spec.sample(4096, in_dim=2, seed=0, dtype=torch.float64)
    lam_max = float(torch.linalg.eigvalsh(spec.kernel(x).ntk)[-1])
    lr = 6 / lam_max  # (eta / N) lambda_max = 1: fast, stable
    times = [0, 5, 20, 60]
    pred = linearized_outputs(net, x, y, xt, lr=lr, t=times)
    done = 0
    for i, s in enumerate(times):
        train(net, x, y, lr=lr, steps=s - done, track=())
        done = s
        with torch.no_grad():
            for got, want in ((net(x), pred.train[i]), (net(xt), pred.test[i])):
                rel = float(torch.linalg.norm(got - want) / torch.linalg.norm(want))
                assert rel < 0.02, (s, rel)


def test_errors():
    theta = torch.eye(2, dtype=torch.float64)
    y = torch.ones(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"lr must be > 0\. Got 0\.0"):
        linearized_prediction(theta, y, y, lr=0.0)
    with pytest.raises(ValueError, match="ntk_train_train must be a \\(2, 2\\) kernel block"):
        linearized_prediction(torch.eye(3), y, y)
    with pytest.raises(ValueError, match="f0_train must be of the shape of y_train"):
        linearized_prediction(theta, y, torch.ones(3))
    with pytest.raises(ValueError, match="lr must be < 2N / lambda_max"):
        linearized_prediction(theta, y, 0 * y, lr=5.0)
    with pytest.raises(ValueError, match="t must be whole numbers of steps"):
        linearized_prediction(theta, y, 0 * y, t=1.5)
    with pytest.raises(ValueError, match="t must be None or times >= 0"):
        linearized_prediction(theta, y, 0 * y, t=-1)
    with pytest.raises(ValueError, match="f0_test must be given together with ntk_test_train"):
        linearized_prediction(theta, y, y, ntk_test_train=theta)
    with pytest.raises(ValueError, match="y_train must be non-empty"):
        linearized_prediction(theta, torch.ones(0), y)
    with pytest.raises(ValueError, match="dynamics must be one of 'gd', 'flow'"):
        linearized_prediction(theta, y, y, dynamics="euler")
