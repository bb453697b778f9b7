"""GGN operator against dense J^T H_out J."""

from __future__ import annotations

import torch

from dltheory.curvature import GGNOperator

from .conftest import mse, small_net


def dense_jacobian(model, x):
    """(N, C, P) per-sample Jacobians of the outputs, by torch.func.jacrev."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(theta):
        params = {
            n: c.view(s) for n, c, s in zip(names, torch.split(theta, sizes), shapes, strict=True)
        }
        return torch.func.functional_call(model, params, (x,))

    return torch.func.jacrev(f)(theta0), f(theta0)


def test_ggn_matches_dense(problem):
    model, loss_fn, x, y, _ = problem
    J, out = dense_jacobian(model, x)
    H_out = torch.autograd.functional.hessian(lambda o: loss_fn(o, y), out.detach())
    n, c, p = J.shape
    G = J.reshape(n * c, p).T @ H_out.reshape(n * c, n * c) @ J.reshape(n * c, p)
    op = GGNOperator(model, loss_fn, [(x[:9], y[:9]), (x[9:], y[9:])])
    assert torch.allclose(op.dense(), G, rtol=0, atol=1e-10 * float(G.abs().max()))


def test_mse_ggn_is_jtj_over_n():
    model = small_net(1)
    x = torch.randn(12, 4, dtype=torch.float64)
    y = torch.randn(12, 3, dtype=torch.float64)
    J, _ = dense_jacobian(model, x)
    JtJ = torch.einsum("ncp,ncq->pq", J, J) / 12
    G = GGNOperator(model, mse, (x, y)).dense()
    assert torch.allclose(G, JtJ, atol=1e-12)
    assert torch.linalg.eigvalsh(G).min() > -1e-12  # PSD
