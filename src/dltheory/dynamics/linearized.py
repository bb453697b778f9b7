"""Outputs of a linearised network trained on the MSE, in closed form.

Loss normalisation (used throughout ``dltheory.dynamics``): MSE
L(theta) = 1/(2N) sum_i ||f(x_i) - y_i||^2 over the N training points. For the
linearisation f_lin(x; theta) = f_0(x) + J_0(x)(theta - theta_0) (Lee et al. 2019,
"Wide neural networks of any depth evolve as linear models under gradient descent",
Eqs. 8-11, with their loss scaled to ours):

* gradient descent with learning rate eta: f_t - y = (I - (eta/N) Theta)^t (f_0 - y),
  stable iff eta < 2N / lambda_max(Theta);
* gradient flow: f_t - y = exp(-(eta/N) Theta t)(f_0 - y);
* test inputs: f_t(x*) = f_0(x*) - Theta_{*X} Theta^{-1} (I - D_t)(f_0 - y), D_t the
  decay operator above; t = infinity gives D = 0 (kernel regression with Theta).

Everything comes from one eigendecomposition Theta = V diag(lambda) V^T, so any
number of times costs one matrix product each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from .._checks import as_float_tensor, check_choice, check_positive, message

__all__ = ["LinearizedPrediction", "eigh_symmetric", "linearized_outputs", "linearized_prediction"]


def eigh_symmetric(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of a symmetric float64 matrix (ascending), LAPACK syevd on the CPU.

    On CPU, SciPy's ``eigh(driver="evd")`` measured ~1.4x less CPU time than
    ``torch.linalg.eigh`` at N = 2,000 (benchmarks/dynamics.py); other devices use torch.
    """
    if matrix.device.type != "cpu":
        return torch.linalg.eigh(matrix)
    import scipy.linalg

    lam, vecs = scipy.linalg.eigh(matrix.detach().numpy(), driver="evd", check_finite=False)
    return torch.from_numpy(lam), torch.from_numpy(vecs)


class LinearizedPrediction(NamedTuple):
    """Outputs of the linearised model: ``train`` (N, ...) and ``test`` (N*, ...) or None.

    With several times, each has a leading time axis (T, N, ...).
    """

    train: torch.Tensor
    test: torch.Tensor | None


def _times(t: Any) -> tuple[torch.Tensor, bool]:
    """(times as float64 tensor with inf for None, whether a scalar was given)."""
    if t is None:
        return torch.tensor([math.inf], dtype=torch.float64), True
    scalar = not isinstance(t, Sequence | torch.Tensor) or (
        isinstance(t, torch.Tensor) and t.ndim == 0
    )
    values = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    if values.numel() == 0 or bool(torch.isnan(values).any()) or bool((values < 0).any()):
        raise ValueError(message("t", "None or times >= 0 (inf allowed)", t))
    return values, scalar


