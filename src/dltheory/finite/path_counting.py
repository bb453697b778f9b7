"""Exact finite-width moments of bias-free He-initialised ReLU networks (path counting).

The network (Hanin 2018; Hanin & Nica 2019):

    z = W^(L+1) relu(W^(L) ... relu(W^(1) x)),   W^(l) ~ N(0, 2 / n_{l-1}) for l <= L,
    W^(L+1) ~ N(0, c_out / n_L) of shape (1, n_L),

with hidden widths ``widths = (n_1, ..., n_L)``, no biases and a scalar output.
Its input-output Jacobian is J = W^(L+1) D^(L) W^(L) ... D^(1) W^(1), D^(l) the
diagonal of activation indicators.

The key fact (Hanin & Nica 2019): at a single input
x != 0 the indicators are i.i.d. Bernoulli(1/2) and independent of every even
function of the weights, because the weights are symmetric. Hence J has the law
of the same product with *independent* masks, and for a unit vector u the
forward vector v_l = D^(l) W^(l) v_{l-1} (v_0 = u) obeys, conditionally on the past,

    |v_l|^2 = (2 / n_{l-1}) |v_{l-1}|^2 chi^2_{K_l},   K_l ~ Binomial(n_l, 1/2),

independently over layers. Writing X_l = (2 / n_l) chi^2_{K_l} (so E X_l = 1,
E X_l^2 = 1 + 5 / n_l):

    (dz/dx_p)^2    = (c_out / n_0) chi^2_1 prod_l X_l            (a single Jacobian entry)
    |grad_x z|^2   = c_out (chi^2_{n_0} / n_0) prod_l X_l        (the gradient norm)
    R              = (n_0 / n_L) |D^(L) W^(L) ... D^(1) W^(1) u|^2 = prod_l X_l

R is the squared Jacobian-vector norm of the ReLU part, the conditional mean of
(n_0 / c_out)(J u)^2 over the readout; log R ~ N(-beta/2, beta) with
beta = 5 sum_l 1/n_l to leading order in 1/n (Hanin & Nica 2019, "Products of
many large random matrices and gradients in deep neural networks", Thm. 1).
A dead layer (K_l = 0, probability 2^{-n_l}) makes the Jacobian exactly zero,
so log-moments are conditional on every layer having an active neuron.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import digamma, gammaln, logsumexp, polygamma
from scipy.stats import binom

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_finite_result,
    check_int,
    check_positive,
    message,
)
from .._checks import check_widths as _check_widths

__fuzz_exempt__ = {
    "ReluJacobianMoments.moment:inf": "inf where the moment exceeds the float64 range "
    "(documented; log_moment stays finite)",
}

__all__ = [
    "ReluJacobianMoments",
    "check_widths",
    "relu_jacobian_moments",
    "relu_ntk_mean",
    "relu_ntk_second_moment",
]

NtkParametrization = Literal["ntk", "standard"]
_LOG_MAX_FLOAT = math.log(np.finfo(np.float64).max)


def _exp_or_inf(log_value: float, name: str, log_name: str) -> float:
    """exp(log_value), or inf with a RuntimeWarning naming the log-space field."""
    if log_value > _LOG_MAX_FLOAT:
        warnings.warn(
            f"{name} = exp({log_value:.6g}) exceeds the float64 range and is returned as inf; "
            f"{log_name} holds its logarithm.",
            RuntimeWarning,
            stacklevel=3,
        )
        return math.inf
    return math.exp(log_value)


def check_widths(widths: Any) -> tuple[int, ...]:
    """Hidden widths (n_1, ..., n_L): a non-empty sequence (or 1-D array) of integers >= 1.

    Wrong-type entries (3.0, None, True) raise TypeError, integers < 1 ValueError.
    """
    return _check_widths(widths)


# above this order the direct product prod_{j<order} (K + 2j) >= (2 order - 1)!! (> 1e308)
# overflows float64 whatever K, so only the log-space sum is tried
_DIRECT_ORDERS = 200


def _log_chi2_binomial_moment(n: int, order: int) -> float:
    """log E[(chi^2_K)^order], K ~ Binomial(n, 1/2), exactly, in log space.

    E[(chi^2_K)^order] = E prod_{j<order} (K + 2j), and for K >= 1 the product is
    2^order Gamma(K/2 + order) / Gamma(K/2); K = 0 contributes only to order 0.
    """
    if order == 0:
        return 0.0
    k = np.arange(1, n + 1)
    if order <= _DIRECT_ORDERS:
        with np.errstate(all="ignore"):  # direct sum first: exact to rounding when it fits
            terms = np.ones(n)
            for j in range(order):
                terms = terms * (k + 2 * j)
            direct = float(np.sum(binom.pmf(k, n, 0.5) * terms))
        if math.isfinite(direct) and direct > 0.0:
            return math.log(direct)
    log_terms = order * math.log(2.0) + gammaln(k / 2 + order) - gammaln(k / 2)
    return float(logsumexp(binom.logpmf(k, n, 0.5) + log_terms))


def _log_chi2_binomial(n: int) -> tuple[float, float]:
    """Mean and variance of log((2/n) chi^2_K), K ~ Binomial(n, 1/2) given K >= 1.

    Given K = k: E log chi^2_k = psi(k/2) + log 2 and Var = psi'(k/2); the law of
    total variance adds the spread of psi(K/2) over K.
    """
    k = np.arange(1, n + 1)
    pmf = binom.pmf(k, n, 0.5)
    pmf = pmf / pmf.sum()
    psi = digamma(k / 2)
    mean = math.log(2.0 / n) + math.log(2.0) + float(np.sum(pmf * psi))
    var = float(np.sum(pmf * polygamma(1, k / 2)) + np.sum(pmf * psi**2) - np.sum(pmf * psi) ** 2)
    return mean, var


@dataclass(frozen=True)
class ReluJacobianMoments:
    """Exact finite-width laws of the Jacobian of a bias-free He ReLU net.

    Attributes:
        n0, widths, c_out: the network (input dimension, hidden widths, readout C_w).
        second: E[(dz/dx_p)^2] = c_out / n_0 (exact).
        fourth: E[(dz/dx_p)^4] = 3 (c_out / n_0)^2 prod_l (1 + 5 / n_l) (exact);
            ``inf`` with a warning when it exceeds the float64 range (deep narrow
            nets), where ``log_fourth`` still holds it.
        fourth_large_width: 3 (c_out / n_0)^2 exp(5 sum_l 1/n_l), the large-width
            form C exp(5 beta') / n_0^2 with C = 3 c_out^2 (relative error
            O(sum_l 1/n_l^2)); ``inf`` like ``fourth``.
        log_fourth, log_fourth_large_width: their natural logarithms, always finite.
        beta: 5 sum_l 1/n_l (one convention: the log-normal law is N(-beta/2, beta)).
        alive_probability: P(every hidden layer has an active neuron) = prod_l (1 - 2^-n_l);
            otherwise the Jacobian is exactly 0.
        log_hidden_mean, log_hidden_var: exact E and Var of log R, R = prod_l X_l
            (given alive); leading order -beta/2 and beta.
        log_entry_mean, log_entry_var: exact E and Var of log((n_0 / c_out)(dz/dx_p)^2)
            (given alive): those of log R plus psi(1/2) + log 2 and psi'(1/2) = pi^2/2
            from the extra log chi^2_1 term.
        log_gradient_mean, log_gradient_var: exact E and Var of log(|grad_x z|^2 / c_out)
            (given alive): those of log R plus psi(n_0/2) + log(2/n_0) and psi'(n_0/2).
    """

    n0: int
    widths: tuple[int, ...]
    c_out: float
    second: float
    fourth: float
    fourth_large_width: float
    log_fourth: float
    log_fourth_large_width: float
    beta: float
    alive_probability: float
    log_hidden_mean: float
    log_hidden_var: float
    log_entry_mean: float
    log_entry_var: float
    log_gradient_mean: float
    log_gradient_var: float

    def moment(self, order: int) -> float:
        """E[(dz/dx_p)^order] for even ``order``, exactly.

        E[(dz/dx_p)^(2k)] = (c_out/n_0)^k (2k-1)!! prod_l (2/n_l)^k E[prod_{j<k} (K_l + 2j)],
        summed in log space (logsumexp over the Binomial pmf), so a finite moment
        stays finite; ``inf`` only when it exceeds the float64 range.

        >>> m = relu_jacobian_moments(4, (10, 10))
        >>> math.isclose(m.moment(4), m.fourth) and math.isclose(m.moment(2), m.second)
        True
        """
        return _exp_or_inf(self.log_moment(order), f"moment({order})", f"log_moment({order})")

    def log_moment(self, order: int) -> float:
        """log E[(dz/dx_p)^order] for even ``order`` (finite where :meth:`moment` overflows).

        >>> m = relu_jacobian_moments(2, [2] * 30)  # log E[z'^4] = log 3 + 30 log(7/2)
        >>> abs(m.log_moment(4) - (math.log(3) + 30 * math.log(3.5))) < 1e-9
        True
        """
        order = check_int("order", order, minimum=0)
        if order % 2:
            raise ValueError(
                message("order", "even", order, "Odd moments of dz/dx_p vanish by symmetry")
            )
        k = order // 2
        # log space: the product of the layer factors overflows long before its log does
        log_double_factorial = math.lgamma(2 * k + 1) - k * math.log(2.0) - math.lgamma(k + 1)
        log_value = k * math.log(self.c_out / self.n0) + log_double_factorial
        for n in self.widths:
            log_value += k * math.log(2.0 / n) + _log_chi2_binomial_moment(n, k)
        return log_value

    @property
    def log_hidden_mean_leading(self) -> float:
        """-beta/2: the leading-order mean of log R (Hanin & Nica 2019)."""
        return -self.beta / 2.0

    @property
    def log_hidden_var_leading(self) -> float:
        """beta: the leading-order variance of log R."""
        return self.beta


def relu_jacobian_moments(
    n0: int, widths: Sequence[int], c_out: float = 2.0
) -> ReluJacobianMoments:
    """Exact moments of the input-output Jacobian of a bias-free He ReLU net.

    The network is z = W^(L+1) relu(... relu(W^(1) x)) with W^(l) ~ N(0, 2/n_{l-1})
    and a scalar readout W^(L+1) ~ N(0, c_out/n_L); dz/dx_p is one Jacobian entry
    at any input x != 0. Its law is (c_out/n_0) chi^2_1 prod_l (2/n_l) chi^2_{K_l}
    with K_l ~ Binomial(n_l, 1/2) independent (module docstring), so

        E[(dz/dx_p)^2] = c_out / n_0,
        E[(dz/dx_p)^4] = 3 (c_out / n_0)^2 prod_l (1 + 5/n_l)
                       = (3 c_out^2 / n_0^2) exp(5 sum_l 1/n_l) (1 + O(sum_l 1/n_l^2)).

    Hanin (2018), Thm. 1 gives these with a He readout (c_out = 2); some lecture notes
    write E[(dz/dx_p)^2] = 2/n_0, which assumes that readout: the correct
    identity for a readout of variance c_out/n_L is c_out/n_0.

    Args:
        n0: input dimension n_0 >= 1.
        widths: hidden widths (n_1, ..., n_L), L >= 1.
        c_out: readout weight variance times n_L (> 0).

    Returns:
        :class:`ReluJacobianMoments`, every field exact at finite width except
        ``fourth_large_width`` and the ``*_leading`` properties.

    >>> m = relu_jacobian_moments(5, (10,), c_out=1.0)
    >>> m.second, round(m.fourth, 12), m.beta
    (0.2, 0.18, 0.5)
    """
    n0 = check_int("n0", n0, minimum=1)
    widths = check_widths(widths)
    c_out = check_positive("c_out", c_out)
    # the exact laws sum over K = 1..n_l: a few float64 arrays of n_l entries
    check_bytes("widths", 40.0 * max(widths), fix="Use widths below 10^8")
    inv = sum(1.0 / n for n in widths)
    second = c_out / n0
    # log space: prod_l (1 + 5 / n_l) overflows at depth ~570 for n_l = 2
    log_fourth = math.log(3.0) + 2.0 * math.log(second) + sum(math.log1p(5.0 / n) for n in widths)
    log_fourth_large_width = math.log(3.0) + 2.0 * math.log(second) + 5.0 * inv
    logs = [_log_chi2_binomial(n) for n in widths]
    hidden_mean = sum(m for m, _ in logs)
    hidden_var = sum(v for _, v in logs)
    chi1_mean = float(digamma(0.5)) + math.log(2.0)
    chi1_var = float(polygamma(1, 0.5))
    chin_mean = float(digamma(n0 / 2)) + math.log(2.0 / n0)
    chin_var = float(polygamma(1, n0 / 2))
    return ReluJacobianMoments(
        n0=n0,
        widths=widths,
        c_out=c_out,
        second=second,
        fourth=_exp_or_inf(log_fourth, "fourth", "log_fourth"),
        fourth_large_width=_exp_or_inf(
            log_fourth_large_width, "fourth_large_width", "log_fourth_large_width"
        ),
        log_fourth=log_fourth,
        log_fourth_large_width=log_fourth_large_width,
        beta=5.0 * inv,
        alive_probability=math.prod(1.0 - 2.0**-n for n in widths),
        log_hidden_mean=hidden_mean,
        log_hidden_var=hidden_var,
        log_entry_mean=hidden_mean + chi1_mean,
        log_entry_var=hidden_var + chi1_var,
        log_gradient_mean=hidden_mean + chin_mean,
        log_gradient_var=hidden_var + chin_var,
    )


def _ntk_inputs(x: Any) -> torch.Tensor:
    x = as_float_tensor("x", x, dtype=torch.float64)
    if x.ndim not in (1, 2):
        raise ValueError(
            message("x", "an input (n_0,) or a batch (N, n_0)", f"shape {tuple(x.shape)}")
        )
    return x


def _layer_factors(
    n0: int, widths: tuple[int, ...], c_out: float, parametrization: str
) -> tuple[list[float], list[float]]:
    """(c_l, kappa_l) for weight layers l = 1..L+1: W^(l) ~ N(0, c_l / n_{l-1}) and
    Theta = sum_l kappa_l |h^(l-1)|^2 |delta^(l)|^2 (kappa_l = c_l / n_{l-1} in NTK
    parametrisation with lambda_w = C_w, 1 in standard parametrisation)."""
    n = (n0, *widths)
    c = [2.0] * len(widths) + [c_out]
    if parametrization == "ntk":
        kappa = [c[i] / n[i] for i in range(len(c))]
    else:
        kappa = [1.0] * len(c)
    return c, kappa


def _validate_ntk(x, widths, c_out, parametrization):
    x = _ntk_inputs(x)
    widths = check_widths(widths)
    c_out = check_positive("c_out", c_out)
    check_choice("parametrization", parametrization, ("ntk", "standard"))
    return x, widths, c_out


def relu_ntk_mean(
    x: Any,
    widths: Sequence[int],
    c_out: float = 2.0,
    parametrization: NtkParametrization = "ntk",
) -> torch.Tensor:
    """Exact mean of the on-diagonal NTK Theta(x, x) of a bias-free He ReLU net.

    Theta(x, x) = sum_{l=1}^{L+1} kappa_l |h^(l-1)|^2 |delta^(l)|^2, with h^(l) the
    post-activations (h^(0) = x) and delta^(l) = dz/dz^(l). Given the past,
    E[|delta^(l)|^2] = (c_out / n_l) K_l and E[|h^(l)|^2] = (n_l / n_0) |x|^2, so

        NTK parametrisation (lambda_w = C_w, the kernel of ``empirical_ntk`` on
        ``MLP(L, "relu", c_w=[2]*L + [c_out], c_b=0.0)``):
            E Theta = (L + 1) c_out |x|^2 / n_0,
        standard parametrisation (plain gradient in W, no bias parameters):
            E Theta = (|x|^2 / n_0) (n_L + (c_out / 2) sum_{l=0}^{L-1} n_l).

    L + 1 counts the weight layers, the readout included. The often-quoted 2 L |x|^2 / n_0
    assumes c_out = 2 and counts L weight layers; the correct mean for L hidden
    layers is 2 (L + 1) |x|^2 / n_0 (Hanin & Nica 2019, Thm. 1, up to their
    normalisation of the kernel).

    Args:
        x: one input (n_0,) or a batch (N, n_0); any nonzero inputs.
        widths: hidden widths (n_1, ..., n_L).
        c_out: readout weight variance times n_L.
        parametrization: ``"ntk"`` or ``"standard"``.

    Returns:
        float64 tensor: scalar for one input, (N,) for a batch.

    >>> float(relu_ntk_mean([1.0, 1.0], (10, 20, 30)))
    8.0
    """
    x, widths, c_out = _validate_ntk(x, widths, c_out, parametrization)
    sq = x.square().sum(-1)
    n0 = x.shape[-1]
    n = (n0, *widths)
    _, kappa = _layer_factors(n0, widths, c_out, parametrization)
    # E T_l = kappa_l E|h^(l-1)|^2 E|delta^(l)|^2 with E|delta^(l)|^2 = c_out/2 (l <= L), 1.
    total = sum(kappa[i] * n[i] / n0 * (c_out / 2.0) for i in range(len(widths)))
    total += kappa[-1] * n[-1] / n0
    out = sq * total
    check_finite_result("x", out)
    return out


def _frobenius_fourth(widths: tuple[int, ...], first: int, last: int) -> float:
    """E|N|_F^4, N = D^(last) W^(last) ... W^(first+1) D^(first), independent masks.

    Layers are 1-based hidden layers. Two propagated vectors u, v through a layer
    u' = D W u with W ~ N(0, s), s = 2/n_in, map the pair (a, b) = (E[|u|^2 |v|^2],
    E[(u.v)^2]) linearly (Wick's theorem for each row, Bernoulli(1/2) masks):

        a' = s^2 (n'(n'+1)/4 a + n' b),   b' = s^2 (n'/2 a + n'(n'+3)/4 b).

    |N|_F^2 = sum_j xi_j |N' e_j|^2 sums over basis vectors e_j masked by D^(first).
    """
    states = np.array([[1.0, 1.0], [1.0, 0.0]])  # (a, b) for j = j' and j != j'
    for layer in range(first + 1, last + 1):
        n_in, n_out = widths[layer - 2], widths[layer - 1]
        s2 = (2.0 / n_in) ** 2
        transfer = s2 * np.array(
            [[n_out * (n_out + 1) / 4, n_out], [n_out / 2, n_out * (n_out + 3) / 4]]
        )
        states = states @ transfer.T
    n = widths[first - 1]
    return n / 2 * states[0, 0] + n * (n - 1) / 4 * states[1, 0]


def relu_ntk_second_moment(
    x: Any,
    widths: Sequence[int],
    c_out: float = 2.0,
    parametrization: NtkParametrization = "ntk",
) -> torch.Tensor:
    """Exact second moment E[Theta(x, x)^2] of the on-diagonal NTK (bias-free He ReLU net).

    With independent Bernoulli masks (module docstring; Hanin & Nica 2019 use the
    same reduction), T_l = kappa_l |h^(l-1)|^2 |delta^(l)|^2 has h^(l-1) and
    delta^(l) independent, and for l < m the readout of layer m and the input of
    layer l are Gaussian given the rest, so

        E[T_l^2]    = kappa_l^2 E|h^(l-1)|^4 E|delta^(l)|^4,
        E[T_l T_m]  = kappa_l kappa_m (c_l / n_{l-1}) (c_m / n_{m-1})
                      E|h^(l-1)|^4 E|delta^(m)|^4 E|N_{l,m-1}|_F^4,

    with E|h^(l)|^4 = |x|^4 (n_l/n_0)^2 prod_{k<=l} (1 + 5/n_k),
    E|delta^(m)|^4 = (c_out^2/4) prod_{k=m}^{L} (1 + 5/n_k) (1 for the readout) and
    N_{l,m-1} = D^(m-1) W^(m-1) ... W^(l+1) D^(l) (see ``_frobenius_fourth``).
    Exact at every width.

    exp(5 sum_l 1/n_l) is the law of a single term, not of the sum: each T_l is a
    product of one factor per hidden layer, E[T_l^2] / E[T_l]^2 = prod_l (1 + 5/n_l)
    ~ exp(5 sum_l 1/n_l) exactly as for the squared Jacobian (Hanin & Nica 2019,
    Thm. 1). The L + 1 terms of Theta are only partly correlated, so
    E[Theta^2] / E[Theta]^2 is smaller, and the gap does not close at fixed
    beta' = sum_l 1/n_l as the width grows. This function gives (equal widths)
    4.04 at n = 20, L = 8 (exp(5 beta') = 7.39), 2.05 at n = 50, L = 10 (2.72),
    and 7.31, 7.53, 7.71 at n = 100, 200, 1000 with L = n / 2 (12.18).
    No closed form of the large-L limit is claimed here.

    Args:
        x, widths, c_out, parametrization: as in :func:`relu_ntk_mean`.

    Returns:
        float64 tensor: scalar for one input, (N,) for a batch.

    >>> x = [1.0, 0.0, 0.0, 0.0]  # width 1: Theta = xi (g_1^2 + g_2^2), xi ~ Bernoulli(1/2)
    >>> float(relu_ntk_second_moment(x, (1,), c_out=2.0) / relu_ntk_mean(x, (1,)) ** 2)
    4.0
    """
    x, widths, c_out = _validate_ntk(x, widths, c_out, parametrization)
    n0 = x.shape[-1]
    n = (n0, *widths)
    depth = len(widths)
    c, kappa = _layer_factors(n0, widths, c_out, parametrization)
    growth = [1.0 + 5.0 / w for w in widths]
    # h4[l] = E|h^(l)|^4 / |x|^4 for l = 0..L; d4[m] = E|delta^(m)|^4 for m = 1..L+1.
    h4 = [(n[l] / n0) ** 2 * math.prod(growth[:l]) for l in range(depth + 1)]
    d4 = {m: (c_out**2 / 4.0) * math.prod(growth[m - 1 :]) for m in range(1, depth + 1)}
    d4[depth + 1] = 1.0
    total = 0.0
    for l in range(1, depth + 2):
        total += kappa[l - 1] ** 2 * h4[l - 1] * d4[l]
        for m in range(l + 1, depth + 2):
            frob = _frobenius_fourth(widths, l, m - 1)
            scale = (c[l - 1] / n[l - 1]) * (c[m - 1] / n[m - 1])
            total += 2.0 * kappa[l - 1] * kappa[m - 1] * scale * h4[l - 1] * d4[m] * frob
    out = x.square().sum(-1).square() * total
    check_finite_result("x", out)
    return out
