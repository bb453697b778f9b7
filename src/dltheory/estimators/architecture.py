"""The ``architecture=`` of the estimators: a spec or a torch model, and image inputs.

``NTKClassifier(architecture=my_cnn)`` is a CNTK classifier: ``my_cnn`` (any
``torch.nn.Module`` that :func:`dltheory.spec_from_module` lifts, or a dltheory spec)
names the network whose infinite-width kernel the estimator uses, in the
parametrisation the lifted spec describes (PyTorch's own initialisation by default).
Inputs may be images as torch lays them out, (N, C, H, W) or (N, C, L):
scikit-learn's validation reads 2-D arrays only, so they are flattened to rows
(N, C H W) and the spec reads them back with ``input_shape`` (``input_shape_``, set
by ``fit``). Flat rows of a spec with its own ``input_shape`` work as well.

``spec=`` (the older keyword) and ``architecture=`` name the same thing: giving both
is refused. With either, the architecture's variances are its own: the MLP
hyperparameters (``activation``, ``depth``, ``c_w``, ``c_b``) are not read. With
``spec=`` nothing is learned (as before); with ``architecture=``,
``optimizer="fmin_l_bfgs_b"`` (the default) learns the noise variance ``alpha_``
only, maximising the evidence of the targets over alpha on one eigendecomposition of
the kernel (Rasmussen & Williams 2006, Eq. 5.8); with
``sample_weight`` or ``optimizer=None`` alpha is kept as given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.optimize
import torch

from .._checks import message
from ..spec.layers import Serial

__all__ = ["flatten_images", "learn_noise", "resolve_architecture"]


def resolve_architecture(est: Any) -> Serial | None:
    """The spec of ``est.architecture`` (or ``est.spec``), None for the MLP hyperparameters."""
    arch, spec = getattr(est, "architecture", None), getattr(est, "spec", None)
    name = type(est).__name__
    if arch is not None and spec is not None:
        raise ValueError(
            message(
                f"The 'architecture' parameter of {name}",
                "None when 'spec' is given (they name the same network)",
                type(arch).__name__,
                "Pass one of them; architecture= takes a spec or a torch module",
            )
        )
    if arch is None:
        return spec
    if isinstance(arch, torch.nn.Module):
        from ..spec.from_module import spec_from_module

        out = spec_from_module(arch)
    elif isinstance(arch, Serial):
        out = arch
    else:
        raise ValueError(
            message(
                f"The 'architecture' parameter of {name}",
                "None, a dltheory spec or a torch.nn.Module",
                type(arch).__name__,
            )
        )
    return out


def with_input_shape(spec: Serial, shape: tuple[int, ...] | None) -> Serial:
    """The spec reading flattened images of ``shape`` (unchanged for rows)."""
    if shape is None or spec.input_shape == shape:
        return spec
    return Serial(*spec.layers, width=spec.width, in_dim=spec.in_dim, input_shape=shape)


def flatten_images(est: Any, X: Any, reset: bool) -> Any:
    """Images (N, C, *pixels) -> rows (N, C prod(pixels)); records ``input_shape_``.

    Only for estimators with an ``architecture`` (or ``spec``); anything else passes
    through to scikit-learn's validation unchanged.
    """
    if getattr(est, "architecture", None) is None and getattr(est, "spec", None) is None:
        return X
    if isinstance(X, str) or not hasattr(X, "__len__") or hasattr(X, "tocsr"):
        return X
    arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if arr.dtype == object or arr.ndim <= 2:
        if reset:
            est.input_shape_ = None
        return X
    if reset:
        est.input_shape_ = tuple(int(n) for n in arr.shape[1:])
    elif getattr(est, "input_shape_", None) != tuple(arr.shape[1:]):
        raise ValueError(
            message(
                "X",
                f"images of shape {getattr(est, 'input_shape_', None)} (as in fit)",
                f"shape {tuple(arr.shape)}",
            )
        )
    return arr.reshape(len(arr), -1)


def learn_noise(k: np.ndarray, y: np.ndarray, start: float) -> tuple[float, float]:
    """(alpha, log evidence): the noise variance maximising the GP evidence of targets y.

    log p(y) = -1/2 sum_c y_c^T (K + alpha I)^-1 y_c - (n_c / 2) log det(K + alpha I)
    - (N n_c / 2) log 2 pi, on the eigendecomposition K = U diag(l) U^T, over
    log alpha in [log(1e-10 s), log(10 s)] with s = mean(diag K) (the evidence of
    Rasmussen & Williams 2006, Eq. 2.30, per target column).
    """
    lam, u = np.linalg.eigh(k)
    lam = np.maximum(lam, 0.0)
    z2 = np.square(u.T @ y).sum(1)  # (N,): squared projections, summed over columns
    n, c = y.shape
    s = float(np.mean(np.diagonal(k))) or 1.0

    def neg(log_a: float) -> float:
        d = lam + math.exp(log_a)
        return 0.5 * float((z2 / d).sum()) + 0.5 * c * float(np.log(d).sum())

    lo, hi = math.log(1e-10 * s), math.log(10.0 * s)
    res = scipy.optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded")
    best = min((res.x, math.log(max(start, 1e-300))), key=lambda t: neg(min(max(t, lo), hi)))
    best = min(max(best, lo), hi)
    return math.exp(best), -neg(best) - 0.5 * n * c * math.log(2 * math.pi)
