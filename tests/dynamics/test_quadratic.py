"""QuadraticModel: dense references, the eps^2 law, the catapult of a real net's expansion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from dltheory.dynamics import QuadraticModel


def _random_problem(seed=1, n=4, p=12):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(n, p, generator=g, dtype=torch.float64)
    a = torch.randn(n, p, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return phi, (a + a.transpose(1, 2)) / 2, y


def test_first_order_solution_error_is_order_eps_squared():
    phi, psi, y = _random_problem()
    lr = 1.0 * 4 / float(torch.linalg.eigvalsh(phi @ phi.T)[-1])  # half the linear limit
    eps = np.logspace(-3, -1.5, 5)
    theta_err, feat_err = [], []
    for e in eps:
        qm = QuadraticModel(phi, psi, eps=float(e))
        sol = qm.first_order_solution(y, lr)
        run = qm.gradient_descent(y, lr, 3000)
        # the GD run has converged far below the O(eps^2) errors measured
        assert float(run.loss[-1]) < 1e-25
        theta_err.append(float((run.theta - sol.theta).norm()))
        exact_change = qm.features(run.theta) - qm.features(torch.zeros(12))
        feat_err.append(float((exact_change - sol.feature_change).norm()))
    slope = np.polyfit(np.log(eps), np.log(theta_err), 1)[0]
    assert abs(slope - 2) < 0.2
    assert abs(np.polyfit(np.log(eps), np.log(feat_err), 1)[0] - 2) < 0.2
    # the zeroth-order answer theta^F alone is only O(eps) accurate
    qm = QuadraticModel(phi, psi, eps=1e-3)
    sol = qm.first_order_solution(y, lr)
    assert float((qm.gradient_descent(y, lr, 3000).theta - sol.theta_f).norm()) > 1e2 * theta_err[0]


def _tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1))


def _flat_fn(net, x):
    sizes = [(n, p.shape) for n, p in net.named_parameters()]

    def f(flat):
        ps, i = {}, 0
        for n, shape in sizes:
            k = math.prod(shape)
            ps[n] = flat[i : i + k].reshape(shape)
            i += k
        return functional_call(net, ps, (x,)).reshape(-1)

    theta0 = torch.cat([p.detach().double().reshape(-1) for p in net.parameters()])
    return f, theta0


def test_from_model_matches_dense_hessians():
    net = _tiny_net()  # float32 module: the expansion is taken in float64 anyway
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    qm = QuadraticModel.from_model(net, x)
    f, theta0 = _flat_fn(net.double(), x)
    hess = torch.stack(
        [torch.autograd.functional.hessian(lambda q, i=i: f(q)[i], theta0) for i in range(5)]
    )
    jac = torch.autograd.functional.jacobian(f, theta0)
    d = torch.randn(theta0.numel(), generator=g, dtype=torch.float64)
    # dense float64 references: agreement to rounding (1e-12 on O(1) entries)
    torch.testing.assert_close(qm.features(d), jac + hess @ d, rtol=0, atol=1e-12)
    expected = f(theta0) + jac @ d + 0.5 * torch.einsum("p,npq,q->n", d, hess, d)
    torch.testing.assert_close(qm.outputs(d), expected, rtol=0, atol=1e-12)
    # Taylor remainder is O(s^3): the fitted log-log slope is 3 (0.3 for the s^4 term)
    s = np.array([0.1, 0.05, 0.025, 0.0125])
    err = [float((f(theta0 + t * d) - qm.outputs(t * d)).abs().max()) for t in s]
    assert abs(np.polyfit(np.log(s), np.log(err), 1)[0] - 3) < 0.3


def test_quadratic_model_of_relu_net_catapults_where_linearisation_diverges():
    torch.manual_seed(0)
    m, d, n = 256, 5, 4
    net = torch.nn.Sequential(torch.nn.Linear(d, m), torch.nn.ReLU(), torch.nn.Linear(m, 1))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    qm = QuadraticModel.from_model(net, x)
    lam0 = float(torch.linalg.eigvalsh(qm.ntk(torch.zeros(qm.n_params)))[-1])
    lr = 1.5 * 2 * n / lam0  # 1.5 times the linear model's threshold 2N / lambda_max
    quad = qm.gradient_descent(y, lr, 120, track_ntk=True)
    assert not quad.diverged
    assert float(quad.loss.max()) > 10 * float(quad.loss[0])  # the spike
    assert float(quad.loss[-1]) < 1e-3 * float(quad.loss[0])  # then convergence
    assert float(quad.ntk_max[-1]) * lr / n < 2  # lambda fell below 2N / lr
    # the linearisation (eps = 0) at the same lr grows like |1 - lr lambda / N|^t = 2^t
    lin = QuadraticModel.from_model(net, x, eps=0.0).gradient_descent(y, lr, 120)
    assert lin.diverged or float(lin.loss[-1]) > 1e20 * float(lin.loss[0])


@pytest.mark.parametrize(
    ("call", "exc", "text"),
    [
        (lambda p, s, y: QuadraticModel(p, s[:, :3]), ValueError, "psi must be of shape"),
        (
            lambda p, s, y: QuadraticModel(p, s + torch.randn(12)),
            ValueError,
            "psi must be symmetric",
        ),
        (lambda p, s, y: QuadraticModel(p, s, eps=math.nan), ValueError, "eps must be finite"),
        (lambda p, s, y: QuadraticModel(p[0], s), ValueError, "phi must be a 2-D array"),
        (
            lambda p, s, y: QuadraticModel(p, s).outputs(torch.zeros(3)),
            ValueError,
            "theta must be of length P = 12",
        ),
        (
            lambda p, s, y: QuadraticModel(p, s).gradient_descent(y[:2], 0.1, 3),
            ValueError,
            "y must be of length N = 4",
        ),
        (
            lambda p, s, y: QuadraticModel(p, s).gradient_descent(y, 0.0, 3),
            ValueError,
            "lr must be > 0",
        ),
        (
            lambda p, s, y: QuadraticModel(p, s).first_order_solution(y, 1e3),
            ValueError,
            "lr must be < 2N / lambda_max",
        ),
        (
            lambda p, s, y: QuadraticModel.from_model("net", p),
            TypeError,
            "model must be a torch.nn.Module",
        ),
    ],
)
def test_errors(call, exc, text):
    phi, psi, y = _random_problem()
    with pytest.raises(exc, match=text.replace("(", r"\(").replace(")", r"\)")):
        call(phi, psi, y)


def test_divergence_is_an_outcome():
    phi, psi, y = _random_problem()
    run = QuadraticModel(phi, psi, eps=1.0).gradient_descent(y, 50.0, 200)
    assert run.diverged and run.loss.numel() < 201


def test_overflow_and_hopeless_runs_are_refused_in_one_line():
    phi, psi, y = _random_problem()
    qm = QuadraticModel(phi, psi, eps=1e-2)
    big = torch.full((phi.shape[1],), 1e300, dtype=torch.float64)
    for call in (qm.outputs, qm.ntk, lambda t: qm.gradient(t, y)):
        with pytest.raises(ValueError, match="small enough for the quadratic expansion"):
            call(big)
    with pytest.raises(ValueError, match="y or theta0 must be small enough"):
        qm.gradient_descent(y * 1e300, 0.1, 3)
    with pytest.raises(ValueError, match="steps must be small enough for the memory budget"):
        qm.gradient_descent(y, 0.1, 10**12)
    # lr = 1e-300: linear GD would need ~1e301 steps; refused before the loop
    with pytest.raises(ValueError, match="lr must be large enough for linear GD to converge"):
        qm.first_order_solution(y, 1e-300)
