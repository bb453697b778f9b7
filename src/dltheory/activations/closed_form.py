"""Activations whose Gaussian maps have closed forms.

Sources:
* ReLU / step: arc-cosine kernels, Cho & Saul (2009), Eq. (6)-(7) with n = 1, 0.
  Some lecture notes call k_n "E[relu(u)^n relu(v)^n]"; Cho & Saul's k_n is twice that
  (their weights have unit variance over 2 sides); we return the expectation.
* Leaky ReLU / abs: s = a z + b |z| with a = (1+slope)/2, b = (1-slope)/2, and
  E|u||v| = sqrt(k11 k22) (2 sin t + (pi - 2t) cos t) / pi.
* sign: E[sign u sign v] = (2/pi) arcsin(rho) (Sheppard's formula).
* erf: Williams (1997), "Computing with infinite networks", Eq. (11). Some notes
  attribute this form to tanh; it is exact for erf only.
* sin / cos: E[sin u sin v] = exp(-(k11+k22)/2) sinh(k12), cosh for cos.

Step and sign have zero derivative almost everywhere: their NTK map is 0, which
is what autograd (and gradient descent) sees in a finite network.

Angles are taken from rho with rho snapped to +-1 within a few ulps, so the
diagonal (the same input twice) is exact: theta = 0, not ~1e-8.
"""

from __future__ import annotations

import math

import torch

from .. import _fastmath
from .._checks import check_real
from .base import Activation
from .quadrature import _correlation

try:  # scalar twins of the closed forms for the fused CPU kernel backend
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

__all__ = ["abs_", "cos", "erf", "identity", "leaky_relu", "relu", "sign", "sin", "step"]

_PI = math.pi
_SNAP = 64 * 2.220446049250313e-16


def _scalar(fn):
    """Compile a scalar map with numba (cached on disk) when numba is there."""
    return fn if njit is None else njit(cache=True, inline="always")(fn)


# Scalar twins of the closed forms, (k11, k12, k22, param) -> (E[s s], E[s' s']),
# for the fused CPU backend; a test checks each against the torch forms below.
@_scalar
def _norm(k11, k22):
    """sqrt(k11 k22): the product where it is safely in range (one rounding, exact
    on the diagonal), sqrt(k11) sqrt(k22) where it would over- or underflow."""
    p = k11 * k22
    if 1e-290 < p < 1e290:
        return math.sqrt(p)
    return math.sqrt(k11) * math.sqrt(k22)


@_scalar
def _rho(k11, k12, k22):
    # k12 / sqrt(k11) / sqrt(k22): the product k11 * k22 over/underflows at
    # |x| ~ 1e77 / 1e-81 where every factor is still a normal float.
    a, b = math.sqrt(k11), math.sqrt(k22)
    rho = (k12 / a) / b if a > 0 and b > 0 else 0.0
    rho = min(1.0, max(-1.0, rho))
    if abs(rho) >= 1 - _SNAP:
        rho = 1.0 if rho > 0 else -1.0
    return rho


@_scalar
def _relu_pair(k11, k12, k22, param):
    rho = _rho(k11, k12, k22)
    theta = _fastmath.acos(rho)
    sin = math.sqrt(max((1 - rho) * (1 + rho), 0.0))
    return (
        _norm(k11, k22) * (sin + (math.pi - theta) * rho) / (2 * math.pi),
        (math.pi - theta) / (2 * math.pi),
    )


@_scalar
def _leaky_pair(k11, k12, k22, slope):
    a2, b2 = ((1 + slope) / 2) ** 2, ((1 - slope) / 2) ** 2
    rho = _rho(k11, k12, k22)
    theta = _fastmath.acos(rho)
    sin = math.sqrt(max((1 - rho) * (1 + rho), 0.0))
    abs_moment = _norm(k11, k22) * (2 * sin + (math.pi - 2 * theta) * rho) / math.pi
    return a2 * k12 + b2 * abs_moment, a2 + b2 * (2 / math.pi) * _fastmath.asin(rho)


@_scalar
def _step_pair(k11, k12, k22, param):
    return (math.pi - _fastmath.acos(_rho(k11, k12, k22))) / (2 * math.pi), 0.0


@_scalar
def _sign_pair(k11, k12, k22, param):
    return (2 / math.pi) * _fastmath.asin(_rho(k11, k12, k22)), 0.0


@_scalar
def _erf_pair(k11, k12, k22, param):
    ra, rb = math.sqrt(1 + 2 * k11), math.sqrt(1 + 2 * k22)
    x = min(1.0, max(-1.0, ((2 * k12) / ra) / rb))
    # det = (1 + 2 k11)(1 + 2 k22) - 4 k12^2 = 1 + 2 (k11 + k22) + 4 k11 k22 (1 - rho^2),
    # scaled by m^2 (m = max(1, k11, k22)) so that nothing overflows.
    rho = _rho(k11, k12, k22)
    m = max(1.0, k11, k22)
    p = (math.sqrt(k11) / m) * math.sqrt(k22)
    det = (1 / m + 2 * (k11 / m + k22 / m)) / m + 4 * p * p * ((1 - rho) * (1 + rho))
    return (2 / math.pi) * _fastmath.asin(x), (4 / math.pi) / (m * math.sqrt(max(det, 1e-300)))


