"""NTK convergence theory for wide two-layer ReLU nets (Du et al. 2019).

Du, Zhai, Poczos & Singh 2019, "Gradient descent provably optimizes
over-parameterized neural networks" (ICLR): f(x) = n^{-1/2} sum_r a_r relu(w_r . x),
w_r ~ N(0, I), a_r fixed, |x_i| = 1, loss Phi = 1/2 sum_i (f(x_i) - y_i)^2 over N points.
With H^inf_ij = E_w[x_i . x_j 1{w.x_i >= 0} 1{w.x_j >= 0}] and lambda_0 = lambda_min(H^inf)
(> 0 when no two inputs are parallel, Thm 3.1), for width n = Omega(N^6 / (lambda_0^4
delta^3)) and step eta_Phi = O(lambda_0 / N^2), with probability 1 - delta
(Thm 4.1) ||y - u(k)||^2 <= (1 - eta_Phi lambda_0 / 2)^k ||y - u(0)||^2, every neuron
moves at most R' = 2 sqrt(N) ||y - u(0)|| / (sqrt(n) lambda_0) (Lemma 3.3; 4 sqrt(N)...
for GD, Thm 4.1's proof), and lambda_min(H(k)) stays >= lambda_0 / 2.

dltheory's loss is L = Phi / N (1/(2N) sum), so GD with learning rate eta on L is GD
with eta / N on Phi: the envelope reads L(k) <= (1 - eta lambda_0 / (2N))^k L(0), and
the weight-movement bound (a property of the path) is unchanged.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from .._checks import as_float_tensor, check_bytes, check_int, check_positive, check_real, message
from ..spec.layers import Dense, Nonlinearity, Serial

__all__ = [
    "DuPrediction",
    "du_prediction",
    "du_two_layer_spec",
    "lambda_0",
    "width_condition_notes",
    "width_condition_paper",
]


def du_two_layer_spec(in_dim: int) -> Serial:
    """Du et al.'s net: first layer trained (w_r ~ N(0, I)), readout n^{-1/2} a_r frozen.

    As a spec: ``Dense(c_w=d, lr_w=d)`` (so the trained weights are w_r themselves and
    Theta^(1) = x_a . x_b), ReLU, readout ``Dense(c_w=1, lr_w=0)`` (a frozen Gaussian
    a_r / sqrt(n)). Its ``kernel(x).ntk`` is H^inf; the finite net has Gaussian rather
    than +-1 readout signs, which leaves H^inf unchanged.

    >>> spec = du_two_layer_spec(in_dim=2)
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> spec.kernel(x).ntk.diagonal().tolist()   # E[1{w.x >= 0}] |x|^2 = 1/2
    [0.5, 0.5]
    """
    if in_dim is None:  # the weight variance must be d: a spec needs the input width
        raise ValueError(message("in_dim", "given (the input width d)", None))
    d = check_int("in_dim", in_dim, minimum=1)
    first = Dense(c_w=float(d), lr_w=float(d))
    return Serial(first, Nonlinearity("relu"), Dense(c_w=1.0, width=1, lr_w=0.0), in_dim=d)


def _parallel_pairs(x: torch.Tensor, tol: float = 1e-10) -> list[tuple[int, int]]:
    unit = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
    cos = (unit @ unit.T).abs()
    i, j = torch.nonzero(torch.triu(cos > 1 - tol, diagonal=1), as_tuple=True)
    return list(zip(i.tolist(), j.tolist(), strict=True))[:5]


def lambda_0(spec: Serial, x: Any) -> float:
    """lambda_0 = lambda_min of the infinite-width NTK of ``spec`` on the training inputs.

    Positive for non-polynomial activations and pairwise non-parallel inputs (Du et
    al. 2019, Thm 3.1; Jacot et al. 2018, Prop. 2). When it is not (numerically <= 1e-12
    lambda_max), the ValueError says why: the parallel input pairs, or else a
    polynomial-like activation whose kernel has low rank.

    >>> x = torch.eye(2, dtype=torch.float64)
    >>> round(lambda_0(du_two_layer_spec(in_dim=2), x), 12)   # H^inf = I / 2 for e_1, e_2
    0.5
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64)
    ntk = spec.kernel(x).ntk
    eig = torch.linalg.eigvalsh((ntk + ntk.T) / 2)
    lam_min, lam_max = float(eig[0]), float(eig[-1])
    if lam_min <= 1e-12 * max(lam_max, 1e-300):
        pairs = _parallel_pairs(x)
        why = (
            f"inputs {pairs} are parallel (their feature maps are collinear)"
            if pairs
            else "the activation acts like a polynomial on these inputs (its NTK has low rank)"
        )
        raise ValueError(
            message(
                "x",
                "training inputs with a positive-definite infinite-width NTK",
                f"lambda_min = {lam_min:.3g}",
                f"lambda_0 > 0 fails because {why}; remove duplicates or use a "
                "non-polynomial activation",
            )
        )
    return lam_min


