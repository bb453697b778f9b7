"""``Residual``: the sum gamma S(h) + alpha F(h) of a skip arm S and a branch F.

With the identity skip (the default) this is the residual block
h' = gamma h + alpha F(h) (He et al. 2016); its infinite-width kernels are
K' = gamma^2 K + alpha^2 F(K) and Theta' = gamma^2 Theta + alpha^2 Theta_F
(Yang & Schoenholz 2017, Eq. 3; Hayou et al. 2021, "Stable ResNet", Sec. 2;
Roberts, Yaida & Hanin 2022, Appendix B "Residual learning"). The sum of the
two arms has these kernels only when the branch is a Gaussian process independent
of the skip: an arm whose last weighted layer is a fresh zero-mean Dense / Conv
layer (followed only by layers that act per input as a fixed linear map at
infinite width: LayerNorm, pooling, Flatten, a nested Residual) has zero
covariance with anything built before it. The skip arm may be anything (the
identity, an earlier sum, another fresh branch); a branch without such a layer
(``x + x``, ``h + relu(h)``) is correlated with the skip and refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._checks import check_nonnegative, message
from .layers import Layer

__all__ = ["Residual", "ends_with_fresh_weights"]

# Kinds that, after a fresh zero-mean weight layer, keep the arm independent of
# everything before it and Gaussian (a fixed linear map per input at infinite width).
# The conv engine's kinds are named, not imported (spec/conv.py owns them).
_KEEPS_INDEPENDENT = ("LayerNorm", "Residual", "AvgPool", "GlobalAvgPool", "Flatten")


def ends_with_fresh_weights(layers: tuple[Layer, ...]) -> bool:
    """Whether the arm's output is a fresh zero-mean Gaussian field at infinite width.

    True when a weighted layer (``reads_input``: Dense, Conv) is followed only by
    kinds in ``_KEEPS_INDEPENDENT``.

    >>> from dltheory.spec import Dense, Nonlinearity
    >>> ends_with_fresh_weights((Nonlinearity("relu"), Dense()))
    True
    >>> ends_with_fresh_weights((Dense(), Nonlinearity("relu")))
    False
    """
    for layer in reversed(layers):
        if type(layer).reads_input:
            return True
        if type(layer).__name__ not in _KEEPS_INDEPENDENT:
            return False
    return False


def _as_layers(name: str, arm) -> tuple[Layer, ...]:
    from .layers import Serial

    if isinstance(arm, Serial):
        return arm.layers
    if isinstance(arm, Layer):
        return (arm,)
    if isinstance(arm, tuple | list):
        flat: list[Layer] = []
        for item in arm:
            flat.extend(_as_layers(name, item))
        return tuple(flat)
    raise TypeError(message(name, "a Serial, a Layer or a sequence of layers", arm))


@dataclass(frozen=True)
class Residual(Layer):
    """h' = gamma S(h) + alpha F(h): a skip arm S (identity by default) plus a branch F.

    Attributes:
        branch: the branch F, a ``Serial`` or layers (flattened to a tuple); its output
            must be a fresh Gaussian field (its last weighted layer is Dense / Conv).
        alpha: the branch multiplier (1 / sqrt(L) for the "stable ResNet" of Hayou et
            al. 2021; 0 for a SkipInit / Fixup-style zero-initialised branch, De &
            Smith 2020; Zhang et al. 2019).
        gamma: the skip multiplier.
        skip: the skip arm S, ``()`` for the identity (any layers: a sum of two branches
            F1(h) + F2(h) has skip F1).

    Kernels: K' = gamma^2 S(K) + alpha^2 F(K), Theta' = gamma^2 Theta_S + alpha^2 Theta_F.

    >>> from dltheory.spec import Dense, Nonlinearity
    >>> block = Residual((Nonlinearity("relu"), Dense(2.0)), alpha=0.5)
    >>> len(block.branch), block.gamma
    (2, 1.0)
    >>> Residual(Nonlinearity("relu"))
    Traceback (most recent call last):
    ...
    ValueError: branch must be an arm whose output is independent of the skip ...
    """

    branch: tuple[Layer, ...]
    alpha: float = 1.0
    gamma: float = 1.0
    skip: tuple[Layer, ...] = ()

    reads_input: ClassVar[bool] = False
    chain_kind: ClassVar[bool] = False

    def __post_init__(self) -> None:
        branch = _as_layers("branch", self.branch)
        skip = _as_layers("skip", self.skip)
        if not branch:
            raise ValueError(
                message(
                    "branch",
                    "at least one layer",
                    branch,
                    "h + h is the skip scaled by 2: use gamma=2 with a branch, or a Dense layer",
                )
            )
        if not ends_with_fresh_weights(branch):
            raise ValueError(
                message(
                    "branch",
                    "an arm whose output is independent of the skip (its last weighted "
                    "layer a fresh Dense/Conv, followed only by LayerNorm, pooling or "
                    "Flatten)",
                    tuple(type(layer).__name__ for layer in branch),
                    "The sum of correlated arms is not the sum of their kernels; end the "
                    "branch with a Dense layer",
                )
            )
        for name in ("alpha", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(message(name, "a real number", value))
            if value != value or abs(value) == float("inf"):
                raise ValueError(message(name, "finite", value))
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "branch", branch)
        object.__setattr__(self, "skip", skip)

    @property
    def alpha2(self) -> float:
        """alpha^2, the branch's weight in the kernel sum."""
        return self.alpha * self.alpha

    @property
    def gamma2(self) -> float:
        """gamma^2, the skip's weight in the kernel sum."""
        return check_nonnegative("gamma^2", self.gamma * self.gamma)