@_scalar
def _sin_pair(k11, k12, k22, param):
    e = math.exp(-(k11 + k22) / 2)
    return e * math.sinh(k12), e * math.cosh(k12)


@_scalar
def _cos_pair(k11, k12, k22, param):
    e = math.exp(-(k11 + k22) / 2)
    return e * math.cosh(k12), e * math.sinh(k12)


@_scalar
def _identity_pair(k11, k12, k22, param):
    return k12, 1.0


PAIR_CODES = {
    "relu": 1,
    "leaky_relu": 2,
    "step": 3,
    "sign": 4,
    "erf": 5,
    "sin": 6,
    "cos": 7,
    "identity": 8,
}


@_scalar
def closed_pair_row(code, param, k11, k12, k22, theta):
    """In place over a row of pairs (k11 scalar, k12 / k22 / theta arrays):
    k12 <- E[s s], theta <- theta E[s' s']. One loop per closed form (no dispatch
    inside the loop), so that each loop can be vectorised."""
    n = k12.shape[0]
    if code == 1:
        for j in range(n):
            a, b = _relu_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    elif code == 2:
        for j in range(n):
            a, b = _leaky_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    elif code == 3:
        for j in range(n):
            a, b = _step_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    elif code == 4:
        for j in range(n):
            a, b = _sign_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    elif code == 5:
        for j in range(n):
            a, b = _erf_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    elif code == 6:
        for j in range(n):
            a, b = _sin_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    elif code == 7:
        for j in range(n):
            a, b = _cos_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b
    else:
        for j in range(n):
            a, b = _identity_pair(k11, k12[j], k22[j], param)
            k12[j] = a
            theta[j] *= b


def _angle(k11: torch.Tensor, k12: torch.Tensor, k22: torch.Tensor):
    """(rho, theta, sin theta, sqrt(k11 k22)) with the diagonal exact."""
    k11, k12, k22 = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (k11, k12, k22)))
    rho = _correlation(k11, k12, k22)
    theta = torch.arccos(rho)
    sin = ((1 - rho) * (1 + rho)).clamp_min(0).sqrt()
    # sqrt(k11 k22) by the product where it is in range (exact on the diagonal), by
    # sqrt(k11) sqrt(k22) where the product would over- or underflow.
    p = k11 * k22
    norm = torch.where((p > 1e-290) & (p < 1e290), p.sqrt(), k11.sqrt() * k22.sqrt())
    return rho, theta, sin, norm


def _relu_nngp(k11, k12, k22):
    rho, theta, sin, norm = _angle(k11, k12, k22)
    return norm * (sin + (_PI - theta) * rho) / (2 * _PI)


def _relu_ntk(k11, k12, k22):
    _, theta, _, _ = _angle(k11, k12, k22)
    return (_PI - theta) / (2 * _PI)


def _abs_moment(k11, k12, k22):
    """E|u||v|."""
    rho, theta, sin, norm = _angle(k11, k12, k22)
    return norm * (2 * sin + (_PI - 2 * theta) * rho) / _PI


def _sign_moment(k11, k12, k22):
    rho, _, _, _ = _angle(k11, k12, k22)
    return (2 / _PI) * torch.arcsin(rho)


def _step_fn(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _zeros_like(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


def _zero_map(k11, k12, k22):
    k11, k12, k22 = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (k11, k12, k22)))
    return torch.zeros_like(k12)


def relu() -> Activation:
    """ReLU, s(z) = max(z, 0): the arc-cosine kernel of degree 1."""
    return Activation(
        name="relu",
        pair_code=PAIR_CODES["relu"],
        fn=torch.relu,
        d1=_step_fn,
        d2=_zeros_like,
        nngp_closed=_relu_nngp,
        ntk_closed=_relu_ntk,
        second_derivative_closed=lambda k: torch.ones_like(k),
        kinks=(0.0,),
    )


def leaky_relu(slope: float = 0.01) -> Activation:
    """Leaky ReLU, s(z) = max(z, slope z) = a z + b |z|."""
    slope = check_real("slope", slope)
    a, b = (1 + slope) / 2, (1 - slope) / 2

    def nngp(k11, k12, k22):
        return a * a * k12 + b * b * _abs_moment(k11, k12, k22)

    def ntk(k11, k12, k22):
        return a * a + b * b * _sign_moment(k11, k12, k22)

    return Activation(
        name="leaky_relu",
        pair_code=PAIR_CODES["leaky_relu"],
        pair_param=slope,
        fn=lambda x: torch.nn.functional.leaky_relu(x, slope),
        d1=lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, slope)),
        d2=_zeros_like,
        nngp_closed=nngp,
        ntk_closed=ntk,
        second_derivative_closed=lambda k: torch.full_like(k, 1 + slope * slope),
        kinks=(0.0,),
        params={"slope": slope},
    )


