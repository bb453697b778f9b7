"""The loss Hessian as a matrix-free symmetric operator on flat parameter vectors.

H = d^2 L / d theta^2 with L(theta) = sum_b (n_b / N) L_b(theta), the per-sample mean
loss over all N training points, accumulated exactly over the batches b.
Hessian-vector products use torch.func: the gradient's vjp is built once per batch
(``vjp(grad(L_b), theta)``) and reused, so one product costs one backward pass
through the gradient's graph (Pearlmutter 1994, "Fast exact multiplication by the
Hessian"; H is symmetric, so v^T H = (H v)^T).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._checks import message
from ._data import FlatParameters, as_batches, check_loss_fn

__all__ = ["HessianOperator"]


class HessianOperator:
    """Matrix-free Hessian of a model's mean loss over a data set.

    Args:
        model: any ``torch.nn.Module``; derivatives are taken with respect to its
            parameters with ``requires_grad=True``, flattened in ``named_parameters``
            order (see :attr:`theta`).
        loss_fn: ``(output, target) -> scalar``, the **mean** loss over a batch (e.g.
            ``torch.nn.functional.cross_entropy``, or ``0.5 * ((out - y)**2).sum(1).mean()``
            for the project's MSE 1/(2N) sum ||f - y||^2).
        data: ``(inputs, targets)`` or an iterable of such batches; batch b enters with
            weight n_b / N, so the result is the exact full-batch Hessian.
        cache: keep each batch's gradient graph between products (fast; memory grows
            with the number of batches). ``False`` rebuilds it on every product.

    The operator: ``H.matvec(v)`` or ``H @ v`` (v of shape (P,) or (P, k)),
    ``H.shape == (P, P)``, ``H.dtype``, ``H.device``, ``H.n_matvecs`` (products so far).

    >>> lin = torch.nn.Linear(2, 1, bias=False).double()
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[0.3, -0.2]]))
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> y = torch.zeros(2, 1, dtype=torch.float64)
    >>> H = HessianOperator(lin, lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean(), (x, y))
    >>> H.dense().tolist()  # X^T X / N for linear least squares
    [[0.5, 0.0], [0.0, 2.0]]
    """

    def __init__(self, model: Any, loss_fn: Callable, data: Any, *, cache: bool = True) -> None:
        self._flat = FlatParameters(model)
        self._batches = as_batches(data, self._flat.dtype, self._flat.device)
        self.loss_fn = loss_fn
        with torch.no_grad():
            x0, y0 = self._batches[0]
            check_loss_fn(loss_fn, model(x0), y0)
        sizes = torch.tensor([x.shape[0] for x, _ in self._batches], dtype=torch.float64)
        self.n_samples = int(sizes.sum())
        self._weights = (sizes / sizes.sum()).tolist()
        self._cache = bool(cache)
        self._vjps: list[Any] = [None] * len(self._batches)
        self._grads: list[torch.Tensor | None] = [None] * len(self._batches)
        self.n_matvecs = 0

    # -- the operator ------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self._flat.dim, self._flat.dim)

    @property
    def dtype(self) -> torch.dtype:
        return self._flat.dtype

    @property
    def device(self) -> torch.device:
        return self._flat.device

    @property
    def theta(self) -> torch.Tensor:
        """The flat parameter vector (P,) at which H is taken (a detached copy)."""
        return self._flat.theta.clone()

    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector (P,) -> {parameter name: tensor of that parameter's shape}."""
        return self._flat.unflatten(v)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], Any]:
        f = self._flat.output_fn(x)
        return lambda theta: self.loss_fn(f(theta), y)

    def _vjp(self, b: int) -> Any:
        fn = self._vjps[b]
        if fn is None:
            x, y = self._batches[b]
            grad, fn = torch.func.vjp(torch.func.grad(self._batch_loss(x, y)), self._flat.theta)
            self._grads[b] = grad.detach()
            if self._cache:
                self._vjps[b] = fn
        return fn

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for v of shape (P,), or H V for V of shape (P, k) (column by column)."""
        v = self._check_vector(v)
        if v.ndim == 2:
            return torch.stack([self.matvec(v[:, j]) for j in range(v.shape[1])], dim=1)
        out = torch.zeros_like(v)
        for b, w in enumerate(self._weights):
            out.add_(self._vjp(b)(v)[0], alpha=w)
        self.n_matvecs += 1
        return out

    __matmul__ = matvec

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.matvec(v)

    def gradient(self) -> torch.Tensor:
        """The full-batch gradient dL/dtheta (P,) (free once the operator is built)."""
        total = torch.zeros_like(self._flat.theta)
        for b, w in enumerate(self._weights):
            if self._grads[b] is None:
                self._vjp(b)
            total.add_(self._grads[b], alpha=w)
            if not self._cache:
                self._grads[b] = None
        return total

    def loss(self) -> float:
        """The full-batch mean loss L(theta)."""
        with torch.no_grad():
            return float(
                sum(
                    w * self._batch_loss(x, y)(self._flat.theta)
                    for w, (x, y) in zip(self._weights, self._batches, strict=True)
                )
            )

    def dense(self) -> torch.Tensor:
        """The full (P, P) matrix by P products (small models and tests only)."""
        return self.matvec(torch.eye(self._flat.dim, dtype=self.dtype, device=self.device))

    def _check_vector(self, v: Any) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            raise TypeError(message("v", "a torch.Tensor", type(v).__name__))
        if v.ndim not in (1, 2) or v.shape[0] != self._flat.dim:
            raise ValueError(
                message(
                    "v", f"of shape ({self._flat.dim},) or ({self._flat.dim}, k)", tuple(v.shape)
                )
            )
        return v.to(dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        return (
            f"HessianOperator(P={self._flat.dim}, N={self.n_samples}, "
            f"batches={len(self._batches)}, dtype={self.dtype})"
        )
