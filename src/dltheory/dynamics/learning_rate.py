"""The largest stable learning rate: 2N / lambda_max(Theta) and 2 / lambda_max(H).

With the project's MSE, L = ||f - y||^2 / (2N), GD on the linearised model reads
f_{t+1} - y = (I - (eta/N) Theta)(f_t - y), so it converges iff
eta < 2N / lambda_max(Theta) (Theta the empirical NTK on the N training points,
all outputs); this equals 2 / lambda_max of the Gauss-Newton matrix J^T J / N.
GD on any twice-differentiable loss is linearly stable at a minimum iff
eta < 2 / lambda_max(H), H the loss Hessian (e.g. Cohen et al. 2021, Sec. 2;
Lewkowycz et al. 2020, Sec. 2). For a spec (no weights) the infinite-width NTK
on the data gives the threshold a very wide network has at initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from .._checks import as_float_tensor, check_choice, check_finite_result, check_positive, message
from ..finite.functional_model import FunctionalModel
from ..spec import Serial
from .curvature_products import default_tol, loss_hessian_eigenvalues, ntk_eigenvalues
from .trajectory import mse_loss

__all__ = ["StableLearningRate", "max_stable_lr"]

__fuzz_exempt__ = {
    "max_stable_lr:nan": "the Hessian fields are NaN for a spec and with hessian=False (documented)"
}

#: bytes the dense route (the (N k, P) Jacobian) may take; above, Lanczos on J (J^T v)
DENSE_JACOBIAN_BYTES = 256 * 2**20


@dataclass(frozen=True)
class StableLearningRate:
    """Stability thresholds of full-batch GD with the MSE ||f - y||^2 / (2N).

    Attributes:
        ntk_lr: 2N / lambda_max(Theta), the exact threshold of the linearised dynamics.
        hessian_lr: 2 / lambda_max(H) of the loss Hessian now (NaN for a spec or when
            ``hessian=False``; the Hessian fields are NaN then too).
        ntk_lambda_max: lambda_max(Theta) (all outputs, Theta of size N k x N k).
        hessian_lambda_max: lambda_max(H) (NaN for a spec).
        n_points: N.
        ntk_method: how lambda_max(Theta) was computed.
        ntk_error: bound on the relative error of ntk_lambda_max.
        hessian_method: how lambda_max(H) was computed.
        hessian_error: bound on its relative error (the Lanczos residual / |theta|).
        hessian_converged: whether Lanczos certified the eigenvalue to ``tol``.
    """

    ntk_lr: float
    hessian_lr: float
    ntk_lambda_max: float
    hessian_lambda_max: float
    n_points: int
    ntk_method: str
    ntk_error: float
    hessian_method: str
    hessian_error: float
    hessian_converged: bool


def _ntk_lambda_max(
    fm: FunctionalModel, x: torch.Tensor, n_out: int, tol: float, budget: float
) -> tuple[float, str, float]:
    eps = torch.finfo(fm.dtype).eps
    item = torch.empty((), dtype=fm.dtype).element_size()
    if n_out * fm.n_params * item * 3 <= budget:  # J, its transpose product, workspace
        fn = fm.flat_fn(x)
        jac = torch.func.jacrev(fn)(fm.flat())  # (N k, P)
        ntk = jac @ jac.T
        check_finite_result("x", ntk, "The NTK overflows at these inputs: rescale them")
        top = float(torch.linalg.eigvalsh(ntk)[-1])
        # LAPACK's symmetric eigensolver is backward stable: |error| <= c n eps ||Theta||
        return top, "dense eigvalsh of the empirical NTK J J^T", float(n_out * eps)
    res = ntk_eigenvalues(fm, x, tol=tol, max_matvecs=min(n_out, 1000))
    top = float(res.eigenvalues[0])
    err = float(res.residuals[0]) / abs(top)
    return top, f"Lanczos on NTK-vector products J (J^T v) ({res.n_matvecs} products)", err


def max_stable_lr(
    model: nn.Module | Serial,
    x: Any,
    y: Any = None,
    loss: Literal["mse"] = "mse",
    *,
    tol: float | None = None,
    hessian: bool = True,
    memory_budget: float | None = None,
) -> StableLearningRate:
    """Largest learning rates for which full-batch GD on the MSE is stable.

    eta_NTK = 2N / lambda_max(Theta) (exact for the linearised model) and
    eta_H = 2 / lambda_max(H) for the loss Hessian at the current parameters
    (Lewkowycz et al. 2020, Sec. 2; Cohen et al. 2021). For a spec ``Serial``
    (e.g. ``MLP(...)``) the infinite-width NTK of its output on ``x`` is used
    (every output unit has the same kernel, so k outputs change nothing); the
    Hessian part is then NaN.

    Args:
        model: a ``torch.nn.Module`` or a spec.
        x: batch-first training inputs of any shape and dtype ((N, n_0) vectors,
            (N, C, H, W) images, (N, T) integer tokens), passed to the model as given;
            (N, n_0) for a spec.
        y: (N, k) or (N,) targets (needed for the Hessian; ignored for a spec).
        loss: only "mse", L = ||f - y||^2 / (2N), for which the NTK threshold is exact.
        tol: relative accuracy asked of Lanczos (default 1e-8 in float64, 1e-4 in
            float32: what the working precision can certify).
        hessian: also compute the Hessian threshold (else its fields are NaN).
        memory_budget: bytes the dense NTK route may use (default 256 MiB): when the
            (N k, P) Jacobian fits, lambda_max(Theta) comes from its dense Gram; else
            from Lanczos on NTK-vector products, memory O(N k + P) per product. The
            Hessian is always matrix-free (Lanczos on Hessian-vector products).

    The model is measured as it is and never modified: BatchNorm in train mode with
    the batch's statistics (the threshold of full-batch GD in train mode), in eval
    mode with its running statistics; Dropout in train mode is refused.

    >>> lin = torch.nn.Linear(2, 1, bias=False).double()
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    >>> r = max_stable_lr(lin, x, torch.zeros(2, 1, dtype=torch.float64))
    >>> round(r.ntk_lr, 10), round(r.hessian_lr, 10)  # Theta = diag(1, 9): 2N / 9
    (0.4444444444, 0.4444444444)
    """
    check_choice("loss", loss, ("mse",))
    if tol is not None:
        tol = check_positive("tol", tol)
    if isinstance(model, Serial):
        x = as_float_tensor("x", x, ndim=2, dtype=torch.float64)
        ntk = model.kernel(x).ntk
        top = float(torch.linalg.eigvalsh(ntk)[-1])
        n = x.shape[0]
        return StableLearningRate(
            ntk_lr=2 * n / top,
            hessian_lr=math.nan,
            ntk_lambda_max=top,
            hessian_lambda_max=math.nan,
            n_points=n,
            ntk_method="infinite-width NTK (dltheory.kernels), dense eigvalsh",
            ntk_error=float(n * torch.finfo(torch.float64).eps),
            hessian_method="none (a spec has no weights)",
            hessian_error=math.nan,
            hessian_converged=False,
        )
    if not isinstance(model, nn.Module):
        raise TypeError(message("model", "a torch.nn.Module or a spec", type(model).__name__))
    fm = FunctionalModel(model)
    budget = DENSE_JACOBIAN_BYTES if memory_budget is None else memory_budget
    budget = check_positive("memory_budget", budget)
    tol = default_tol(fm.dtype) if tol is None else tol
    x = fm.inputs("x", x)
    if y is None:
        raise ValueError(message("y", "the (N, k) targets", y, "The loss Hessian needs them"))
    out = fm.outputs("x", x)
    check_finite_result("x", out, "The model's outputs overflow: check its parameters and x")
    y = as_float_tensor("y", y, dtype=fm.dtype, device=fm.device)
    if y.numel() != out.numel() or y.shape[0] != x.shape[0]:
        raise ValueError(
            message("y", f"of the model's output shape {tuple(out.shape)}", tuple(y.shape))
        )
    y = y.reshape(out.shape)
    n = x.shape[0]
    ntk_top, ntk_method, ntk_error = _ntk_lambda_max(fm, x, out.numel(), tol, budget)
    if not hessian:
        return StableLearningRate(
            2 * n / ntk_top,
            math.nan,
            ntk_top,
            math.nan,
            n,
            ntk_method,
            ntk_error,
            "not computed",
            math.nan,
            False,
        )
    res = loss_hessian_eigenvalues(fm, mse_loss, x, y, tol=tol)
    h_top = float(res.eigenvalues[0])
    check_finite_result("y", (h_top, float(res.residuals[0])), "The loss Hessian overflows")
    return StableLearningRate(
        ntk_lr=2 * n / ntk_top,
        hessian_lr=2 / h_top if h_top > 0 else math.inf,
        ntk_lambda_max=ntk_top,
        hessian_lambda_max=h_top,
        n_points=n,
        ntk_method=ntk_method,
        ntk_error=ntk_error,
        hessian_method=f"Lanczos on Hessian-vector products ({res.n_matvecs} products)",
        hessian_error=float(res.residuals[0]) / abs(h_top) if h_top != 0 else math.inf,
        hessian_converged=bool(res.converged),
    )
