"""The NTK-GP: test outputs of the infinite-width network trained by gradient flow.

Lee et al. 2019 ("Wide neural networks of any depth evolve as linear models under
gradient descent", Eqs. 15-16): over random initialisations, with f_0 ~ GP(0, K)
(K the NNGP) and a deterministic NTK Theta, the test outputs at time t are Gaussian with

    mean(t) = Theta_{*X} Theta^{-1} (I - e^{-(eta/N) Theta t}) Y
    cov(t)  = K_{**} + Theta_{*X} Theta^{-1} (I - E) K_{XX} (I - E) Theta^{-1} Theta_{X*}
              - (Theta_{*X} Theta^{-1} (I - E) K_{X*} + h.c.),     E = e^{-(eta/N) Theta t},

for the loss L = 1/(2N) sum_i ||f(x_i) - y_i||^2 (Lee et al. absorb the 1/N into eta).
At t = infinity, E = 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from .._checks import as_float_tensor, check_nonnegative, check_positive, message
from .linearized import eigh_symmetric

__all__ = ["NTKGPPrediction", "ntk_gp_prediction"]


class NTKGPPrediction(NamedTuple):
    """Mean (N*,) / (N*, k) and covariance (N*, N*) of the test outputs (None without NNGP).

    The covariance is per output unit (outputs are independent and identically
    distributed at infinite width). Several times give a leading time axis.
    """

    mean: torch.Tensor
    cov: torch.Tensor | None


def _block(name: str, value: Any, shape: tuple[int, int]) -> torch.Tensor:
    k = as_float_tensor(name, value, dtype=torch.float64)
    if tuple(k.shape) != shape:
        raise ValueError(message(name, f"of shape {shape}", f"shape {tuple(k.shape)}"))
    return k


def ntk_gp_prediction(
    ntk_train_train: Any,
    ntk_test_train: Any,
    y_train: Any,
    *,
    t: float | Sequence[float] | None = None,
    lr: float = 1.0,
    nngp_train_train: Any = None,
    nngp_test_train: Any = None,
    nngp_test_test: Any = None,
    ntk_test_test: Any = None,
    diag_reg: float = 0.0,
) -> NTKGPPrediction:
    """Mean and covariance of infinite-width test outputs after gradient flow to time t.

    Lee et al. 2019, Eqs. (15)-(16) (see the module docstring), with the loss
    L = 1/(2N) sum_i ||f(x_i) - y_i||^2 so the flow is exp(-(eta/N) Theta t);
    ``t=None`` is convergence (E = 0): mean = Theta_{*X} Theta^{-1} Y.
    ``diag_reg`` adds ``diag_reg * trace(Theta) / N`` to the diagonal of Theta_XX
    (as neural-tangents' ``diag_reg``). ``ntk_test_test`` is not needed by Eq. (16);
    it is accepted for symmetry with the kernel blocks and only shape-checked.

    Args:
        ntk_train_train: (N, N) NTK Theta_XX (e.g. ``spec.kernel(x).ntk``).
        ntk_test_train: (N*, N) Theta_{*X}.
        y_train: (N,) or (N, k) targets.
        t: gradient-flow time (number, sequence, or None for infinity).
        lr: eta > 0 (only eta * t matters).
        nngp_train_train, nngp_test_train, nngp_test_test: K_XX, K_{*X}, K_{**}; all three
            or none (then ``cov`` is None).

    >>> theta = torch.eye(2, dtype=torch.float64)
    >>> y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    >>> ntk_gp_prediction(theta, theta, y).mean.tolist()   # kernel regression: Y itself
    [1.0, -1.0]
    """
    lr = check_positive("lr", lr)
    diag_reg = check_nonnegative("diag_reg", diag_reg)
    y = as_float_tensor("y_train", y_train, dtype=torch.float64)
    if y.ndim not in (1, 2):
        raise ValueError(message("y_train", "of shape (N,) or (N, k)", f"shape {tuple(y.shape)}"))
    n = y.shape[0]
    theta = _block("ntk_train_train", ntk_train_train, (n, n))
    kt_any = as_float_tensor("ntk_test_train", ntk_test_train, ndim=2, dtype=torch.float64)
    n_test = kt_any.shape[0]
    kt = _block("ntk_test_train", kt_any, (n_test, n))
    if ntk_test_test is not None:
        _block("ntk_test_test", ntk_test_test, (n_test, n_test))
    nngp = (nngp_train_train, nngp_test_train, nngp_test_test)
    given = [b is not None for b in nngp]
    if any(given) and not all(given):
        raise ValueError(
            message(
                "nngp_train_train",
                "given together with nngp_test_train and nngp_test_test (all three or none)",
                given,
            )
        )
    if t is None:
        times, scalar = torch.tensor([math.inf], dtype=torch.float64), True
    else:
        scalar = not isinstance(t, Sequence | torch.Tensor) or (
            isinstance(t, torch.Tensor) and t.ndim == 0
        )
        times = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if times.numel() == 0 or bool(torch.isnan(times).any()) or bool((times < 0).any()):
            raise ValueError(message("t", "None or times >= 0", t))
    if diag_reg > 0:
        theta = theta + diag_reg * torch.trace(theta) / n * torch.eye(n, dtype=theta.dtype)
    lam, vecs = eigh_symmetric((theta + theta.T) / 2)
    if float(lam[0]) <= 1e-14 * float(lam[-1].abs()):
        raise ValueError(
            message(
                "ntk_train_train",
                "positive definite",
                f"lambda_min = {float(lam[0]):.3g}",
                "Duplicate or parallel training inputs make Theta singular; pass diag_reg > 0",
            )
        )
    tt = times[:, None]
    finite = torch.isfinite(tt)
    one_minus = torch.where(finite, -torch.expm1(-lr * lam * torch.where(finite, tt, 0.0) / n), 1.0)
    # A_t = Theta_{*X} Theta^{-1} (I - E_t), (T, N*, N), from the one eigendecomposition
    a_t = torch.einsum("si,ti,ri->tsr", kt @ vecs, one_minus / lam, vecs)
    mean = torch.einsum("tsr,r...->ts...", a_t, y)
    cov = None
    if all(given):
        k_xx = _block("nngp_train_train", nngp_train_train, (n, n))
        k_sx = _block("nngp_test_train", nngp_test_train, (n_test, n))
        k_ss = _block("nngp_test_test", nngp_test_test, (n_test, n_test))
        cross = a_t @ k_sx.T  # (T, N*, N*)
        cov = k_ss + a_t @ k_xx @ a_t.transpose(1, 2) - cross - cross.transpose(1, 2)
    if scalar:
        mean = mean[0]
        cov = None if cov is None else cov[0]
    return NTKGPPrediction(mean, cov)
