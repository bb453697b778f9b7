"""The Lanczos relation's residual set stays small (memory follows the basis, not the
number of products)."""

import pytest
import torch

from dltheory.curvature import lanczos
from dltheory.curvature.lanczos import _WORK, lanczos_eigenpairs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_residual_set_does_not_grow_with_the_products(monkeypatch, dtype):
    dim = 20_000
    g = torch.Generator().manual_seed(0)
    d = torch.randn(dim, generator=g, dtype=torch.float64) * 0.3
    d[:7] = torch.tensor([2.64, 2.39, 2.25, 2.24, 2.18, 2.0, 1.9], dtype=torch.float64)
    d = d.to(dtype)
    sizes = []
    real = lanczos._Basis.add

    def add(self, v):
        real(self, v)
        sizes.append((len(self.V), len(self.Q)))

    monkeypatch.setattr(lanczos._Basis, "add", add)
    max_basis = 16
    r = lanczos_eigenpairs(lambda v: d * v, dim, k=5, tol=1e-3, dtype=dtype, max_basis=max_basis)
    assert r.converged
    # The exact top five, each within its certified residual (Weyl / Bauer-Fike for a
    # symmetric operator: |theta - lambda| <= ||r||).
    top = torch.tensor([2.64, 2.39, 2.25, 2.24, 2.18], dtype=torch.float64)
    got = r.eigenvalues.to(torch.float64)
    assert (got - top).abs().le(r.residuals.to(torch.float64) + 1e-6).all()
    assert r.n_matvecs > max_basis  # at least one restart happened
    # q: one Krylov residual, plus one per random vector added for multiplicities (at
    # most k of those); before the fix q grew by one per product.
    assert max(q for _, q in sizes) <= 1 + 5
    assert max(m + q for m, q in sizes) <= max_basis + 1 + 5


def test_memory_budget_bounds_the_vectors_held(monkeypatch):
    dim = 50_000
    d = torch.linspace(0.0, 1.0, dim, dtype=torch.float32)
    d[-5:] = torch.tensor([1.5, 1.6, 1.7, 1.8, 1.9])
    held = []
    real = lanczos._Basis.add

    def add(self, v):
        real(self, v)
        held.append(len(self.V) + len(self.Q))

    monkeypatch.setattr(lanczos._Basis, "add", add)
    budget = 24 * 4 * dim  # bytes of 24 float32 vectors
    lanczos_eigenpairs(lambda v: d * v, dim, k=3, tol=1e-4, dtype=torch.float32,
                       memory_budget=budget, max_matvecs=120)  # fmt: skip
    # the basis gets (budget / vector - _WORK) / 2 vectors, the residual set at most as many
    assert max(held) <= 24 - _WORK


def test_residual_set_is_compressed_at_each_restart(monkeypatch):
    # A float32 operator whose Ritz-residual expansions mix the residual directions:
    # without the compression at restarts q grew by one per product (20 after 35).
    dim = 200_000
    g = torch.Generator().manual_seed(0)
    d = torch.randn(dim, generator=g) * 0.3
    d[:7] = torch.tensor([2.64, 2.39, 2.25, 2.24, 2.18, 2.0, 1.9])
    sizes = []
    real = lanczos._Basis.add

    def add(self, v):
        real(self, v)
        sizes.append((len(self.V), len(self.Q)))

    monkeypatch.setattr(lanczos._Basis, "add", add)
    r = lanczos_eigenpairs(lambda v: d * v, dim, k=5, tol=1e-4, dtype=torch.float32, max_basis=14)
    assert r.converged
    top = torch.tensor([2.64, 2.39, 2.25, 2.24, 2.18])
    assert (r.eigenvalues - top).abs().le(r.residuals + 1e-5).all()
    assert max(q for _, q in sizes) <= 14  # at most max_basis residual directions
