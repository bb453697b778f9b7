"""Extreme eigenvalues of a model's loss Hessian (Lanczos on Hessian-vector products)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._checks import check_positive, message
from ._data import FlatParameters
from .hessian import HessianOperator
from .lanczos import EigenResult, Which, lanczos_eigenpairs

__all__ = ["hessian_eigenvalues"]


def hessian_eigenvalues(
    model: Any,
    loss_fn: Callable,
    data: Any,
    k: int = 5,
    which: Which = "largest",
    tol: float = 1e-6,
    v0: torch.Tensor | None = None,
    return_eigenvectors: bool = False,
    *,
    max_matvecs: int | None = None,
    seed: int | torch.Generator | None = 0,
    max_basis: int | None = None,
    memory_budget: float | None = None,
) -> EigenResult:
    """Top (or bottom) k eigenpairs of the loss Hessian, each certified by its residual.

    Thick-restart Lanczos with deflation (:func:`lanczos_eigenpairs`) on
    :class:`HessianOperator` products; it stops when every requested Ritz pair has a
    true residual ||H v - theta v|| <= max(tol |theta|, floor), floor about
    10 eps(dtype) ||H||, which bounds the error |theta - lambda| by the same amount
    (Parlett 1998, Thm. 4.5.1). Repeated eigenvalues come out with their multiplicity.

    Args:
        model, loss_fn, data: as for :class:`HessianOperator`.
        k: number of eigenvalues.
        which: "largest", "smallest" (algebraic; negative eigenvalues of a
            non-convex loss come out here) or "magnitude".
        tol: relative residual tolerance.
        v0: warm start (P,), e.g. the top eigenvector at the previous training step.
        return_eigenvectors: also return the (P, k) eigenvectors.
        max_matvecs: budget of Hessian-vector products (default as
            :func:`lanczos_eigenpairs`).
        seed: random start when ``v0`` is None.
        max_basis: basis size at which Lanczos restarts (memory: 2 max_basis + 4
            vectors of P numbers; default as :func:`lanczos_eigenpairs`).
        memory_budget: bytes beyond the model's own forward/backward: half (at most
            the default basis) goes to the Lanczos basis, the rest to the products,
            which then drop caching and split batches as needed
            (:class:`HessianOperator`'s ``memory_budget``).

    Returns:
        :class:`EigenResult` (eigenvalues, eigenvectors or None, residuals, n_matvecs,
        converged).

    >>> lin = torch.nn.Linear(3, 1, bias=False).double()
    >>> x = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()
    >>> r = hessian_eigenvalues(lin, mse, (x, torch.zeros(3, 1)), k=2, tol=1e-12)
    >>> [round(float(e), 12) for e in r.eigenvalues]  # diag(x^T x) / N = (1, 4, 9) / 3
    [3.0, 1.333333333333]
    """
    basis_budget = None
    if memory_budget is not None:
        memory_budget = check_positive("memory_budget", memory_budget)
        flat = FlatParameters(model)
        vector = flat.dim * flat.theta.element_size()
        wanted = k if isinstance(k, int) else 1  # k itself is checked below
        default = max(min(300, (1 << 25) // flat.dim), 20, 2 * wanted + 2) + wanted + 5
        basis_budget = min(memory_budget / 2, default * vector)
        del flat
    H = HessianOperator(
        model,
        loss_fn,
        data,
        memory_budget=None if basis_budget is None else memory_budget - basis_budget,
    )
    if isinstance(k, int) and not isinstance(k, bool) and k > H.shape[0]:
        raise ValueError(
            message(
                "k",
                f"at most the number of parameters {H.shape[0]}",
                k,
                "Ask for fewer eigenvalues",
            )
        )
    return lanczos_eigenpairs(
        H.matvec,
        H.shape[0],
        k=k,
        which=which,
        tol=tol,
        v0=v0,
        max_matvecs=max_matvecs,
        seed=seed,
        dtype=H.dtype,
        device=H.device,
        return_eigenvectors=return_eigenvectors,
        max_basis=max_basis,
        memory_budget=basis_budget,
    )
