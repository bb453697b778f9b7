"""NTK-vector products Theta v = J (J^T v) for any model, without storing Theta or J.

Novak et al. 2022 ("Fast finite width neural tangent kernel", Sec. 3.2): a
vector-Jacobian product (reverse mode) followed by a Jacobian-vector product
(forward mode) costs about three forward passes over the data, so Theta can be
multiplied (Lanczos, CG) at memory O(N k + P) when N is too large to store it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, jvp, vjp, vmap

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

    def __init__(self, model: nn.Module, x: torch.Tensor, x2: torch.Tensor | None = None):
        self.model = model
        self.params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
        self.buffers = dict(model.named_buffers())
        self.x1 = x
        self.x2 = x if x2 is None else x2
        with torch.no_grad():
            out1 = model(self.x1)
        self.k = out1.shape[1]
        self.shape = (out1.shape[0] * self.k, self.x2.shape[0] * self.k)
        self.dtype, self.device = out1.dtype, out1.device
        self.n_matvecs = 0

    def _f(self, x: torch.Tensor):
        return lambda p: functional_call(self.model, (p, self.buffers), (x,))

    def _apply(self, cot: torch.Tensor) -> torch.Tensor:
        _, pullback = vjp(self._f(self.x2), self.params)
        (tangent,) = pullback(cot)
        _, out = jvp(self._f(self.x1), (self.params,), (tangent,))
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
        outs = [vmap(self._apply)(cots[i : i + chunk_size]) for i in range(0, m, chunk_size)]
        self.n_matvecs += m
        return torch.cat(outs).reshape(m, -1).T


def ntvp_ntk(
    model: nn.Module, x1: torch.Tensor, x2: torch.Tensor | None, output: str, chunk_size: int
) -> torch.Tensor:
    """Theta (N1, N2) or (N1, N2, k, k), by NTK-vector products against basis vectors."""
    op = NTKOperator(model, x1, x2)
    n1, k = x1.shape[0], op.k
    n2 = op.x2.shape[0]
    if output == "full":
        eye = torch.eye(n2 * k, dtype=op.dtype, device=op.device)
        full = op.matmat(eye, chunk_size=chunk_size)  # (n1 k, n2 k)
        return full.reshape(n1, k, n2, k).permute(0, 2, 1, 3)
    # trace: for each output o, Theta^{oo} from cotangents e_b (x) e_o
    cols = []
    for o in range(k):
        basis = torch.zeros(n2 * k, n2, dtype=op.dtype, device=op.device)
        basis[torch.arange(n2) * k + o, torch.arange(n2)] = 1.0
        cols.append(op.matmat(basis, chunk_size=chunk_size).reshape(n1, k, n2)[:, o, :])
    return torch.stack(cols).mean(0)
