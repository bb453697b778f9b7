"""The generalised Gauss-Newton operator G = J^T H_out J (matrix-free).

With L(theta) = sum_b (n_b / N) L_b(f(X_b; theta)), the Hessian splits as
H = G + E: G = sum_b (n_b / N) J_b^T (d^2 L_b / d f^2) J_b (J_b = df(X_b)/dtheta) and E
the part with the loss's first derivative times the network's second derivative
(Schraudolph 2002, "Fast curvature matrix-vector products for second-order gradient
descent"; Martens 2020, "New insights and perspectives on the natural gradient
method"). G is positive semi-definite for convex losses; for the project's MSE
1/(2N) sum ||f - y||^2 it is J^T J / N. Models are read as by :class:`HessianOperator`
(any input shape, nothing in the model changes, BatchNorm in train mode with batch
statistics, Dropout in train mode refused).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._checks import message
from ._data import prepare

__all__ = ["GGNOperator"]


class GGNOperator:
    """Matrix-free generalised Gauss-Newton matrix J^T H_out J of the mean loss.

    Same arguments and operator interface as :class:`HessianOperator`
    (``matvec``, ``@``, ``shape``, ``dtype``, ``device``, ``n_matvecs``). One product
    costs a Jacobian-vector product (``torch.func.jvp``), a
    product with the loss's output Hessian, and a vector-Jacobian product.

    >>> lin = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()
    >>> G = GGNOperator(lin, mse, (x, torch.zeros(2, 1)))
    >>> G.dense().tolist()  # J^T J / N
    [[0.5, 0.0], [0.0, 2.0]]
    """

    def __init__(self, model: Any, loss_fn: Callable, data: Any) -> None:
        self._flat, self._batches = prepare(model, loss_fn, data)
        self.loss_fn = loss_fn
        sizes = torch.tensor([x.shape[0] for x, _ in self._batches], dtype=torch.float64)
        self.n_samples = int(sizes.sum())
        self._weights = (sizes / sizes.sum()).tolist()
        self._parts: list[Any] = [None] * len(self._batches)
        self.n_matvecs = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (self._flat.dim, self._flat.dim)

    @property
    def dtype(self) -> torch.dtype:
        return self._flat.dtype

    @property
    def device(self) -> torch.device:
        return self._flat.device

    def _part(self, b: int):
        if self._parts[b] is None:
            x, y = self._batches[b]
            f = self._flat.output_fn(x)
            out, vjp_fn = torch.func.vjp(f, self._flat.theta)
            theta = self._flat.theta

            def jvp_fn(v: torch.Tensor, f=f, theta=theta) -> torch.Tensor:
                return torch.func.jvp(f, (theta,), (v,))[1]

            grad_out = torch.func.grad(lambda o: self.loss_fn(o, y))
            out = out.detach()

            def h_out(u: torch.Tensor) -> torch.Tensor:
                return torch.func.jvp(grad_out, (out,), (u,))[1]

            self._parts[b] = (jvp_fn, h_out, vjp_fn)
        return self._parts[b]

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """G v for v of shape (P,), or G V for V of shape (P, k)."""
        if not isinstance(v, torch.Tensor):
            raise TypeError(message("v", "a torch.Tensor", type(v).__name__))
        if v.ndim not in (1, 2) or v.shape[0] != self._flat.dim:
            dim = self._flat.dim
            raise ValueError(message("v", f"of shape ({dim},) or ({dim}, k)", tuple(v.shape)))
        v = v.detach().to(dtype=self.dtype, device=self.device)
        if not bool(torch.isfinite(v).all()):
            raise ValueError(message("v", "finite (no NaN or inf)", "non-finite entries"))
        if v.ndim == 2:
            return torch.stack([self.matvec(v[:, j]) for j in range(v.shape[1])], dim=1)
        out = torch.zeros_like(v)
        for b, w in enumerate(self._weights):
            jvp_fn, h_out, vjp_fn = self._part(b)
            out.add_(vjp_fn(h_out(jvp_fn(v)))[0], alpha=w)
        self.n_matvecs += 1
        return out.detach()

    __matmul__ = matvec

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    def dense(self) -> torch.Tensor:
        """The full (P, P) matrix by P products (small models and tests only)."""
        return self.matvec(torch.eye(self._flat.dim, dtype=self.dtype, device=self.device))
