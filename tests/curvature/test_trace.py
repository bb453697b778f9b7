"""Hutch++ trace against known traces, in its own standard errors."""

from __future__ import annotations

import pytest
import torch

from dltheory.curvature import hessian_trace, hutchpp_trace


def _quadratic(n: int, eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return Q @ torch.diag(eigenvalues) @ Q.T


def test_within_five_standard_errors_over_seeds():
    # 5 outliers on a bulk with negative values: the deflated remainder is random.
    lam = torch.cat([torch.tensor([50.0, 30.0, 20.0, 10.0, 5.0]), torch.linspace(-1, 2, 295)])
    A = _quadratic(300, lam.double())
    exact = float(lam.sum())
    z = []
    for seed in range(20):
        r = hutchpp_trace(lambda v: A @ v, 300, n_matvecs=60, seed=seed)
        assert r.n_matvecs == 60 and r.stderr > 0
        assert abs(r.estimate - exact) < 5 * r.stderr
        z.append((r.estimate - exact) / r.stderr)
    z = torch.tensor(z)
    # The stated error is honest: z-scores have mean ~0 (5 s.e. of a mean of 20).
    assert abs(float(z.mean())) < 5 / 20**0.5


def test_hessian_trace_of_least_squares():
    # L = 1/(2N) ||X w - y||^2 has H = X^T X / N, trace ||X||_F^2 / N.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 30, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(30, 1, bias=False).double()
    mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()  # noqa: E731
    r = hessian_trace(lin, mse, (x, torch.zeros(40, 1, dtype=torch.float64)), n_matvecs=30)
    exact = float((x**2).sum() / 40)
    assert abs(r.estimate - exact) < 5 * r.stderr


def test_small_operator_is_exact():
    A = _quadratic(8, torch.arange(8.0, dtype=torch.float64))
    r = hutchpp_trace(lambda v: A @ v, 8, n_matvecs=30)
    assert r.estimate == pytest.approx(28.0, rel=1e-12) and r.stderr == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="n_matvecs must be an integer >= 6"):
        hutchpp_trace(lambda v: v, 10, n_matvecs=3)
    with pytest.raises(TypeError, match="matvec must be a callable"):
        hutchpp_trace(None, 10)
    with pytest.raises(ValueError, match="matvec must be finite"):
        hutchpp_trace(lambda v: v * float("nan"), 100, n_matvecs=30)
