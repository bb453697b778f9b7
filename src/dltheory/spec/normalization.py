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

On images (N, C, *pixels) ``over`` says which axes are normalised, as in torch:

* ``"channels"``: each pixel over its C channels (``nn.LayerNorm(C)`` on a
  channels-last tensor, ConvNeXt's LayerNorm; neural-tangents' ``stax.LayerNorm(axis=-1)``
  on NHWC). Each pixel's own mean m_a(i) and variance V_a(i) = K_aa(i, i) - m_a(i)^2:
  K'_ab(i, j) = (K_ab(i, j) - m_a(i) m_b(j)) / sqrt((V_a(i) + eps)(V_b(j) + eps)).
* ``"all"``: over channels and pixels together (``nn.LayerNorm((C, H, W))``,
  ``nn.GroupNorm(1, C)``; ``stax.LayerNorm(axis=(1, 2, 3))``). The image's mean
  M_a = mean_i m_a(i) and variance V_a = mean_i (K_aa(i, i) - 2 m_a(i) M_a + M_a^2):
  K'_ab(i, j) = (K_ab(i, j) - m_a(i) M_b - M_a m_b(j) + M_a M_b) / sqrt((V_a + eps)(V_b + eps)).

Both are fixed affine maps per input at infinite width (the law of large numbers over
channels, Yang 2019, "Tensor Programs I", Sec. 6; neural-tangents' ``stax.LayerNorm``,
Novak et al. 2020, with m = 0 for its Gaussian inputs). The affine gain and shift of
``nn.LayerNorm((C, H, W))`` have one entry per channel and pixel (``per_pixel_affine``):
they add lr_gain K' + lr_shift to the NTK at equal pixels only; a per-channel pair
(``nn.LayerNorm(C)`` channels-last, ``GroupNorm``) adds it at every pixel pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .._checks import check_choice, check_nonnegative
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
        over: on images, ``"channels"`` (each pixel over its channels) or ``"all"``
            (channels and pixels); the same for feature vectors.
        per_pixel_affine: on images, g and beta hold one entry per channel and pixel
            (``nn.LayerNorm((C, H, W))``) rather than one per channel.

    >>> LayerNorm().affine, LayerNorm(affine=False).eps
    (True, 1e-05)
    """

    affine: bool = True
    bias: bool = True
    eps: float = 1e-5
    lr_gain: float = 1.0
    lr_shift: float = 1.0
    over: Literal["channels", "all"] = "channels"
    per_pixel_affine: bool = False

    reads_input: ClassVar[bool] = False
    chain_kind: ClassVar[bool] = False

    def __post_init__(self) -> None:
        from .._checks import message

        check_choice("over", self.over, ("channels", "all"))
        for name in ("affine", "bias", "per_pixel_affine"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(message(name, "a bool", getattr(self, name)))
        for name in ("eps", "lr_gain", "lr_shift"):
            object.__setattr__(self, name, check_nonnegative(name, getattr(self, name)))

    def ntk_shift(self) -> tuple[float, float]:
        """(weight of K', constant) that the affine pair adds to the NTK at initialisation."""
        if not self.affine:
            return 0.0, 0.0
        return self.lr_gain, self.lr_shift if self.bias else 0.0
