"""How much of the gradient lies in the Hessian's top eigenspace.

Gur-Ari, Roberts & Dyer (2018), "Gradient descent happens in a tiny subspace", Eq. (2):
with V_k the top-k eigenvectors of the loss Hessian,

    f_top = ||V_k V_k^T g||^2 / ||g||^2,

the fraction of the squared gradient norm inside the top-k subspace; after a short
transient it stays close to 1 with k = C, the number of classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .._checks import check_int, check_positive, message
from .hessian import HessianOperator
from .lanczos import lanczos_eigenpairs

__all__ = ["GradientOverlap", "OverlapResult", "gradient_overlap"]


class OverlapResult(NamedTuple):
    """f_top in [0, 1], the top-k eigenvalues and eigenvectors (P, k), products used."""

    overlap: float
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    n_matvecs: int


def gradient_overlap(
    model: Any,
    loss_fn: Callable,
    data: Any,
    k: int = 10,
    *,
    tol: float = 1e-3,
    v0: torch.Tensor | None = None,
    max_matvecs: int | None = None,
    seed: int | torch.Generator | None = 0,
) -> OverlapResult:
    """f_top = ||V_k V_k^T g||^2 / ||g||^2 of the full-batch gradient g.

    Args:
        model, loss_fn, data: as for :class:`HessianOperator`.
        k: size of the top eigenspace (Gur-Ari et al. take k = number of classes).
        tol: Lanczos relative residual tolerance.
        v0: warm start for Lanczos (e.g. a vector of the previous top subspace).
        max_matvecs, seed: as for :func:`lanczos_eigenpairs`.

    Raises:
        ValueError: if the gradient vanishes (f_top is undefined).

    >>> lin = torch.nn.Linear(2, 1, bias=False).double()
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()
    >>> r = gradient_overlap(lin, mse, (x, torch.zeros(2, 1)), k=1)
    >>> round(r.overlap, 12)  # g = (0.5, 0) lies in the eigenspace of 0.5, not of 2
    0.0
    """
    tol = check_positive("tol", tol)
    H = HessianOperator(model, loss_fn, data)
    k = check_int("k", k, minimum=1)
    if k > H.shape[0]:
        raise ValueError(message("k", f"at most the number of parameters {H.shape[0]}", k))
    g = H.gradient()
    norm2 = float(g @ g)
    if norm2 == 0.0:
        raise ValueError(
            message(
                "gradient",
                "non-zero for the overlap to be defined",
                0.0,
                "At a critical point f_top is undefined",
            )
        )
    r = lanczos_eigenpairs(
        H,
        H.shape[0],
        k=k,
        tol=tol,
        v0=v0,
        max_matvecs=max_matvecs,
        seed=seed,
        dtype=H.dtype,
        device=H.device,
    )
    V = r.eigenvectors
    overlap = float(((V.T @ g) ** 2).sum()) / norm2
    return OverlapResult(min(overlap, 1.0), r.eigenvalues, V, r.n_matvecs)


class GradientOverlap:
    """Training-loop tracker of f_top (Gur-Ari et al. 2018) with warm-started Lanczos.

    Follows the project's tracker protocol: a ``name`` and ``__call__(state)`` reading
    ``state.model``, ``state.x``, ``state.y`` and ``state.loss_fn`` (the full
    training data). Each call starts Lanczos from the sum of the previous call's top-k
    eigenvectors, so successive calls need fewer Hessian-vector products once the top
    subspace has stabilised.

    >>> tracker = GradientOverlap(k=3)
    >>> tracker.name
    'grad_overlap_top3'
    """

    def __init__(self, k: int = 10, *, tol: float = 1e-3, name: str | None = None) -> None:
        self.k = check_int("k", k, minimum=1)
        self.tol = check_positive("tol", tol)
        self.name = name if name is not None else f"grad_overlap_top{self.k}"
        self._v0: torch.Tensor | None = None
        self.n_matvecs = 0

    def __call__(self, state: Any) -> float:
        for attr in ("model", "x", "y", "loss_fn"):
            if not hasattr(state, attr):
                raise TypeError(
                    message(
                        "state", f"a TrainState with a '{attr}' attribute", type(state).__name__
                    )
                )
        r = gradient_overlap(
            state.model, state.loss_fn, (state.x, state.y), self.k, tol=self.tol, v0=self._v0
        )
        self._v0 = r.eigenvectors.sum(1)
        self.n_matvecs += r.n_matvecs
        return r.overlap
