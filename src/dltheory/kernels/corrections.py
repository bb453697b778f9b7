"""Leading 1/width corrections for one input: the kernel's shift and the four-point vertex.

At finite width the preactivations of an MLP are not Gaussian. For one input,
to leading order in 1/n (Roberts, Yaida & Hanin 2022, Ch. 4, eqs. (4.90) and
(4.118) at a single input), with m(K) = <s^2>_K:

* the kernel is shifted, E[(z^(l))^2] = K^(l) + Delta^(l) with Delta = O(1/n);
* the four-point connected correlator of one neuron is
  E[z_i^4] - 3 E[z_i^2]^2 = 3 V^(l) / n_{l-1}  (the vertex V, RYH's normalisation).

Writing Vt^(l) = V^(l) / n_{l-1} and evaluating every expectation at K^(l):

    Vt^(l+1)    = (C_w^2 / n_l) (<s^4> - <s^2>^2) + (C_w m')^2 Vt^(l),
    Delta^(l+1) = C_w m' Delta^(l) + (C_w / 2) m'' Vt^(l),

with Vt^(1) = Delta^(1) = 0 (the first layer is exactly Gaussian), C_w m' =
chi_parallel, and m'' = d^2 <s^2> / dK^2 = E[s(z)^2 He_4(z / sqrt K)] / (4 K^2)
(Gaussian integration by parts four times, valid for kinked s). The first term
is the variance of the next layer's random conditional variance
G = C_b + (C_w / n_l) sum_j s(z_j)^2; the second is the fourth cumulant
propagated through it; Delta is E[s^2] corrected by that cumulant,
E[f(z)] = <f>_{K + Delta} + (Vt / 2) d^2<f>/dK^2 + O(1/n^2).

Checks in the tests: ReLU (Delta = 0, kurtosis 15 sum_l 1/n_l, the first order
of the exact 3 (prod_l (1 + 5/n_l) - 1)); linear nets (kurtosis 6 sum 1/n_l,
first order of 3 (prod (1 + 2/n_l) - 1)); the quadratic activation, where
Delta^(3) = 3 C_w^3 Var(s^2) / n_1 holds exactly; Monte-Carlo ensembles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import as_float_tensor, check_int, message
from ..activations import Activation, activation, quadrature
from ..spec.layers import Dense, Nonlinearity, Serial

__all__ = [
    "FiniteWidthCorrections",
    "GaussianMoments",
    "finite_width_corrections",
    "gaussian_moments",
    "linear_exact_excess_kurtosis",
    "relu_exact_excess_kurtosis",
]


@dataclass(frozen=True)
class GaussianMoments:
    """Gaussian expectations of an activation at variances K (float64, K's shape).

    Attributes:
        m: <s^2>_K.
        dm: d<s^2>/dK = <(s^2)''> / 2.
        d2m: d^2<s^2>/dK^2 = <(s^2)''''> / 4.
        var: <s^4>_K - <s^2>_K^2.
    """

    m: torch.Tensor
    dm: torch.Tensor
    d2m: torch.Tensor
    var: torch.Tensor


def gaussian_moments(act: str | Activation, k: Any) -> GaussianMoments:
    """<s^2>, its first two K-derivatives and Var(s^2) under z ~ N(0, K), K > 0.

    Derivatives come from Hermite weights, d^j/dK^j <f>_K = E[f(z) He_2j(z/sqrt K)] / (2K)^j
    (Gaussian integration by parts), so they hold for kinked activations too.

    >>> from dltheory import activation
    >>> g = gaussian_moments(activation("relu"), torch.tensor([2.0], dtype=torch.float64))
    >>> [round(float(v), 10) for v in (g.m[0], g.dm[0], g.var[0])]  # K/2, 1/2, 5K^2/4
    [1.0, 0.5, 5.0]
    >>> abs(float(g.d2m[0])) < 1e-12  # <relu^2> is linear in K
    True
    """
    act = activation(act)
    k = torch.as_tensor(k, dtype=torch.float64)
    if not bool((k > 0).all()) or not bool(torch.isfinite(k).all()):
        raise ValueError(
            message("k", "finite variances K > 0", k, "The K-derivatives are singular at K = 0")
        )
    flat = k.reshape(-1)
    root = flat.sqrt()[:, None]  # expectation_1d evaluates fn on z = sqrt(K) * nodes, row-wise

    def mean(f) -> torch.Tensor:
        return quadrature.expectation_1d(f, flat, act.kinks)

    def square(z: torch.Tensor) -> torch.Tensor:
        return act.fn(z) ** 2

    m = act.second_moment(flat)
    he2 = mean(lambda z: square(z) * ((z / root) ** 2 - 1))
    he4 = mean(lambda z: square(z) * ((z / root) ** 4 - 6 * (z / root) ** 2 + 3))
    fourth = mean(lambda z: square(z) ** 2)
    shape = k.shape
    return GaussianMoments(
        m.reshape(shape),
        (he2 / (2 * flat)).reshape(shape),
        (he4 / (4 * flat**2)).reshape(shape),
        (fourth - m**2).reshape(shape),
    )


@dataclass(frozen=True)
class FiniteWidthCorrections:
    """Leading-order finite-width statistics of one input at every Dense layer.

    Tensors are (L + 1, N): Dense layers l = 1..L+1 (rows) by inputs (columns).

    Attributes:
        kernel: the infinite-width K^(l) (the NNGP diagonal).
        shift: Delta^(l), the O(1/n) shift, E[z^2] = K + Delta + O(1/n^2).
        four_point: E[z_i^4] - 3 E[z_i^2]^2 = 3 V^(l) / n_{l-1} to leading order.
        widths: (n_0, n_1, ..., n_L): the fan-in of each Dense layer.
    """

    kernel: torch.Tensor
    shift: torch.Tensor
    four_point: torch.Tensor
    widths: tuple[int, ...]

    @property
    def second_moment(self) -> torch.Tensor:
        """E[z^2] = K + Delta to first order in 1/n."""
        return self.kernel + self.shift

    @property
    def excess_kurtosis(self) -> torch.Tensor:
        """E[z^4] / E[z^2]^2 - 3 = 3 V / (n K^2) to first order in 1/n."""
        return self.four_point / self.kernel**2

    @property
    def vertex(self) -> torch.Tensor:
        """V^(l) in Roberts, Yaida & Hanin's normalisation (four_point * n_{l-1} / 3)."""
        fan_in = torch.tensor(self.widths, dtype=torch.float64)[:, None]
        return self.four_point * fan_in / 3


def _hidden_widths(spec: Serial, width: Any) -> list[int]:
    n_dense = sum(isinstance(layer, Dense) for layer in spec.layers)
    if isinstance(width, Sequence) and not isinstance(width, str):
        widths = [check_int("width", w, minimum=1) for w in width]
        if len(widths) != n_dense - 1:
            raise ValueError(message("width", f"one width per hidden layer ({n_dense - 1})", width))
        return widths
    default = spec.width if width is None else check_int("width", width, minimum=1)
    widths = []
    for layer in [layer for layer in spec.layers if isinstance(layer, Dense)][:-1]:
        out = layer.width if layer.width is not None else default
        if out is None:
            raise ValueError(message("width", "an integer >= 1 (or one per hidden layer)", None))
        widths.append(out)
    return widths


def _check_chain(spec: Serial) -> None:
    kinds = [type(layer) for layer in spec.layers]
    expected = [Dense if i % 2 == 0 else Nonlinearity for i in range(len(kinds))]
    if kinds != expected or kinds[-1] is not Dense:
        raise ValueError(
            message(
                "spec",
                "an MLP: Dense, Nonlinearity, Dense, ..., Dense",
                [k.__name__ for k in kinds],
                "The corrections are derived for alternating layers",
            )
        )


def finite_width_corrections(
    spec: Serial, x: Any, width: int | Sequence[int] | None = None
) -> FiniteWidthCorrections:
    """The 1/width corrections of an MLP at each input separately (see the module docstring).

    Args:
        spec: an MLP spec (Dense and Nonlinearity alternating, ending with Dense).
        x: one input (n_0,) or several (N, n_0); each is treated on its own.
        width: hidden width n, or one width per hidden layer (n_1, ..., n_L);
            default ``spec.width``.

    Returns:
        :class:`FiniteWidthCorrections` with (L + 1, N) tensors.

    Raises:
        ValueError: a spec that is not an MLP, an input with |x| = 0 and C_b = 0
            somewhere (K = 0: the expansion is singular there), bad widths.

    >>> from dltheory import MLP
    >>> c = finite_width_corrections(MLP(3, "relu", c_w=2.0), torch.ones(4), width=100)
    >>> round(float(c.excess_kurtosis[-1, 0]) * 100, 10)  # 15 L / n for He-ReLU
    45.0
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    _check_chain(spec)
    x = as_float_tensor("x", x, dtype=torch.float64, detach=True)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(message("x", "one input (n_0,) or inputs (N, n_0)", tuple(x.shape)))
    hidden = _hidden_widths(spec, width)
    layers = [layer for layer in spec.layers if isinstance(layer, Dense)]
    acts = [layer.activation for layer in spec.layers if isinstance(layer, Nonlinearity)]

    first = layers[0]
    k = first.c_b + first.c_w * x.square().sum(1) / x.shape[1]
    shift = torch.zeros_like(k)
    vt = torch.zeros_like(k)
    rows = [(k, shift, vt)]
    for dense, act, fan_in in zip(layers[1:], acts, hidden, strict=True):
        if bool((k <= 0).any()):
            raise ValueError(
                message(
                    "x",
                    "inputs with K^(l) > 0 at every layer",
                    "K = 0 at some layer",
                    "Use a nonzero input or C_b > 0",
                )
            )
        g = gaussian_moments(act, k)
        c_w, c_b = dense.c_w, dense.c_b
        k, shift, vt = (
            c_b + c_w * g.m,
            c_w * (g.dm * shift + 0.5 * g.d2m * vt),
            c_w**2 * g.var / fan_in + (c_w * g.dm) ** 2 * vt,
        )
        rows.append((k, shift, vt))
    kernel, shift, vt = (torch.stack(parts) for parts in zip(*rows, strict=True))
    return FiniteWidthCorrections(kernel, shift, 3 * vt, (x.shape[1], *hidden))


def relu_exact_excess_kurtosis(widths: Sequence[int]) -> float:
    """Exact excess kurtosis 3 (prod_l (1 + 5/n_l) - 1) of a He-ReLU output (no biases).

    Given layer l, z^(l+1) is Gaussian with the random variance
    G^(l) = (2/n_l) sum_j relu(z_j^(l))^2, so E[z^4] = 3 E[G^2] and the excess kurtosis
    is 3 Var(G) / E[G]^2.
    With z_j^(l) i.i.d. N(0, G^(l-1)), E[relu^4] = 3 G^2 / 2 and E[relu^2] = G / 2
    give E[(G^(l))^2 | G^(l-1)] = (1 + 5/n_l) (G^(l-1))^2 while E[G^(l)] is
    constant; iterate. To first order: 15 sum_l 1/n_l.

    >>> relu_exact_excess_kurtosis([10])
    1.5
    """
    prod = math.prod(1 + 5 / check_int("width", n, minimum=1) for n in widths)
    return 3 * (prod - 1)


def linear_exact_excess_kurtosis(widths: Sequence[int]) -> float:
    """Exact excess kurtosis 3 (prod_l (1 + 2/n_l) - 1) of a deep linear net's output (C_b = 0).

    Given layer l, z^(l+1) is Gaussian with variance G = (C_w/n_l) |z^(l)|^2, a
    scaled chi^2_{n_l}: E[G^2] = (1 + 2/n_l) E[G]^2, whatever C_w. To first
    order: 6 sum_l 1/n_l.

    >>> linear_exact_excess_kurtosis([4])
    1.5
    """
    prod = math.prod(1 + 2 / check_int("width", n, minimum=1) for n in widths)
    return 3 * (prod - 1)
