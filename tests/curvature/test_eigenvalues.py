"""hessian_eigenvalues against the dense autograd Hessian (MSE and cross-entropy)."""

from __future__ import annotations

import pytest
import torch

from dltheory.curvature import hessian_eigenvalues

from .conftest import mse, small_net


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_top5_to_1e8(problem, which):
    model, loss_fn, x, y, H = problem
    exact = torch.linalg.eigvalsh(H)
    key = {"largest": -exact, "smallest": exact, "magnitude": -exact.abs()}[which]
    expected = exact[torch.argsort(key)[:5]]
    # tol 1e-9 certifies |theta - lambda| <= 1e-9 |theta|, inside the 1e-8 asked for.
    r = hessian_eigenvalues(model, loss_fn, (x, y), k=5, which=which, tol=1e-9)
    assert r.converged
    assert torch.allclose(r.eigenvalues, expected, rtol=1e-8, atol=0)
    assert r.eigenvectors is None and r.n_matvecs <= H.shape[0]


def test_negative_eigenvalues_of_a_nonconvex_loss(problem):
    model, loss_fn, x, y, H = problem
    exact = torch.linalg.eigvalsh(H)
    assert exact[0] < 0  # the tanh net away from a minimum is not convex
    r = hessian_eigenvalues(
        model, loss_fn, (x, y), k=2, which="smallest", tol=1e-9, return_eigenvectors=True
    )
    assert r.eigenvalues[0] < 0
    assert r.eigenvalues[0].item() == pytest.approx(exact[0].item(), rel=1e-8)
    v = r.eigenvectors[:, 0]
    assert float(v @ H @ v) == pytest.approx(exact[0].item(), rel=1e-8)


def test_k_larger_than_parameter_count():
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="k must be at most the number of parameters 51"):
        hessian_eigenvalues(small_net(0), mse, (x, y), k=52)
