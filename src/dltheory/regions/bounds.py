"""Counting bounds for linear regions (see docs/topics/linear_regions.md).

* One hidden layer, n_0 = 1: at most n_1 + 1 pieces (one kink xi_j = -b_j / W_j
  per neuron), with equality when the kinks are distinct, lie inside the segment
  and every neuron reaches the output.
* One hidden layer, n_0 >= 1: the pieces are at most the cells of an arrangement
  of n_1 hyperplanes in R^{n_0}, sum_{i=0}^{n_0} C(n_1, i) (Zaslavsky 1975), with
  equality in general position.
* Any depth: at most 3^N regions for N hidden neurons (one per sign vector in
  {-1, 0, 1}^N, each a convex polytope). Full-dimensional activation regions carry
  on/off patterns, so they number at most 2^N; some notes state 3^N.
"""

from __future__ import annotations

import math

from .._checks import Plain, check_int, message

__all__ = ["one_layer_1d_bound", "pattern_bound", "zaslavsky_count"]


def zaslavsky_count(n_in: int, n_hidden: int) -> int:
    """Cells of n_hidden hyperplanes in general position in R^n_in: sum_{i<=n_in} C(n_hidden, i).

    The number of linear regions of a one-hidden-layer ReLU net in general
    position (Zaslavsky 1975). It is
    2^n_hidden when n_hidden <= n_in and ~ n_hidden^n_in / n_in! when n_hidden >> n_in.

    >>> zaslavsky_count(2, 3), zaslavsky_count(1, 5), zaslavsky_count(4, 3)
    (7, 6, 8)
    """
    n_in = check_int("n_in", n_in, minimum=1)
    n_hidden = check_int("n_hidden", n_hidden, minimum=0)
    if n_in >= n_hidden:  # every sign pattern: 2^n_hidden
        _check_bits("n_hidden", n_hidden)
        return 1 << n_hidden
    if n_in > _MAX_TERMS:
        raise ValueError(
            message(
                "n_in",
                f"<= {_MAX_TERMS} when n_in < n_hidden (the sum has n_in + 1 exact terms)",
                n_in,
            )
        )
    _check_bits("n_hidden", n_in * math.log2(max(n_hidden, 2)))
    return sum(math.comb(n_hidden, i) for i in range(n_in + 1))


_MAX_BITS = 1 << 24  # exact integers up to 16 Mbit (2 MiB): built in well under a second
_MAX_TERMS = 10**5


def _check_bits(name: str, bits: float) -> None:
    if bits > _MAX_BITS:
        raise ValueError(
            message(
                name,
                "small enough that the exact count has at most 2^24 bits",
                Plain(f"about {bits:.3g} bits"),
                "Compare logarithms instead",
            )
        )


def pattern_bound(n_neurons: int) -> int:
    """The worst-case bound 3^N on the linear regions of any ReLU net with N neurons.

    One region per sign vector in {-1, 0, 1}^N (see docs/topics/linear_regions.md).
    The full-dimensional activation regions have on/off patterns, hence also
    number at most 2^N <= 3^N.

    >>> pattern_bound(4)
    81
    """
    n = check_int("n_neurons", n_neurons, minimum=0)
    _check_bits("n_neurons", n * math.log2(3))
    return 3**n


def one_layer_1d_bound(n_hidden: int) -> int:
    """At most n_1 + 1 pieces for one hidden layer on a line.

    >>> one_layer_1d_bound(7)
    8
    """
    return check_int("n_hidden", n_hidden, minimum=0) + 1