def abs_() -> Activation:
    """Absolute value |z|."""
    return Activation(
        name="abs",
        pair_code=PAIR_CODES["leaky_relu"],
        pair_param=-1.0,
        fn=torch.abs,
        d1=torch.sign,
        d2=_zeros_like,
        nngp_closed=_abs_moment,
        ntk_closed=_sign_moment,
        second_derivative_closed=lambda k: torch.full_like(k, 2.0),
        kinks=(0.0,),
    )


def step() -> Activation:
    """Heaviside step 1(z > 0): the arc-cosine kernel of degree 0."""
    return Activation(
        name="step",
        pair_code=PAIR_CODES["step"],
        fn=_step_fn,
        d1=_zeros_like,
        d2=_zeros_like,
        nngp_closed=lambda k11, k12, k22: (_PI - _angle(k11, k12, k22)[1]) / (2 * _PI),
        ntk_closed=_zero_map,
        second_derivative_closed=lambda k: torch.zeros_like(k),
        kinks=(0.0,),
    )


def sign() -> Activation:
    """Sign function, E[sign u sign v] = (2/pi) arcsin(rho)."""
    return Activation(
        name="sign",
        pair_code=PAIR_CODES["sign"],
        fn=torch.sign,
        d1=_zeros_like,
        d2=_zeros_like,
        nngp_closed=_sign_moment,
        ntk_closed=_zero_map,
        second_derivative_closed=lambda k: torch.zeros_like(k),
        kinks=(0.0,),
    )


def erf() -> Activation:
    """Error function; Williams (1997) closed forms."""

    def nngp(k11, k12, k22):
        return (2 / _PI) * torch.arcsin(
            ((2 * k12 / (1 + 2 * k11).sqrt()) / (1 + 2 * k22).sqrt()).clamp(-1, 1)
        )

    def ntk(k11, k12, k22):
        # det = (1 + 2 k11)(1 + 2 k22) - 4 k12^2 = 1 + 2 (k11 + k22) + 4 k11 k22 (1 - rho^2),
        # scaled by m^2 (m = max(1, k11, k22)): no overflow at K ~ 1e155 and beyond.
        k11, k12, k22 = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (k11, k12, k22)))
        rho = _correlation(k11, k12, k22)
        m = torch.maximum(torch.maximum(k11, k22), torch.ones_like(k11))
        p = (k11.sqrt() / m) * k22.sqrt()
        det = (1 / m + 2 * (k11 / m + k22 / m)) / m + 4 * p * p * ((1 - rho) * (1 + rho))
        return (4 / _PI) / (m * det.clamp_min(1e-300).sqrt())

    two_over_root_pi = 2 / math.sqrt(_PI)
    return Activation(
        name="erf",
        pair_code=PAIR_CODES["erf"],
        fn=torch.erf,
        d1=lambda x: two_over_root_pi * torch.exp(-x * x),
        d2=lambda x: -2 * x * two_over_root_pi * torch.exp(-x * x),
        nngp_closed=nngp,
        ntk_closed=ntk,
        # 2 d/dK (2/pi) arcsin(2K / (1 + 2K)).
        second_derivative_closed=lambda k: 8 / (_PI * (1 + 2 * k) * (1 + 4 * k).sqrt()),
    )


def _sinh_map(k11, k12, k22):
    return torch.exp(-(k11 + k22) / 2) * torch.sinh(k12)


def _cosh_map(k11, k12, k22):
    return torch.exp(-(k11 + k22) / 2) * torch.cosh(k12)


def sin() -> Activation:
    """sin z: E[sin u sin v] = exp(-(k11 + k22)/2) sinh(k12)."""
    return Activation(
        name="sin",
        pair_code=PAIR_CODES["sin"],
        fn=torch.sin,
        d1=torch.cos,
        d2=lambda x: -torch.sin(x),
        nngp_closed=_sinh_map,
        ntk_closed=_cosh_map,
        second_derivative_closed=lambda k: 2 * torch.exp(-2 * k),
    )


def cos() -> Activation:
    """cos z: E[cos u cos v] = exp(-(k11 + k22)/2) cosh(k12)."""
    return Activation(
        name="cos",
        pair_code=PAIR_CODES["cos"],
        fn=torch.cos,
        d1=lambda x: -torch.sin(x),
        d2=lambda x: -torch.cos(x),
        nngp_closed=_cosh_map,
        ntk_closed=_sinh_map,
        second_derivative_closed=lambda k: -2 * torch.exp(-2 * k),
    )


def identity() -> Activation:
    """Identity (deep linear networks): E[uv] = k12, E[1] = 1."""
    return Activation(
        name="identity",
        pair_code=PAIR_CODES["identity"],
        fn=lambda x: x,
        d1=torch.ones_like,
        d2=_zeros_like,
        nngp_closed=lambda k11, k12, k22: torch.broadcast_tensors(k11, k12, k22)[1].clone(),
        ntk_closed=lambda k11, k12, k22: torch.ones_like(torch.broadcast_tensors(k11, k12, k22)[1]),
        second_derivative_closed=lambda k: torch.full_like(k, 2.0),
    )
