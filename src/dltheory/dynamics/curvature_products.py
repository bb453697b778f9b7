"""Extreme eigenvalues of the empirical NTK and of the loss Hessian, matrix-free.

Both by Lanczos (:func:`dltheory.curvature.lanczos_eigenpairs`, certified by the
residual ||A y - theta y||, Parlett 1998, Thm. 4.5.1) on products that never form a
Jacobian:

* NTK-vector products Theta v = J (J^T v): one vjp of f(X) (linearised once and reused)
  and one jvp, about 3 forward passes each, memory O(N k + P)
  (:class:`dltheory.finite.ntk_vector_products.NTKOperator`);
* Hessian-vector products of the training loss by
  :class:`dltheory.curvature.HessianOperator` (its linearised or cached-graph products,
  about 2-3 gradients each, memory O(P) beside the graph).

Models are measured per :mod:`dltheory.finite.model_function` (inputs of any shape,
copies of buffers, BatchNorm in train mode by its batch statistics, random modules
refused), so nothing here changes the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..curvature import HessianOperator
from ..curvature.lanczos import EigenResult, lanczos_eigenpairs
from ..finite.functional_model import FunctionalModel
from ..finite.ntk_vector_products import NTKOperator

__all__ = ["LossHessian", "default_tol", "loss_hessian_eigenvalues", "ntk_eigenvalues"]


def default_tol(dtype: torch.dtype) -> float:
    """A relative residual tolerance the working precision can certify.

    Lanczos residuals cannot fall below about eps ||A||: 1e-8 in float64, 1e-4 in
    float32 (eps = 1.2e-7, with room for the products' own rounding).
    """
    return 1e-8 if dtype == torch.float64 else 1e-4


def ntk_eigenvalues(
    fm: FunctionalModel,
    x: torch.Tensor,
    *,
    which: str = "largest",
    tol: float | None = None,
    v0: torch.Tensor | None = None,
    max_matvecs: int | None = None,
) -> EigenResult:
    """The top (or bottom) eigenpair of the empirical NTK Theta (N k x N k) on x.

    Lanczos on NTK-vector products; ``v0`` warm-starts it (e.g. the eigenvector at the
    previous training step). The Krylov space holds at most N k vectors, so with
    ``max_matvecs`` >= N k the result is exact up to rounding.
    """
    op = NTKOperator(fm, x)
    dim = op.shape[0]
    return lanczos_eigenpairs(
        op.matvec,
        dim,
        k=1,
        which=which,
        tol=default_tol(op.dtype) if tol is None else tol,
        v0=v0,
        max_matvecs=max_matvecs if max_matvecs is not None else min(dim, 300),
        dtype=op.dtype,
        device=op.device,
        return_eigenvectors=True,
    )


class _PolicyModule(nn.Module):
    """``fm`` as a module holding each trainable parameter once (a ParameterList in
    ``fm.names`` order, so flat vectors match the model's ``named_parameters``).

    HessianOperator evaluates its model by ``functional_call``, which on a module used
    twice (tied weights) restores the wrong tensor afterwards (torch 2.13); evaluated
    through this wrapper the user's model is bound slot by slot by
    :class:`~dltheory.finite.functional_model.FunctionalModel` and never changed.
    """

    def __init__(self, fm: FunctionalModel) -> None:
        super().__init__()
        self.fm = [fm]  # a list: not registered as a submodule
        self.theta = nn.ParameterList([nn.Parameter(fm.params[n].clone()) for n in fm.names])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fm = self.fm[0]
        return fm(dict(zip(fm.names, self.theta, strict=True)), x)


class LossHessian:
    """The Hessian of L(theta) = loss_fn(f(x; theta), y) as a (P, P) operator.

    A thin view of :class:`dltheory.curvature.HessianOperator` (the project's one
    implementation of Hessian-vector products) on the full batch (x, y); the model's
    output is reshaped to the targets' shape when they hold as many numbers.
    ``matvec(v)`` = H v.
    """

    def __init__(
        self,
        fm: FunctionalModel,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> None:
        self.fm, self.x, self.y = fm, x, y

        def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            if out.numel() == target.numel():
                out = out.reshape(target.shape)
            return loss_fn(out, target)

        self._op = HessianOperator(_PolicyModule(fm), loss, (x, y))
        self.theta = self._op.theta
        self.shape = self._op.shape
        self.dtype, self.device = self._op.dtype, self._op.device

    @property
    def n_matvecs(self) -> int:
        return self._op.n_matvecs

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._op.matvec(v)


def loss_hessian_eigenvalues(
    fm: FunctionalModel,
    loss_fn: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tol: float | None = None,
    v0: torch.Tensor | None = None,
    max_matvecs: int | None = None,
) -> EigenResult:
    """The top eigenpair of the loss Hessian by Lanczos on Hessian-vector products."""
    op = LossHessian(fm, loss_fn, x, y)
    return lanczos_eigenpairs(
        op.matvec,
        op.shape[0],
        k=1,
        which="largest",
        tol=default_tol(op.dtype) if tol is None else tol,
        v0=v0,
        max_matvecs=max_matvecs,
        dtype=op.dtype,
        device=op.device,
        return_eigenvectors=True,
    )
