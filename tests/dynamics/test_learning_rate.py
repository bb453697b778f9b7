"""max_stable_lr: dense references, and GD 1 % below / above the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.dynamics import max_stable_lr, train


def _data(n=8, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), g


def test_linear_regression_threshold_and_gd_on_both_sides():
    x, g = _data(n=20, d=5)
    y = torch.randn(20, 1, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(5, 1).double()
    r = max_stable_lr(lin, x, y)
    # independent dense reference: Hessian of ||Xw + b - y||^2 / (2N) is X1^T X1 / N
    x1 = np.hstack([x.numpy(), np.ones((20, 1))])
    top = np.linalg.eigvalsh(x1.T @ x1 / 20)[-1]
    assert r.ntk_lr == pytest.approx(2 / top, rel=1e-12)  # eigvalsh backward error ~1e-15
    assert r.hessian_lr == pytest.approx(2 / top, rel=1e-7)  # Lanczos tol 1e-8 on lambda
    assert r.hessian_converged and r.hessian_error <= 1e-8
    w = np.zeros(6)
    for factor, converges in [(0.99, True), (1.01, False)]:
        eta = factor * r.ntk_lr
        w = np.zeros(6)
        loss0 = 0.5 * np.mean(y.numpy()[:, 0] ** 2)
        for _ in range(3000):  # GD on the same loss, in closed form
            w -= eta * x1.T @ (x1 @ w - y.numpy()[:, 0]) / 20
        best = np.linalg.lstsq(x1, y.numpy()[:, 0], rcond=None)[0]
        loss = 0.5 * np.mean((x1 @ w - y.numpy()[:, 0]) ** 2)
        floor = 0.5 * np.mean((x1 @ best - y.numpy()[:, 0]) ** 2)
        if converges:  # the top mode contracts by 0.98 per step: 0.98^3000 ~ 1e-26
            assert loss - floor < 1e-12 * loss0
        else:  # it grows by 1.02 per step: 1.02^3000 ~ 1e25
            assert loss > 1e10 * loss0


def test_wide_net_top_mode_contracts_below_and_grows_above():
    spec = MLP(depth=1, activation="relu", c_w=2.0)
    x, g = _data()
    net = spec.sample(width=4096, in_dim=4, seed=1).double()
    with torch.no_grad():
        f0 = net(x)
    # targets near the initial outputs keep the NTK's motion (~|r| / sqrt(width)) far
    # below the 1 % margin, so the linearised prediction is the test's reference
    y = f0 + 1e-3 * torch.randn(8, 1, generator=g, dtype=torch.float64)
    r = max_stable_lr(net, x, y)
    assert r.hessian_lr == pytest.approx(r.ntk_lr, rel=1e-3)  # H = GGN + O(|r|)
    # the infinite-width value: width 4096 fluctuates by O(1/sqrt(4096)) ~ 2 %
    assert max_stable_lr(spec, x).ntk_lr == pytest.approx(r.ntk_lr, rel=0.1)
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(net, p, (x,)).reshape(-1))(
        {k: v.detach() for k, v in net.named_parameters()}
    )
    j = torch.cat([v.reshape(8, -1) for v in jac.values()], 1)
    u = torch.linalg.eigh(j @ j.T)[1][:, -1]
    steps = 150
    for factor in (0.99, 1.01):
        model = spec.sample(width=4096, in_dim=4, seed=1).double()
        p0 = float(u @ (f0 - y)[:, 0])
        train(model, x, y, lr=factor * r.ntk_lr, steps=steps, track=("loss",), every=steps)
        with torch.no_grad():
            ratio = abs(float(u @ (model(x) - y)[:, 0]) / p0)
        # linear theory: |1 - factor * 2|^steps = 0.98^150 = 0.048 or 1.02^150 = 19.5
        predicted = abs(1 - 2 * factor) ** steps
        assert abs(math.log(ratio) - math.log(predicted)) < 0.1 * abs(math.log(predicted))
        assert (ratio < 1) == (factor < 1)


@pytest.mark.parametrize(
    ("args", "exc", "text"),
    [
        (("net", np.eye(2), np.zeros(2)), TypeError, "model must be a torch.nn.Module"),
        ((None, np.eye(2), None), ValueError, "y must be the (N, k) targets"),
        ((None, np.eye(2), np.zeros(3)), ValueError, "y must be of the model's output shape"),
        ((None, np.ones(2), np.zeros(2)), ValueError, "x must be inputs the model maps"),
        ((None, np.ones((2, 3)), np.zeros(2)), ValueError, "x must be inputs the model accepts"),
        ((None, "ab", np.zeros(2)), TypeError, "x must be a torch.Tensor or NumPy array"),
        ((None, [[np.nan, 0.0]], np.zeros(1)), ValueError, "x must be finite"),
    ],
)
def test_errors(args, exc, text):
    model = torch.nn.Linear(2, 1).double() if args[0] is None else args[0]
    with pytest.raises(exc) as info:
        max_stable_lr(model, *args[1:])
    assert str(info.value).startswith(text)


def test_loss_must_be_mse():
    with pytest.raises(ValueError, match="loss must be one of 'mse'"):
        max_stable_lr(torch.nn.Linear(2, 1), np.eye(2), np.zeros(2), loss="hinge")


def test_matrix_free_ntk_path_matches_dense():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    net = net.double()
    x, g = _data(n=12, d=3)
    y = torch.randn(12, 2, generator=g, dtype=torch.float64)
    dense = max_stable_lr(net, x, y, hessian=False)
    # a budget below the (24, 82) Jacobian: Lanczos on J (J^T v)
    lanczos = max_stable_lr(net, x, y, tol=1e-10, hessian=False, memory_budget=1000)
    assert dense.ntk_method.startswith("dense") and lanczos.ntk_method.startswith("Lanczos")
    # Lanczos certifies |theta - lambda| <= residual: within its reported relative error
    assert lanczos.ntk_lambda_max == pytest.approx(dense.ntk_lambda_max, rel=1e-9)
    assert lanczos.ntk_error <= 1e-10
    assert math.isnan(lanczos.hessian_lr)
