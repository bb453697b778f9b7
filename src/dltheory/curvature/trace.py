"""Trace of the loss Hessian by Hutch++, with a standard error.

Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: optimal stochastic trace
estimation", Alg. 1): with m products, sketch Q = orth(A S) from m/3 Rademacher
vectors S, take the top part exactly, tr(Q^T A Q), and estimate the rest by
Hutchinson (1989) on the deflated operator (I - QQ^T) A (I - QQ^T) with m/3
Rademacher vectors g_j:

    tr(A) ~ tr(Q^T A Q) + (1/n_g) sum_j g_j^T (I - QQ^T) A (I - QQ^T) g_j.

Given the sketch, the second term is a mean of n_g independent samples: its
standard error is their standard deviation / sqrt(n_g).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .._checks import check_bytes, check_int, message
from ._data import generator_from
from .hessian import HessianOperator

__all__ = ["TraceEstimate", "hessian_trace", "hutchpp_trace"]


class TraceEstimate(NamedTuple):
    """tr(A) ~ estimate +- stderr (the Hutchinson part's standard error), n_matvecs."""

    estimate: float
    stderr: float
    n_matvecs: int


def hutchpp_trace(
    matvec: Callable[[torch.Tensor], torch.Tensor] | Any,
    dim: int,
    n_matvecs: int = 99,
    *,
    seed: int | torch.Generator | None = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> TraceEstimate:
    """Hutch++ trace of a symmetric operator in ``n_matvecs`` products (>= 6).

    The budget splits as k = n_matvecs // 3 sketch vectors (k products for A S and
    k for A Q) and the rest for Hutchinson on the deflated operator. The estimate is
    unbiased with the stated standard error; it is exact (stderr 0) only when the
    sketch spans the whole space, k >= dim, i.e. n_matvecs >= 3 dim (then 2 dim
    products are used). Memory: k + 2 vectors of size dim (the sketch, kept
    orthonormal by Gram-Schmidt, and one probe at a time).

    >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    >>> r = hutchpp_trace(lambda v: A @ v, 10, n_matvecs=30)
    >>> round(r.estimate, 9), r.stderr
    (55.0, 0.0)
    """
    op = matvec.matvec if hasattr(matvec, "matvec") else matvec
    if not callable(op):
        raise TypeError(message("matvec", "a callable v -> A v", type(matvec).__name__))
    dim = check_int("dim", dim, minimum=1)
    n_matvecs = check_int("n_matvecs", n_matvecs, minimum=6)
    gen = generator_from(seed)
    k = min(n_matvecs // 3, dim)
    check_bytes("dim", 8.0 * dim * (k + 2), fix="Use a smaller operator or fewer products")
    n_g = n_matvecs - 2 * k

    def rademacher() -> torch.Tensor:
        z = torch.randint(0, 2, (dim,), generator=gen, device=gen.device)
        return (2.0 * z - 1.0).to(dtype=dtype, device=device)

    def apply(v: torch.Tensor) -> torch.Tensor:
        w = op(v)
        if not isinstance(w, torch.Tensor) or w.shape != (dim,):
            raise ValueError(message("matvec", f"a map to vectors of shape ({dim},)", "other"))
        if not bool(torch.isfinite(w).all()):
            raise ValueError(message("matvec", "finite", "a product with NaN or inf entries"))
        return w.detach().to(dtype=dtype, device=device)

    def deflate(w: torch.Tensor) -> torch.Tensor:
        for _ in range(2):  # Gram-Schmidt twice: orthogonal to working precision
            for q in Q:
                w.sub_(q, alpha=float(q @ w))
        return w

    # Sketch Q = orth(A S), one column at a time.
    Q: list[torch.Tensor] = []
    for _ in range(k):
        w = deflate(apply(rademacher()))
        norm = float(w.norm())
        if norm > 0.0:
            Q.append(w.div_(norm))
    exact = sum(float(q @ apply(q)) for q in Q)
    used = len(Q) + k
    if k == dim:
        return TraceEstimate(exact, 0.0, used)
    samples = []
    for _ in range(n_g):
        g = deflate(rademacher())
        samples.append(float(g @ apply(g)))
    t = torch.tensor(samples, dtype=torch.float64)
    stderr = float(t.std() / n_g**0.5)
    return TraceEstimate(exact + float(t.mean()), stderr, used + n_g)


def hessian_trace(
    model: Any,
    loss_fn: Callable,
    data: Any,
    n_matvecs: int = 99,
    *,
    seed: int | torch.Generator | None = 0,
) -> TraceEstimate:
    """tr H of the loss Hessian by Hutch++ in ``n_matvecs`` Hessian-vector products.

    >>> lin = torch.nn.Linear(3, 1, bias=False).double()
    >>> x = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()
    >>> round(hessian_trace(lin, mse, (x, torch.zeros(3, 1)), 9).estimate, 9)  # 14 / 3
    4.666666667
    """
    H = HessianOperator(model, loss_fn, data)
    return hutchpp_trace(H, H.shape[0], n_matvecs, seed=seed, dtype=H.dtype, device=H.device)