def _flatten_kernel(name: str, k: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    if k.ndim == 4:
        if k.shape[0] != rows or k.shape[1] != cols or k.shape[2] != k.shape[3]:
            raise ValueError(message(name, f"of shape ({rows}, {cols}, k, k)", tuple(k.shape)))
        kk = k.shape[2]
        return k.permute(0, 2, 1, 3).reshape(rows * kk, cols * kk)
    if k.ndim != 2 or k.shape != (rows, cols):
        raise ValueError(
            message(
                name,
                f"a ({rows}, {cols}) kernel block or ({rows}, {cols}, k, k) full NTK",
                f"shape {tuple(k.shape)}",
            )
        )
    return k


def _decay_and_gain(lam, n, lr, times, dynamics, rcond):
    """D_t(lambda) and (1 - D_t(lambda)) / lambda, (T, M) each."""
    cutoff = rcond * max(float(lam.abs().max()), 0.0)
    live = lam > cutoff
    a = lr * lam.clamp_min(0) / n  # (M,) per-step contraction rate (eta/N) lambda
    t = times[:, None]
    finite = torch.isfinite(t)
    if dynamics == "gd":
        if bool((~finite).any()) and bool((live & (a >= 2)).any()):
            raise ValueError(
                message(
                    "lr",
                    f"< 2N / lambda_max(Theta) = {2 * n / float(lam.max()):.6g} for t=None",
                    lr,
                    "Gradient descent on the linearised model diverges at this learning rate",
                )
            )
        log_decay = torch.log(torch.abs(1 - a)) * torch.where(finite, t, 0.0)
        sign = torch.where((1 - a) < 0, (-1.0) ** torch.where(finite, t, 0.0), 1.0)
        decay = torch.where(finite, sign * torch.exp(log_decay), 0.0)
        # (1 - (1 - a)^t) / lambda, with its lambda -> 0 limit t eta / N
        small = a < 1e-3
        series = -torch.expm1(torch.where(finite, t, 0.0) * torch.log1p(-a.clamp(max=0.5)))
        one_minus = torch.where(small, series, 1 - decay)
    else:
        one_minus = torch.where(finite, -torch.expm1(-a * torch.where(finite, t, 0.0)), 1.0)
        decay = 1 - one_minus
    safe = torch.where(live, lam, 1.0)
    gain = torch.where(live, one_minus / safe, 0.0)
    decay = torch.where(live, decay, 1.0)
    if not (bool(torch.isfinite(decay).all()) and bool(torch.isfinite(gain).all())):
        raise ValueError(
            message(
                "lr",
                f"< 2N / lambda_max(Theta) = {2 * n / float(lam.max()):.6g}",
                lr,
                "The linearised outputs overflow: gradient descent diverges",
            )
        )
    return decay, gain


def linearized_prediction(
    ntk_train_train: Any,
    y_train: Any,
    f0_train: Any,
    *,
    ntk_test_train: Any = None,
    f0_test: Any = None,
    lr: float = 1.0,
    t: float | Sequence[float] | None = None,
    dynamics: Literal["gd", "flow"] = "gd",
    rcond: float = 1e-12,
) -> LinearizedPrediction:
    """Train / test outputs of a linearised model trained on the MSE.

    f_t - y = D_t (f_0 - y) with D_t = (I - (eta/N) Theta)^t (GD, t steps) or
    exp(-(eta/N) Theta t) (gradient flow, time t), and
    f_t(x*) = f_0(x*) - Theta_{*X} Theta^+ (I - D_t)(f_0 - y) (Lee et al. 2019, Eqs. 9-11,
    for the loss L = 1/(2N) sum_i ||f(x_i) - y_i||^2). ``t=None`` is t = infinity.
    Eigenvalues below ``rcond * lambda_max`` are treated as exact zeros (modes that
    never move; Theta^+ is the pseudo-inverse).

    Args:
        ntk_train_train: (N, N) kernel (shared by every output column of y) or the
            full (N, N, k, k) NTK of ``empirical_ntk(..., output="full")``.
        y_train: targets (N,) or (N, k).
        f0_train: the network's outputs at initialisation, same shape as ``y_train``.
        ntk_test_train, f0_test: (N*, N) or (N*, N, k, k), and (N*, ...) outputs at
            initialisation; give both or neither.
        lr: eta > 0.
        t: steps (GD) or time (flow); a number, a sequence (leading time axis), or None.
        dynamics: ``"gd"`` or ``"flow"``.

    >>> theta = torch.tensor([[2.0]], dtype=torch.float64)
    >>> y, f0 = torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    >>> float(linearized_prediction(theta, y, f0, lr=0.25, t=2).train[0])  # 1 - (1 - 0.5)^2
    0.75
    """
    check_choice("dynamics", dynamics, ("gd", "flow"))
    lr = check_positive("lr", lr)
    rcond = check_positive("rcond", rcond)
    y = as_float_tensor("y_train", y_train, dtype=torch.float64)
    if y.ndim not in (1, 2):
        raise ValueError(message("y_train", "of shape (N,) or (N, k)", f"shape {tuple(y.shape)}"))
    f0 = as_float_tensor("f0_train", f0_train, dtype=torch.float64)
    if f0.shape != y.shape:
        raise ValueError(
            message("f0_train", f"of the shape of y_train {tuple(y.shape)}", tuple(f0.shape))
        )
    n = y.shape[0]
    theta = as_float_tensor("ntk_train_train", ntk_train_train, dtype=torch.float64)
    full = theta.ndim == 4
    theta = _flatten_kernel("ntk_train_train", theta, n, n)
    if full and (y.ndim != 2 or theta.shape[0] != y.numel()):
        raise ValueError(
            message("y_train", f"of shape (N, k) matching the full NTK {theta.shape}", y.shape)
        )
    residual = (f0 - y).reshape(theta.shape[0], -1)  # (M, columns)
    if (ntk_test_train is None) != (f0_test is None):
        raise ValueError(message("f0_test", "given together with ntk_test_train", f0_test))
    times, scalar = _times(t)
    if dynamics == "gd":
        fin = times[torch.isfinite(times)]
        if bool((fin != torch.round(fin)).any()):
            raise ValueError(message("t", "whole numbers of steps for dynamics='gd'", t))
    lam, vecs = eigh_symmetric(theta)
    decay, gain = _decay_and_gain(lam, n, lr, times, dynamics, rcond)
    coeff = vecs.T @ residual  # (M, c)
    train = y.reshape(theta.shape[0], -1) + torch.einsum("mi,ti,ic->tmc", vecs, decay, coeff)
    train = train.reshape(len(times), *y.shape)
    test = None
    if ntk_test_train is not None:
        f0t = as_float_tensor("f0_test", f0_test, dtype=torch.float64)
        if f0t.shape[1:] != y.shape[1:]:
            raise ValueError(
                message("f0_test", f"of shape (N*, {tuple(y.shape[1:])})", tuple(f0t.shape))
            )
        kt = as_float_tensor("ntk_test_train", ntk_test_train, dtype=torch.float64)
        if full != (kt.ndim == 4):
            raise ValueError(
                message("ntk_test_train", "of the same layout as ntk_train_train", kt.shape)
            )
        kt = _flatten_kernel("ntk_test_train", kt, f0t.shape[0], n)
        # Theta^+ (I - D_t)(f_0 - y) as T vectors first: matrix-vector work with Theta_{*X}
        weights = torch.einsum("mi,tic->tmc", vecs, gain[:, :, None] * coeff[None])
        move = torch.einsum("sm,tmc->tsc", kt, weights)
        test = (f0t.reshape(kt.shape[0], -1) - move).reshape(len(times), *f0t.shape)
    if scalar:
        train = train[0]
        test = None if test is None else test[0]
    return LinearizedPrediction(train, test)


def linearized_outputs(
    model: nn.Module,
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    *,
    lr: float = 1.0,
    t: float | Sequence[float] | None = None,
    dynamics: Literal["gd", "flow"] = "gd",
    method: str = "auto",
) -> LinearizedPrediction:
    """Outputs of ``model``'s linearisation at its current parameters, trained on the MSE.

    Computes the empirical NTK (``output="full"``) and the initial outputs, then
    :func:`linearized_prediction`. Loss: L = 1/(2N) sum_i ||f(x_i) - y_i||^2.
    Inputs are batch-first of any shape and dtype (passed to the model as given);
    outputs (N, k). The model is not modified; BatchNorm in train mode is linearised
    as the batched map (the training batch's statistics for x_train, the test batch's
    own for x_test), Dropout in train mode is refused.

    >>> from dltheory import MLP
    >>> net = MLP(depth=1, activation="tanh").sample(width=8, in_dim=2, seed=0,
    ...                                              dtype=torch.float64)
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> y = torch.ones(2, 1, dtype=torch.float64)
    >>> bool(torch.allclose(linearized_outputs(net, x, y).train, y))  # t = infinity
    True
    """
    from ..finite.empirical import empirical_ntk
    from ..finite.functional_model import FunctionalModel

    fm = FunctionalModel(model)
    xtr = fm.inputs("x_train", x_train)
    f0 = fm.outputs("x_train", xtr)
    ntk = empirical_ntk(model, xtr, output="full", method=method)
    y = as_float_tensor("y_train", y_train, dtype=torch.float64)
    if y.shape != f0.shape and y.numel() == f0.numel() and y.shape[:1] == f0.shape[:1]:
        y = y.reshape(f0.shape)
    if y.shape != f0.shape:
        raise ValueError(
            message("y_train", f"of the model's output shape {tuple(f0.shape)}", tuple(y.shape))
        )
    kt = f0t = None
    if x_test is not None:
        xte = fm.inputs("x_test", x_test)
        f0t = fm.outputs("x_test", xte)
        kt = empirical_ntk(model, xte, xtr, output="full", method=method)
    return linearized_prediction(
        ntk, y, f0, ntk_test_train=kt, f0_test=f0t, lr=lr, t=t, dynamics=dynamics
    )
