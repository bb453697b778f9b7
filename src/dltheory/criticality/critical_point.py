"""Critical initialisation (C_b, C_w) of an activation and its universality class.

Criticality asks for a fixed point K* of the diagonal kernel map with both
susceptibilities equal to one (Roberts, Yaida & Hanin 2022, Sec. 5.2, Eqs.
(5.7), (5.50), (5.51)):

    K* = C_b + C_w E_{K*}[s^2],   (C_w / 2) E_{K*}[(s^2)''] = 1,   C_w E_{K*}[s'^2] = 1.

Since (s^2)'' / 2 = s'^2 + s s'', the last two together say E_{K*}[s s''] = 0.
The classes (RYH ch. 5):

* ``"scale_invariant"``: s(a z) = a s(z) for a > 0 (ReLU, leaky ReLU, linear):
  C_b = 0, C_w = 1 / E[s'^2], every K* is fixed (``k_star`` is None);
* ``"k_star_zero"``: s(0) = 0, s'(0) != 0 and a_1 < 0 (tanh, erf, sin):
  C_b = 0, C_w = 1 / s'(0)^2, K* = 0, approached as K^(l) ~ 1 / (-a_1 l);
* ``"nonzero_k_star"``: a root K* > 0 of E_K[s s''] with C_b >= 0 (GELU,
  SiLU/swish); these critical points are half-stable: the map touches the
  diagonal at K*, so variances on one side flow in and on the other flow away;
* ``"none"``: no solution (sigmoid, softplus); ``reason`` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import brentq

from .._checks import message
from ..activations import Activation, activation

__all__ = ["CriticalPoint", "critical_point", "k_star_zero_decay"]

__fuzz_exempt__ = {"CriticalPoint": "result record, built by critical_point()"}

UniversalityClass = Literal["scale_invariant", "k_star_zero", "nonzero_k_star", "none"]
_CLASSES = ("scale_invariant", "k_star_zero", "nonzero_k_star", "none")
_ZERO = 1e-14
# Where to look for K* > 0 (roots of E_K[s s'']).
_K_GRID = torch.logspace(-3, 3, 121, dtype=torch.float64)


@dataclass(frozen=True)
class CriticalPoint:
    """A critical initialisation, or why there is none.

    Attributes:
        c_b: critical bias variance (None when there is no critical point).
        c_w: critical weight variance (None when there is no critical point).
        k_star: the critical fixed point K*; None for the scale-invariant class
            (every K is fixed) and when there is no critical point.
        universality_class: ``"scale_invariant"``, ``"k_star_zero"``,
            ``"nonzero_k_star"`` or ``"none"``.
        reason: one sentence on how the point was found, or why none exists.
    """

    c_b: float | None
    c_w: float | None
    k_star: float | None
    universality_class: UniversalityClass
    reason: str

    def __post_init__(self) -> None:
        if self.universality_class not in _CLASSES:
            allowed = ", ".join(repr(c) for c in _CLASSES)
            raise ValueError(
                message("universality_class", f"one of {allowed}", self.universality_class)
            )


def _at(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _third_derivative_at_zero(s: Activation) -> float:
    with torch.enable_grad():
        z = torch.zeros((), dtype=torch.float64, requires_grad=True)
        second = s.d2(z)
        if not second.requires_grad:  # s'' does not depend on z near 0 (e.g. 0)
            return 0.0
        (grad,) = torch.autograd.grad(second, z, allow_unused=True)
    return 0.0 if grad is None else float(grad)


def k_star_zero_decay(act: str | Activation) -> float:
    """The coefficient a_1 of K -> K + a_1 K^2 + O(K^3) at C_b = 0, C_w = 1 / s'(0)^2.

    With s(z) = s_1 z + s_2 z^2 + s_3 z^3 + ... and E[z^4] = 3 K^2,
    C_w E_K[s^2] = K + 3 (s_2^2 + 2 s_1 s_3) / s_1^2 K^2 + O(K^3), so

        a_1 = 6 s_3 / s_1 + 3 (s_2 / s_1)^2

    (Roberts, Yaida & Hanin 2022, Sec. 5.3.3). For a_1 < 0 the variance decays
    as K^(l) ~ 1 / (-a_1 l); tanh and erf give a_1 = -2 (i.e. K^(l) ~ 1 / (2 l)),
    sin gives a_1 = -1.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`,
            three times differentiable at 0.

    Raises:
        ValueError: if s has a kink or a jump at 0 (the expansion in powers of
            z does not exist there), s(0) != 0 or s'(0) = 0 (no K* = 0 expansion).

    Example:
        >>> round(k_star_zero_decay("tanh"), 12)
        -2.0
        >>> k_star_zero_decay("identity")  # C_w E_K[s^2] = K exactly
        0.0
    """
    s = activation(act)
    if 0.0 in s.kinks or 0.0 in s.jumps:
        raise ValueError(
            message(
                "activation",
                "smooth at the origin (no kink at 0)",
                s.name,
                "s(z) has no Taylor expansion at 0, so C_w E_K[s^2] is not K + a_1 K^2 + ...; "
                "scale-invariant activations (relu, leaky_relu) have every K fixed instead",
            )
        )
    s0 = float(s.fn(_at(0.0)))
    s1 = float(s.d1(_at(0.0)))
    if abs(s0) > _ZERO:
        raise ValueError(
            message("activation", "zero at the origin, s(0) = 0", s.name, "K* = 0 needs s(0) = 0")
        )
    if abs(s1) <= _ZERO:
        raise ValueError(message("activation", "of non-zero slope at the origin", s.name))
    s2 = float(s.d2(_at(0.0))) / 2
    s3 = _third_derivative_at_zero(s) / 6
    return 6 * s3 / s1 + 3 * (s2 / s1) ** 2


def _scale_invariant(s: Activation) -> CriticalPoint | None:
    slope2 = float(s.derivative_second_moment(_at(1.0)))
    if abs(float(s.fn(_at(0.0)))) > _ZERO or slope2 <= _ZERO:
        return None
    c_w = 1.0 / slope2
    ks = torch.logspace(-3, 3, 13, dtype=torch.float64)
    fixed = (c_w * s.second_moment(ks) - ks).abs() <= 1e-10 * ks.clamp_min(1.0)
    flat = (0.5 * c_w * s.square_second_derivative(ks) - 1).abs() <= 1e-10
    if bool(fixed.all() and flat.all()):
        return CriticalPoint(
            c_b=0.0,
            c_w=c_w,
            k_star=None,
            universality_class="scale_invariant",
            reason="s is scale-invariant: with C_b = 0, C_w = 1 / E[s'^2] every K is a "
            "fixed point with chi_parallel = chi_perp = 1.",
        )
    return None


def _nonzero(s: Activation) -> CriticalPoint | None:
    # chi_parallel = chi_perp  <=>  E_K[s s''] = E[(s^2)'']/2 - E[s'^2] = 0.
    def h(k: torch.Tensor | float) -> torch.Tensor:
        k = torch.as_tensor(k, dtype=torch.float64)
        return 0.5 * s.square_second_derivative(k) - s.derivative_second_moment(k)

    ks, values = _K_GRID.numpy(), h(_K_GRID).numpy()
    for i in range(len(ks) - 1):
        if not (np.isfinite(values[i : i + 2]).all() and values[i] * values[i + 1] < 0):
            continue
        try:
            k_star = brentq(lambda v: float(h(v)), ks[i], ks[i + 1], xtol=1e-300, rtol=1e-15)
        except ValueError:  # a non-finite map value inside the bracket
            continue
        slope2 = float(s.derivative_second_moment(_at(k_star)))
        if slope2 <= _ZERO:
            continue
        c_w = 1.0 / slope2  # chi_perp = 1
        c_b = k_star - c_w * float(s.second_moment(_at(k_star)))  # K* is fixed
        if c_b >= -1e-12:
            return CriticalPoint(
                c_b=max(c_b, 0.0),
                c_w=c_w,
                k_star=float(k_star),
                universality_class="nonzero_k_star",
                reason="K* > 0 solves E_K[s s''] = 0 (chi_parallel = chi_perp); C_w = "
                "1 / E_K*[s'^2] and C_b from the fixed-point equation. Half-stable.",
            )
    return None


def _kinked_k_star_zero(s: Activation) -> CriticalPoint | None:
    """K* = 0 for s(0) = 0 with a kink at 0 (ELU): one-sided slopes s'(0+), s'(0-).

    E_K[s^2] = K (s'(0+)^2 + s'(0-)^2) / 2 + O(K^(3/2)), so C_w = 2 / (s'(0+)^2 +
    s'(0-)^2) gives chi_parallel = chi_perp = 1 at K* = 0, which attracts when
    C_w E_K[s^2] < K for small K (a negative K^(3/2) term: K^(l) ~ 1 / l^2, not the
    1 / (-a_1 l) law of smooth activations). Scale-invariant s are found earlier.
    """
    tiny = _at(1e-300)  # one-sided limits, exact for exp-type branches
    slopes = float(s.d1(tiny)) ** 2 + float(s.d1(-tiny)) ** 2
    if slopes <= _ZERO:
        return None
    c_w = 2.0 / slopes
    ks = torch.tensor([1e-6, 1e-4], dtype=torch.float64)
    excess = (c_w * s.second_moment(ks) / ks - 1.0).tolist()
    if not all(e < -1e-9 for e in excess):
        return None
    return CriticalPoint(
        c_b=0.0,
        c_w=c_w,
        k_star=0.0,
        universality_class="k_star_zero",
        reason="s(0) = 0 with a kink at 0: C_w = 2 / (s'(0+)^2 + s'(0-)^2) gives "
        "chi_parallel = chi_perp = 1 at K* = 0, which attracts (C_w E_K[s^2] < K for "
        "small K, a K^(3/2) term: K^(l) ~ 1 / l^2).",
    )


def critical_point(act: str | Activation) -> CriticalPoint:
    """Critical (C_b, C_w, K*) with chi_parallel = chi_perp = 1 at a fixed point.

    Solves K* = C_b + C_w E[s^2], (C_w / 2) E[(s^2)''] = 1, C_w E[s'^2] = 1
    (Roberts, Yaida & Hanin 2022, Eqs. (5.7), (5.50), (5.51)); see the module
    docstring for the classes. Some lecture notes' tanh example writes (C_w)^2 for the
    linear recursion; the correct map is K -> C_b + C_w K.

    Args:
        act: an activation name or :class:`~dltheory.activations.Activation`.

    Returns:
        :class:`CriticalPoint` (``universality_class="none"`` with a ``reason``
        when no critical point exists; never raises for a valid activation).

    Example:
        >>> cp = critical_point("relu")
        >>> (cp.c_b, cp.c_w, cp.universality_class)
        (0.0, 2.0, 'scale_invariant')
    """
    s = activation(act)
    found = _scale_invariant(s)
    if found is not None:
        return found
    s0 = float(s.fn(_at(0.0)))
    s1 = float(s.d1(_at(0.0)))
    a_1 = math.nan
    smooth_at_zero = 0.0 not in s.kinks and 0.0 not in s.jumps
    if s.jumps:
        return CriticalPoint(
            c_b=None,
            c_w=None,
            k_star=None,
            universality_class="none",
            reason=f"No critical point: s jumps at {', '.join(f'{p:g}' for p in s.jumps)}, so "
            "chi_perp = C_w E[s'^2] is infinite for every C_w > 0 (the correlation map has "
            "an infinite slope at rho = 1): every initialisation is chaotic.",
        )
    if abs(s0) <= _ZERO and abs(s1) > _ZERO and smooth_at_zero:
        a_1 = k_star_zero_decay(s)
        if a_1 < 0:
            return CriticalPoint(
                c_b=0.0,
                c_w=1.0 / s1**2,
                k_star=0.0,
                universality_class="k_star_zero",
                reason=f"s(0) = 0 and a_1 = {a_1:.6g} < 0: K* = 0 with C_w = 1 / s'(0)^2 "
                "attracts, K^(l) ~ 1 / (-a_1 l).",
            )
    if abs(s0) <= _ZERO and not smooth_at_zero:
        found = _kinked_k_star_zero(s)
        if found is not None:
            return found
    found = _nonzero(s)
    if found is not None:
        return found
    if abs(s0) > _ZERO:
        why = f"s(0) = {s0:.6g} != 0, so K* = 0 is not a fixed point for any C_b >= 0"
    elif not smooth_at_zero:
        why = "s has a kink at 0, so the K* = 0 expansion in powers of K does not apply"
    elif abs(s1) <= _ZERO:
        why = "s'(0) = 0, so chi_perp(0) = 0 for every C_w"
    else:
        why = f"K* = 0 repels (a_1 = {a_1:.6g} >= 0)"
    return CriticalPoint(
        c_b=None,
        c_w=None,
        k_star=None,
        universality_class="none",
        reason=f"No critical point: {why}, and chi_parallel = chi_perp (E_K[s s''] = 0) "
        "has no solution K in [1e-3, 1e3] with C_b >= 0.",
    )
