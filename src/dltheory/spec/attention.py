"""Self-attention over sequences: the ``SelfAttention`` layer kind.

Sequences are laid out as ``Conv1d`` reads them, (N, C, T): C channels at T positions
(the "pixels" of the convolutional engine, :mod:`dltheory.spec.conv`). A layer with
H heads computes, for each head h (neural-tangents' ``stax.GlobalSelfAttention``,
Hron, Bahri, Sohl-Dickstein & Novak 2020, "Infinite attention: NNGP and NTK for deep
attention networks", arXiv 2006.10540, Sec. 3):

    Q = K = x W_K^h,  V = x W_V^h         (x: (T, C), W ~ N(0, 1) entries),
    G^h = m(sigma_QK Q K^T / (C d_k)),    the attention weights, m the mechanism
    z = b_std b + sigma_OV / sqrt(C d_v H) [G^1 V^1, ..., G^H V^H] W_O

with sigma_QK = w_query_std w_key_std, sigma_OV = w_value_std w_out_std, and m the
softmax over the key positions (or identity / relu / abs entrywise). Query and key
weights are tied and scaled by 1 / d_k ("linear scaling"): as d_k -> infinity,
Q K^T / (C d_k) -> the input's per-channel position covariance K_aa(i, j), so the
attention weights become deterministic and the layer has a closed-form kernel (Hron
et al. Sec. 3.2). Independent Q, K scaled by 1 / sqrt(d_k) (the transformer's) leave
the weights random in the limit: no closed form, refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from .._checks import check_choice, check_int, check_nonnegative, message
from .layers import Layer

__all__ = ["MECHANISMS", "SelfAttention"]

MECHANISMS = ("softmax", "identity", "relu", "abs")


@dataclass(frozen=True)
class SelfAttention(Layer):
    """Global self-attention over the positions of a sequence (N, C, T), as neural-tangents'.

    Attributes:
        channels: output channels C_out; ``None`` takes the network's sampling width.
        key_width, value_width: d_k and d_v per head; ``None`` takes the sampling width
            (finite networks only: the kernel is their infinite limit).
        n_heads: H (the kernel does not depend on it).
        linear_scaling: True (tied W_Q = W_K, 1 / d_k scaling) is the regime with a
            closed-form kernel; False is refused (see the module docstring).
        w_key_std, w_query_std, w_value_std, w_out_std: neural-tangents' standard
            deviations; the kernel reads sigma_QK = w_query_std w_key_std (in the
            attention logits) and sigma_OV^2 = (w_value_std w_out_std)^2.
        b_std: bias standard deviation (0: no bias).
        mechanism: "softmax" (over the key positions), "identity", "relu" or "abs".
        pos_emb_type: "none" only (neural-tangents' "SUM" / "CONCAT" are refused).
        parametrization: "ntk" (neural-tangents': every weight N(0, 1), scales in the
            forward pass); the standard parametrisation is refused.
    """

    channels: int | None = None
    key_width: int | None = None
    value_width: int | None = None
    n_heads: int = 1
    linear_scaling: bool = True
    w_key_std: float = 1.0
    w_query_std: float = 1.0
    w_value_std: float = 1.0
    w_out_std: float = 1.0
    b_std: float = 0.0
    mechanism: Literal["softmax", "identity", "relu", "abs"] = "softmax"
    parametrization: Literal["ntk"] = "ntk"
    pos_emb_type: Literal["none"] = "none"

    reads_input: ClassVar[bool] = True  # a zero-mean weight layer (W_O): a Gaussian output
    reads_pixel_pairs: ClassVar[bool] = True

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("channels", "key_width", "value_width"):
            if getattr(self, name) is not None:
                set_(name, check_int(name, getattr(self, name), minimum=1))
        set_("n_heads", check_int("n_heads", self.n_heads, minimum=1))
        for name in ("w_key_std", "w_query_std", "w_value_std", "w_out_std", "b_std"):
            set_(name, check_nonnegative(name, getattr(self, name)))
        if isinstance(self.mechanism, str):
            set_("mechanism", self.mechanism.lower())
        check_choice("mechanism", self.mechanism, MECHANISMS)
        if self.linear_scaling is not True:
            raise ValueError(
                message(
                    "linear_scaling",
                    "True (tied query / key weights, 1 / d_k scaling: the regime with a "
                    "closed-form kernel)",
                    self.linear_scaling,
                    "Independent Q, K with 1 / sqrt(d_k) scaling keep random attention "
                    "weights at infinite width and have no closed-form NNGP / NTK; "
                    "estimate them by Monte Carlo over finite networks "
                    "(dltheory.empirical_ntk, ensembles of torch models)",
                )
            )
        if self.pos_emb_type != "none":
            raise ValueError(
                message(
                    "pos_emb_type",
                    "'none' (positional embeddings are not implemented here)",
                    self.pos_emb_type,
                    "Concatenate position features to the input channels instead",
                )
            )
        if self.parametrization != "ntk":
            raise ValueError(
                message(
                    "parametrization",
                    "'ntk' for SelfAttention (neural-tangents' convention)",
                    self.parametrization,
                    "The standard parametrisation of attention is not implemented here",
                )
            )

    @property
    def qk_std(self) -> float:
        """sigma_QK = w_query_std w_key_std, the scale of the attention logits."""
        return self.w_query_std * self.w_key_std

    @property
    def ov_var(self) -> float:
        """sigma_OV^2 = (w_value_std w_out_std)^2, the output's weight variance."""
        return (self.w_value_std * self.w_out_std) ** 2
