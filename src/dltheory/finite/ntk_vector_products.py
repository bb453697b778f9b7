"""NTK-vector products Theta v = J (J^T v) for any model, without storing Theta or J.

Novak et al. 2022 ("Fast finite width neural tangent kernel", Sec. 3.2): a
vector-Jacobian product (reverse mode) followed by a Jacobian-vector product
(forward mode) costs about three forward passes over the data, so Theta can be
multiplied (Lanczos, CG) at memory O(N k + P) when N is too large to store it.

The products differentiate the batched map f(X) (N, k), so they are right for models
whose samples interact (BatchNorm in train mode: the NTK of the batched map, with the
batch's statistics) as for any other model; tied parameters count once, with every use.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import jvp, vjp, vmap

from .functional_model import FunctionalModel

__all__ = ["NTKOperator", "ntvp_ntk"]


class NTKOperator:
    """The empirical NTK on inputs x as a symmetric operator on (N k) vectors.

    ``op.matvec(v)`` (or ``op @ v``) returns Theta v for v of shape (N k,) or (N, k)
    (flattened row-major: index a * k + o), with Theta_{(a,o),(b,p)} =
    sum_theta d f_o(x_a)/d theta d f_p(x_b)/d theta over trainable parameters.
    Attributes ``shape``, ``dtype``, ``device``, ``n_matvecs`` as the project's
    Lanczos expects.

    >>> net = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> op = NTKOperator(net, x)
    >>> op @ torch.ones(2, dtype=torch.float64)   # Theta = x x^T = I
    tensor([1., 1.], dtype=torch.float64)
    """

    def __init__(self, model: nn.Module, x: Any, x2: Any = None):
        self.fm = model if isinstance(model, FunctionalModel) else FunctionalModel(model)
        self.model = self.fm.model
        self.params = self.fm.params
        self.x1 = self.fm.inputs("x", x)
        self.x2 = self.x1 if x2 is None else self.fm.inputs("x2", x2)
        out1 = self.fm.outputs("x", self.x1)
        if x2 is not None:
            self.fm.outputs("x2", self.x2)
        self.k = out1.shape[1]
        self.shape = (out1.shape[0] * self.k, self.x2.shape[0] * self.k)
        self.dtype, self.device = out1.dtype, out1.device
        self.n_matvecs = 0
        self._pullback = None

    def _apply(self, cot: torch.Tensor) -> torch.Tensor:
        if self._pullback is None:  # one linearisation of f(X2), reused by every product
            _, self._pullback = vjp(lambda p: self.fm(p, self.x2), self.params)
        (tangent,) = self._pullback(cot)
        _, out = jvp(lambda p: self.fm(p, self.x1), (self.params,), (tangent,))
        return out

    def matvec(self, v: Any) -> torch.Tensor:
        """Theta v, same layout as v ((N k,) or (N, k))."""
        v = torch.as_tensor(v, dtype=self.dtype, device=self.device)
        flat = v.ndim == 1
        cot = v.reshape(self.x2.shape[0], self.k)
        self.n_matvecs += 1
        out = self._apply(cot)
        return out.reshape(-1) if flat else out

    def __matmul__(self, v: Any) -> torch.Tensor:
        return self.matvec(v)

    def matmat(self, vs: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
        """Theta applied to the columns of vs (N2 k, m), vectorised over columns."""
        m = vs.shape[1]
        cots = vs.T.reshape(m, self.x2.shape[0], self.k)
        out = torch.cat([self._batch(cots[i : i + chunk_size]) for i in range(0, m, chunk_size)])
        return out.reshape(m, -1).T

    def _batch(self, cots: torch.Tensor) -> torch.Tensor:
        """(m, N2, k) cotangents -> (m, N1, k) products."""
        if self._pullback is None:
            self._apply(cots[0])  # linearise outside vmap
        self.n_matvecs += cots.shape[0]
        return vmap(self._apply)(cots)


def ntvp_ntk(
    model: nn.Module | FunctionalModel,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    output: str,
    chunk_size: int,
) -> torch.Tensor:
    """Theta (N1, N2) or (N1, N2, k, k), by NTK-vector products against basis vectors.

    Columns (b, o) of Theta, ``chunk_size`` at a time: N2 k products in all, memory
    O(chunk_size (N k + P)) beside the output.
    """
    op = NTKOperator(model, x1, x2)
    n1, k, n2 = op.x1.shape[0], op.k, op.x2.shape[0]
    full = output == "full"
    theta = torch.zeros((n1, n2, k, k) if full else (n1, n2), dtype=op.dtype, device=op.device)
    cols = torch.arange(n2 * k, device=op.device)
    for start in range(0, n2 * k, chunk_size):
        idx = cols[start : start + chunk_size]
        b, o = idx // k, idx % k
        cot = torch.zeros(len(idx), n2, k, dtype=op.dtype, device=op.device)
        cot[torch.arange(len(idx)), b, o] = 1.0
        out = op._batch(cot)  # (m, n1, k): Theta[(a, p), (b, o)]
        if full:
            theta[:, b, :, o] = out  # advanced indices first: (m, n1, k)
        else:
            theta.index_add_(1, b, out[torch.arange(len(idx)), :, o].T / k)
    return theta
