"""``LayerNorm``: normalisation over the features of each input (Ba, Kiros & Hinton 2016).

y_i = g_i (h_i - mu(h)) / sqrt(var(h) + eps) + beta_i, with mu, var the mean and
(biased) variance over the n features of one input, as ``torch.nn.LayerNorm`` and
neural-tangents' ``stax.LayerNorm``; the affine pair starts at g = 1, beta = 0.

At infinite width mu and var are each input's own E[h] = m_a and E[h^2] - m_a^2,
so LayerNorm is a fixed affine map per input and
K'_ab = (K_ab - m_a m_b) / sqrt((V_a + eps)(V_b + eps)), V_a = K_aa - m_a^2;
neural-tangents assumes m = 0 (a Gaussian, zero-mean input) and refuses the rest,
here the mean of an activation's output E[s(z)] is tracked and subtracted.
The NTK through the normalisation is Theta / sqrt((V_a + eps)(V_b + eps)) (the
gradients of mu and var add O(1/n)); the affine pair adds its own gradients,
d y_i / d g_i = (normalised h_i) and d y_i / d beta_i = 1, which at initialisation
change the NTK by lr_gain K' + lr_shift and not the NNGP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._checks import check_nonnegative
from .layers import Layer

__all__ = ["LayerNorm"]


@dataclass(frozen=True)
class LayerNorm(Layer):
    """Layer normalisation over features (see the module docstring).

    Attributes:
        affine: a learnable gain g (``torch``'s ``elementwise_affine``), initialised to 1.
        bias: a learnable shift beta (initialised to 0), when ``affine``.
        eps: added to the variance (``torch``: 1e-5, neural-tangents: 1e-12).
        lr_gain, lr_shift: learning-rate factors of g and beta (1: plain gradients, as
            PyTorch trains them in any parametrisation).

    >>> LayerNorm().affine, LayerNorm(affine=False).eps
    (True, 1e-05)
    """

    affine: bool = True
    bias: bool = True
    eps: float = 1e-5
    lr_gain: float = 1.0
    lr_shift: float = 1.0

    reads_input: ClassVar[bool] = False
    chain_kind: ClassVar[bool] = False

    def __post_init__(self) -> None:
        from .._checks import message

        for name in ("affine", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(message(name, "a bool", getattr(self, name)))
        for name in ("eps", "lr_gain", "lr_shift"):
            object.__setattr__(self, name, check_nonnegative(name, getattr(self, name)))

    def ntk_shift(self) -> tuple[float, float]:
        """(weight of K', constant) that the affine pair adds to the NTK at initialisation."""
        if not self.affine:
            return 0.0, 0.0
        return self.lr_gain, self.lr_shift if self.bias else 0.0
