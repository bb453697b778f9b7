"""Neural collapse metrics NC1-NC4 (Papyan, Han & Donoho 2020).

For last-layer features h_i of N samples in C classes: global mean mu_G, class means
mu_c, centred means M = [mu_c - mu_G]_c, within-class covariance
Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T and between-class covariance
Sigma_B = (1/C) sum_c (mu_c - mu_G)(mu_c - mu_G)^T ("Prevalence of neural collapse during
the terminal phase of deep learning training", PNAS 2020, Sec. 3 and Figs. 4-9):

* NC1 (variability collapse): tr(Sigma_W Sigma_B^+) / C.
* NC2 (simplex ETF): equinorm std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G|| (and the
  same for the classifier rows w_c); equiangularity std_{c != c'} cos(., .) and
  max-angle mean_{c != c'} |cos(., .) + 1/(C-1)|, which vanish at the simplex ETF.
* NC3 (self-duality): || W^T / ||W||_F - M / ||M||_F ||_F^2.
* NC4 (nearest class centre): the fraction of samples whose classifier decision
  argmax_c (W h + b)_c differs from argmin_c ||h - mu_c||.

Some lecture notes list self-duality fourth and the nearest-centre rule third; this
module keeps the paper's order (NC3 self-duality, NC4 nearest centre).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import as_float_tensor, message

__all__ = ["NeuralCollapse", "neural_collapse"]


@dataclass(frozen=True)
class NeuralCollapse:
    """NC1-NC4 (module docstring); classifier metrics are None without a classifier.

    Attributes:
        nc1: tr(Sigma_W Sigma_B^+) / C.
        equinorm_means, equinorm_classifier: coefficients of variation of the norms.
        equiangular_means, equiangular_classifier: std of the off-diagonal cosines.
        max_angle_means, max_angle_classifier: mean |cos + 1/(C-1)| off the diagonal.
        self_duality: ||W^T/||W|| - M/||M|| ||_F^2 (NC3).
        ncc_mismatch: fraction of decisions differing from the nearest class mean (NC4).
        n_classes: C.
    """

    nc1: float
    equinorm_means: float
    equiangular_means: float
    max_angle_means: float
    equinorm_classifier: float | None
    equiangular_classifier: float | None
    max_angle_classifier: float | None
    self_duality: float | None
    ncc_mismatch: float | None
    n_classes: int


def neural_collapse(
    features: Any,
    labels: Any,
    classifier_weight: Any = None,
    classifier_bias: Any = None,
) -> NeuralCollapse:
    """Neural-collapse metrics of last-layer features and, optionally, the classifier.

    Args:
        features: (N, d) last-layer features h_i (batch-first features of any shape
            (N, ...) are flattened to (N, d)).
        labels: (N,) integer classes in 0..C-1, every class present.
        classifier_weight: (C, d) last-layer weight W, or None.
        classifier_bias: (C,) last-layer bias b, or None (zero).

    Returns:
        :class:`NeuralCollapse`.

    At exact collapse onto a simplex ETF every metric is 0:

    >>> C = 3
    >>> M = torch.eye(C, dtype=torch.float64) - 1.0 / C  # centred simplex ETF means
    >>> h = M.repeat(4, 1)  # 4 samples per class, no within-class spread
    >>> y = torch.arange(C).repeat(4)
    >>> r = neural_collapse(h, y, classifier_weight=M)
    >>> abs(r.nc1) < 1e-12, abs(r.max_angle_means) < 1e-12, abs(r.self_duality) < 1e-12
    (True, True, True)
    """
    if isinstance(features, torch.Tensor | np.ndarray) and features.ndim > 2:
        features = features.reshape(features.shape[0], -1)  # batch-first, any shape
    h = as_float_tensor("features", features, ndim=2, dtype=torch.float64)
    # every metric is invariant under h -> h / s (the bias scales with it below): a power
    # of 2 near max |h| keeps covariances of features near the float64 limit finite
    scale = 2.0 ** math.frexp(float(h.abs().max()))[1] if bool(h.any()) else 1.0
    h = h / scale
    y = _labels(labels, h.shape[0])
    C = int(y.max()) + 1
    counts = torch.bincount(y, minlength=C)
    if C < 2 or bool((counts == 0).any()):
        raise ValueError(
            message("labels", "classes 0..C-1 with C >= 2, each present", counts.tolist())
        )
    N = h.shape[0]
    onehot = torch.nn.functional.one_hot(y, C).to(h.dtype)
    mu_c = (onehot.T @ h) / counts[:, None].to(h.dtype)  # (C, d)
    mu_g = h.mean(0)
    centred = h - mu_c[y]
    sigma_w = centred.T @ centred / N
    M = mu_c - mu_g  # rows mu_c - mu_G
    sigma_b = M.T @ M / C
    nc1 = float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True))) / C
    eq_m, ang_m, max_m = _norms_angles(M)
    eq_w = ang_w = max_w = dual = mismatch = None
    if classifier_weight is not None:
        W = as_float_tensor("classifier_weight", classifier_weight, ndim=2, dtype=torch.float64)
        if W.shape != (C, h.shape[1]):
            raise ValueError(
                message("classifier_weight", f"of shape (C, d) = {(C, h.shape[1])}", tuple(W.shape))
            )
        b = torch.zeros(C, dtype=torch.float64)
        if classifier_bias is not None:
            b = as_float_tensor("classifier_bias", classifier_bias, ndim=1, dtype=torch.float64)
            if b.shape != (C,):
                raise ValueError(message("classifier_bias", f"of shape ({C},)", tuple(b.shape)))
        eq_w, ang_w, max_w = _norms_angles(W)
        dual = float(((W / W.norm() - M / M.norm()) ** 2).sum())
        decision = (h @ W.T + b / scale).argmax(1)
        nearest = torch.cdist(h, mu_c).argmin(1)
        mismatch = float((decision != nearest).to(torch.float64).mean())
    return NeuralCollapse(nc1, eq_m, ang_m, max_m, eq_w, ang_w, max_w, dual, mismatch, C)


def _norms_angles(rows: torch.Tensor) -> tuple[float, float, float]:
    C = rows.shape[0]
    norms = rows.norm(dim=1)
    equinorm = float(norms.std(unbiased=False) / norms.mean())
    unit = rows / norms[:, None].clamp_min(torch.finfo(rows.dtype).tiny)
    cos = (unit @ unit.T)[~torch.eye(C, dtype=torch.bool)]
    max_angle = (cos + 1.0 / (C - 1)).abs().mean()
    return equinorm, float(cos.std(unbiased=False)), float(max_angle)


def _labels(labels: Any, n: int) -> torch.Tensor:
    if labels is None or isinstance(labels, str | bytes):
        raise TypeError(message("labels", "a 1-D array of integer classes", labels))
    y = torch.as_tensor(labels)
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex() or y.ndim != 1:
        raise TypeError(
            message(
                "labels",
                "a 1-D array of integer classes",
                f"dtype {y.dtype}, shape {tuple(y.shape)}",
            )
        )
    if y.shape[0] != n:
        raise ValueError(message("labels", f"of length N = {n} (one per feature row)", y.shape[0]))
    if bool((y < 0).any()):
        raise ValueError(message("labels", "classes >= 0", int(y.min())))
    return y.long()
