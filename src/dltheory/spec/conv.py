"""Convolutional layer kinds: ``Conv`` (1-D / 2-D), ``AvgPool``, ``GlobalAvgPool``, ``Flatten``.

Images are laid out as torch lays them out, (N, C, H, W) or (N, C, L). A conv layer
z_i = b + sum_{c, delta} W_{c, delta} x_{c, s i + d delta - p} has
W ~ N(0, C_w / (C_in k)) with k the kernel area (fan-in C_in x kernel area) and
b ~ N(0, C_b), as ``stax.Conv`` of neural-tangents with W_std^2 = C_w, b_std^2 = C_b
(Novak et al. 2019, "Bayesian deep convolutional networks with many channels are
Gaussian processes", Sec. 2.2). Pooling averages with the zero padding counted
(torch's ``count_include_pad=True``, neural-tangents' ``normalize_edges=False``).

``conv_layer_from_module`` maps one torch module to its layer kind; the model
lifters (:mod:`dltheory.spec.from_module`) call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import nn

from .._checks import check_choice, check_int, check_nonnegative, message
from .layers import Dense, Layer

__all__ = [
    "AvgPool",
    "Conv",
    "Flatten",
    "GlobalAvgPool",
    "Padding",
    "conv_layer_from_module",
    "output_size",
    "padding_sizes",
]

Padding = Literal["same", "valid"] | int | tuple[int, ...]


def _tuple(name: str, value, dim: int, minimum: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * dim
    if not isinstance(value, tuple | list) or len(value) != dim:
        raise ValueError(message(name, f"an integer or a tuple of {dim} integers", value))
    return tuple(check_int(name, v, minimum=minimum) for v in value)


def _padding(value, dim: int) -> str | tuple[int, ...]:
    if isinstance(value, str):
        return check_choice("padding", value.lower(), ("same", "valid"))
    return _tuple("padding", value, dim, minimum=0)


def padding_sizes(
    padding: str | tuple[int, ...],
    size: int,
    window: int,
    stride: int,
    dilation: int,
    axis: int,
) -> tuple[int, int]:
    """Zeros added (before, after) along one spatial axis.

    "same" is TensorFlow's / neural-tangents' rule: ceil(size / stride) outputs, total
    padding max((out - 1) s + (k - 1) d + 1 - size, 0), the odd zero after (torch's
    ``padding="same"`` for stride 1). An integer p pads p on both sides (torch).
    """
    if padding == "valid":
        return 0, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + (window - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2
    return padding[axis], padding[axis]


def output_size(
    padding: str | tuple[int, ...], size: int, window: int, stride: int, dilation: int, axis: int
) -> int:
    """Output length along one axis (raises when the window does not fit)."""
    lo, hi = padding_sizes(padding, size, window, stride, dilation, axis)
    span = (window - 1) * dilation + 1
    if size + lo + hi < span:
        raise ValueError(
            message(
                "x1",
                f"images of at least {span - lo - hi} pixels along spatial axis {axis} "
                f"for a window of {window} (dilation {dilation})",
                size,
            )
        )
    return (size + lo + hi - span) // stride + 1


@dataclass(frozen=True)
class Conv(Layer):
    """A 1-D or 2-D convolution z = b + W * x (zero padding), W ~ N(0, C_w / (C_in k)).

    Attributes:
        channels: output channels; ``None`` takes the network's sampling width.
        kernel_size: (k,) for 1-D, (k_h, k_w) for 2-D; an integer means (k, k).
        stride, dilation: integers or tuples (one per spatial axis).
        padding: ``"same"`` (ceil(size / stride) outputs), ``"valid"`` or integers.
        c_w, c_b: weight and bias variances; c_b = 0 is a conv without bias.
        parametrization: ``"ntk"`` or ``"standard"``, as for :class:`Dense`.
        lr_w, lr_b: learning-rate factors, as for :class:`Dense` (fan-in C_in k).
        in_channels: input channels when known (a lifted torch layer); checked
            against the data.
    """

    channels: int | None = None
    kernel_size: tuple[int, ...] | int = (3, 3)
    stride: tuple[int, ...] | int = 1
    dilation: tuple[int, ...] | int = 1
    padding: Padding = "same"
    c_w: float = 1.0
    c_b: float = 0.0
    parametrization: Literal["ntk", "standard"] = "ntk"
    lr_w: float | None = None
    lr_b: float | None = None
    in_channels: int | None = None

    reads_input: ClassVar[bool] = True

    def __post_init__(self) -> None:
        k = self.kernel_size
        if isinstance(k, int) and not isinstance(k, bool):
            k = (k, k)
        if not isinstance(k, tuple | list) or len(k) not in (1, 2):
            raise ValueError(message("kernel_size", "an integer or a tuple of 1 or 2 integers", k))
        dim = len(k)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("kernel_size", tuple(check_int("kernel_size", v, minimum=1) for v in k))
        set_("stride", _tuple("stride", self.stride, dim, minimum=1))
        set_("dilation", _tuple("dilation", self.dilation, dim, minimum=1))
        set_("padding", _padding(self.padding, dim))
        set_("c_w", check_nonnegative("c_w", self.c_w))
        set_("c_b", check_nonnegative("c_b", self.c_b))
        check_choice("parametrization", self.parametrization, ("ntk", "standard"))
        for name in ("channels", "in_channels"):
            if getattr(self, name) is not None:
                set_(name, check_int(name, getattr(self, name), minimum=1))
        for name in ("lr_w", "lr_b"):
            if getattr(self, name) is not None:
                set_(name, check_nonnegative(name, getattr(self, name)))

    @property
    def dim(self) -> int:
        """Spatial dimensions (1 or 2)."""
        return len(self.kernel_size)

    @property
    def area(self) -> int:
        """Kernel area k (the fan-in is C_in k)."""
        return math.prod(self.kernel_size)

    def learning_rates(self, fan_in: int | None) -> tuple[float, float]:
        """(lambda_w, lambda_b), as :meth:`Dense.learning_rates` with fan-in C_in k."""
        return Dense.learning_rates(self, fan_in)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AvgPool(Layer):
    """Average pooling over windows (zeros of the padding counted in the average).

    Attributes:
        window: (k,) or (k_h, k_w); an integer means (k, k).
        stride: default: the window.
        padding: ``"valid"`` (default), ``"same"`` or integers (torch's).
    """

    window: tuple[int, ...] | int = (2, 2)
    stride: tuple[int, ...] | int | None = None
    padding: Padding = "valid"

    def __post_init__(self) -> None:
        w = self.window
        if isinstance(w, int) and not isinstance(w, bool):
            w = (w, w)
        if not isinstance(w, tuple | list) or len(w) not in (1, 2):
            raise ValueError(message("window", "an integer or a tuple of 1 or 2 integers", w))
        w = tuple(check_int("window", v, minimum=1) for v in w)
        object.__setattr__(self, "window", w)
        stride = w if self.stride is None else _tuple("stride", self.stride, len(w), 1)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "padding", _padding(self.padding, len(w)))

    @property
    def dim(self) -> int:
        return len(self.window)


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """The average over all pixels of each channel (torch ``AdaptiveAvgPool(1)`` + flatten)."""


@dataclass(frozen=True)
class Flatten(Layer):
    """Flattening (C, *pixels) into C x pixels features, torch's ``nn.Flatten()``."""


def _int_tuple(value, dim: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,) * dim


def conv_layer_from_module(
    module: nn.Module,
    c_w: float = 1.0,
    c_b: float = 0.0,
    parametrization: Literal["ntk", "standard"] = "ntk",
) -> Layer | None:
    """The conv-family layer kind a torch module computes, or None if it is not one.

    ``Conv1d`` / ``Conv2d`` (zero padding, groups 1) -> :class:`Conv` with the user's
    (C_w, C_b) (C_b = 0 without bias); ``AvgPool1d/2d`` (count_include_pad, no
    ceil mode) -> :class:`AvgPool`; ``AdaptiveAvgPool1d/2d(1)`` -> :class:`GlobalAvgPool`
    (a following ``Flatten`` is then a no-op for the kernel); ``Flatten`` ->
    :class:`Flatten`. Max pooling and batch normalisation have no closed-form
    kernel: refused, naming the module.

    >>> conv_layer_from_module(nn.Conv2d(3, 8, 3, padding=1)).kernel_size
    (3, 3)
    """
    from ..finite.conv import FiniteAvgPool, GlobalAvgPoolModule

    if isinstance(module, FiniteAvgPool):
        return module.spec
    if isinstance(module, GlobalAvgPoolModule):
        return GlobalAvgPool()
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros":
            raise ValueError(
                message(
                    "module",
                    "a convolution with groups=1 and zero padding",
                    module,
                    "Only these have a kernel rule here",
                )
            )
        dim = 1 if isinstance(module, nn.Conv1d) else 2
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        return Conv(
            module.out_channels,
            tuple(module.kernel_size),
            stride=tuple(module.stride),
            dilation=tuple(module.dilation),
            padding=padding if isinstance(padding, str) else _int_tuple(padding, dim),
            c_w=c_w,
            c_b=c_b if module.bias is not None else 0.0,
            parametrization=parametrization,
            in_channels=module.in_channels,
        )
    if isinstance(module, nn.AvgPool1d | nn.AvgPool2d):
        dim = 1 if isinstance(module, nn.AvgPool1d) else 2
        if (
            module.ceil_mode
            or not module.count_include_pad
            or getattr(module, "divisor_override", None)
        ):
            raise ValueError(
                message(
                    "module",
                    "an average pooling with count_include_pad=True, ceil_mode=False",
                    module,
                )
            )
        return AvgPool(
            _int_tuple(module.kernel_size, dim),
            stride=_int_tuple(module.stride, dim),
            padding=_int_tuple(module.padding, dim),
        )
    if isinstance(module, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d):
        size = _int_tuple(module.output_size, 1)
        if any(s != 1 for s in size):
            raise ValueError(
                message("module", "an adaptive average pooling to size 1 (global)", module)
            )
        return GlobalAvgPool()
    if isinstance(module, nn.Flatten):
        return Flatten()
    refused = (
        nn.MaxPool1d,
        nn.MaxPool2d,
        nn.AdaptiveMaxPool1d,
        nn.AdaptiveMaxPool2d,
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.Softmax,
        nn.LogSoftmax,
    )
    if isinstance(module, refused):
        raise ValueError(no_closed_form(type(module).__name__))
    return None


def no_closed_form(name: str) -> str:
    """The one refusal of a layer without a closed-form infinite-width kernel."""
    return message(
        "model",
        "made of layers with a closed-form infinite-width kernel",
        name,
        f"{name} has none; estimate its NNGP / NTK by Monte Carlo over finite networks "
        "(outputs of torch models over seeds, dltheory.empirical_ntk)",
    )
