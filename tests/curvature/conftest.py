"""Small nets with dense float64 Hessians from torch.autograd.functional.hessian."""

from __future__ import annotations

import pytest
import torch

from dltheory.curvature import HessianOperator


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The project's MSE: 1/(2N) sum_i ||f(x_i) - y_i||^2."""
    return 0.5 * ((out - target) ** 2).sum(1).mean()


def small_net(seed: int, d_in: int = 4, width: int = 6, d_out: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, width), torch.nn.Tanh(), torch.nn.Linear(width, d_out)
    ).double()


def dense_hessian(model: torch.nn.Module, loss_fn, x, y) -> torch.Tensor:
    """The reference: autograd.functional.hessian of the loss as a function of theta."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(theta):
        params = {
            n: c.view(s) for n, c, s in zip(names, torch.split(theta, sizes), shapes, strict=True)
        }
        return loss_fn(torch.func.functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss_of, theta0)


@pytest.fixture(params=["mse", "cross_entropy"])
def problem(request):
    """(model, loss_fn, x, y, dense H) on a 4-6-3 tanh net with 20 samples."""
    g = torch.Generator().manual_seed(7)
    model = small_net(3)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    if request.param == "mse":
        y = torch.randn(20, 3, generator=g, dtype=torch.float64)
        loss_fn = mse
    else:
        y = torch.randint(0, 3, (20,), generator=g)
        loss_fn = torch.nn.functional.cross_entropy
    return model, loss_fn, x, y, dense_hessian(model, loss_fn, x, y)


@pytest.fixture
def operator(problem):
    model, loss_fn, x, y, _ = problem
    return HessianOperator(model, loss_fn, (x, y))