class DuPrediction(NamedTuple):
    """Du et al.'s predictions in dltheory's normalisation (L = 1/(2N) sum).

    Attributes:
        envelope: (steps + 1,) upper bound L(0) (1 - eta lambda_0 / (2N))^k on the loss.
        rate: the per-step contraction 1 - eta lambda_0 / (2N).
        weight_movement: R' = 2 sqrt(N) ||y - u(0)|| / (sqrt(n) lambda_0), the bound on
            every neuron's ||w_r(t) - w_r(0)|| (gradient flow, Lemma 3.3).
        ntk_floor: lambda_0 / 2, the floor lambda_min(Theta_t) stays above.
    """

    envelope: np.ndarray
    rate: float
    weight_movement: float
    ntk_floor: float


def du_prediction(
    lambda0: float, loss0: float, n_train: int, width: int, lr: float, steps: int
) -> DuPrediction:
    """Predicted loss envelope, weight-movement bound and NTK floor (Du et al. 2019).

    L(k) <= (1 - eta lambda_0 / (2N))^k L(0) for GD with learning rate eta on
    L = 1/(2N) sum_i (f(x_i) - y_i)^2 (Thm 4.1, whose loss is N L and step eta / N).

    >>> p = du_prediction(lambda0=0.5, loss0=1.0, n_train=2, width=100, lr=1.0, steps=2)
    >>> p.envelope.tolist()   # (1 - 1 * 0.5 / 4)^k
    [1.0, 0.875, 0.765625]
    """
    lambda0 = check_positive("lambda0", lambda0)
    loss0 = check_real("loss0", loss0)
    if loss0 < 0:
        raise ValueError(message("loss0", ">= 0", loss0))
    n_train = check_int("n_train", n_train, minimum=1)
    width = check_int("width", width, minimum=1)
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, minimum=0)
    check_bytes("steps", 8.0 * (steps + 1), fix="Use fewer steps")
    rate = 1 - lr * lambda0 / (2 * n_train)
    if rate <= 0:
        raise ValueError(
            message(
                "lr",
                f"< 2N / lambda_0 = {2 * n_train / lambda0:.6g} for a contraction",
                lr,
                "Du et al. need eta = O(lambda_0 / N^2) in their normalisation",
            )
        )
    envelope = loss0 * rate ** np.arange(steps + 1, dtype=np.float64)
    residual = math.sqrt(2 * n_train * loss0)  # ||y - u(0)||
    movement = 2 * math.sqrt(n_train) * residual / (math.sqrt(width) * lambda0)
    return DuPrediction(envelope, rate, movement, lambda0 / 2)


def width_condition_notes(n_train: int, loss0: float, lambda0: float) -> float:
    """The course's sufficient width: n > 16 m^2 L(0) / lambda_0^2 (m training points).

    A sufficient condition, stated as in the lecture (NTK staying within lambda_0/2 via
    the box Delta = lambda_0 / (8m)); Du et al.'s own statement is
    :func:`width_condition_paper`, n = Omega(m^6 / (lambda_0^4 delta^3)).

    >>> width_condition_notes(n_train=2, loss0=1.0, lambda0=0.5)
    256.0
    """
    n_train = check_int("n_train", n_train, minimum=1)
    loss0 = check_real("loss0", loss0)
    lambda0 = check_positive("lambda0", lambda0)
    return _finite_width("lambda0", lambda0, 16 * n_train**2 * loss0 / lambda0 / lambda0)


def width_condition_paper(n_train: int, lambda0: float, delta: float) -> float:
    """Du et al. 2019, Thm 3.2 / 4.1: width n = Omega(N^6 / (lambda_0^4 delta^3)).

    Returns N^6 / (lambda_0^4 delta^3); the paper's constant is unspecified, so this is
    the scale, not a threshold. ``delta`` is the failure probability.

    >>> width_condition_paper(n_train=2, lambda0=1.0, delta=0.5)
    512.0
    """
    n_train = check_int("n_train", n_train, minimum=1)
    lambda0 = check_positive("lambda0", lambda0)
    delta = check_positive("delta", delta)
    if delta >= 1:
        raise ValueError(message("delta", "a probability in (0, 1)", delta))
    with np.errstate(over="ignore", divide="ignore"):
        width = np.float64(n_train) ** 6 / np.float64(lambda0) ** 4 / np.float64(delta) ** 3
    return _finite_width("lambda0 or delta", (lambda0, delta), float(width))


def _finite_width(name: str, value, width: float) -> float:
    """``width`` if it is a float; else a one-line error naming what made it overflow."""
    if not math.isfinite(width):
        raise ValueError(
            message(name, "large enough for the width to be a float (< 1.8e308)", value)
        )
    return width
