"""Susceptibilities chi_parallel and chi_perp of the single-layer kernel map.

Linearising K^(l+1) = C_b + C_w E_{K^(l)}[s(u) s(v)] about a diagonal point
K_11 = K_22 = K_12 = K gives two eigen-directions (Roberts, Yaida & Hanin 2022,
Sec. 5.1, Eqs. (5.44)-(5.50)):

* parallel (the diagonal): chi_parallel(K) = (C_w / 2) E_K[(s^2)''(z)]
  = C_w d/dK E_K[s^2], by Gaussian integration by parts;
* perpendicular (the off-diagonal at K_12 = K): chi_perp(K) = C_w E_K[s'(z)^2]
  (Schoenholz et al. 2017 call it chi_1).

An activation with a jump (step, sign) has a delta in s': E[s'^2] is infinite,
and so is chi_perp for C_w > 0 (the correlation map E[s(u) s(v)] ~ arcsin(rho)
has an infinite slope at rho = 1). ``ntk_map`` of such activations is the
autograd (almost-everywhere) derivative, 0, which is what a finite network's
gradient sees; the susceptibility is about the kernel map and is infinite.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._checks import as_float_tensor, check_nonnegative, message
from ..activations import Activation, activation

__all__ = ["chi_parallel", "chi_perp"]


def _variances(k: Any) -> torch.Tensor:
    tensor = as_float_tensor("k", k, dtype=torch.float64, detach=True)
    if bool((tensor < 0).any()):
        raise ValueError(message("k", "a variance >= 0", k, "Pass preactivation variances K >= 0"))
    return tensor


def chi_parallel(act: str | Activation, c_w: float, k: Any) -> torch.Tensor:
    """Parallel susceptibility chi_parallel(K) = (C_w / 2) E_K[(s^2)''(z)].

    Eq. (5.50) of Roberts, Yaida & Hanin (2022); equal to d K' / d K for the
    diagonal map K -> C_b + C_w E_K[s^2].

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w: weight variance C_w >= 0.
        k: variance(s) K >= 0 (float, array or tensor; any shape).

    Returns:
        float64 tensor of the shape of ``k`` (0-D for a float).

    Example:
        >>> round(float(chi_parallel("relu", 2.0, 1.5)), 12)  # He init: 1 for all K
        1.0
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    return 0.5 * c_w * s.square_second_derivative(_variances(k))


def chi_perp(act: str | Activation, c_w: float, k: Any) -> torch.Tensor:
    """Perpendicular susceptibility chi_perp(K) = C_w E_K[s'(z)^2].

    Eq. (5.51) of Roberts, Yaida & Hanin (2022); chi_1 of Schoenholz et al.
    (2017). Equal to d K'_12 / d K_12 at K_11 = K_22 = K_12 = K.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.
        c_w: weight variance C_w >= 0.
        k: variance(s) K >= 0 (float, array or tensor; any shape).

    Returns:
        float64 tensor of the shape of ``k`` (0-D for a float); inf for an
        activation with a jump (step, sign) and C_w > 0 (module docstring).

    Example:
        >>> float(chi_perp("identity", 1.0, 3.0))  # deep linear nets
        1.0
        >>> float(chi_perp("sign", 1.0, 3.0))  # d/drho (2/pi) arcsin(rho) at rho = 1
        inf
    """
    s = activation(act)
    c_w = check_nonnegative("c_w", c_w)
    k = _variances(k)
    if s.jumps:
        return torch.full_like(k, math.inf if c_w > 0 else 0.0)
    return c_w * s.derivative_second_moment(k)
