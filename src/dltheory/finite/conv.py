"""Finite torch modules of the convolutional layer kinds (rows of ``MODULE_RULES``).

``FiniteConv`` draws W ~ N(0, C_w / (C_in k)) and b ~ N(0, C_b) in the spec's
parametrisation (the table of :mod:`dltheory.spec.parametrization` with fan-in
C_in k), pads with zeros as the kernel rule does ("same": TensorFlow's rule, the
odd zero after), and convolves with the spec's stride and dilation; pooling counts
the padding zeros in its averages. Over seeds the outputs converge to
``spec.kernel(x).nngp`` and the empirical NTK to ``spec.kernel(x).ntk``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import message
from ..spec.conv import AvgPool, Conv, Flatten, GlobalAvgPool, output_size, padding_sizes
from ..spec.parametrization import layer_scaling

__all__ = ["CONV_MODULE_RULES", "FiniteAvgPool", "FiniteConv", "GlobalAvgPoolModule"]


def _pads(layer: Conv | AvgPool, x: torch.Tensor) -> list[int]:
    """F.pad's list (last axis first) for the spatial axes of x."""
    window = layer.kernel_size if isinstance(layer, Conv) else layer.window
    dilation = layer.dilation if isinstance(layer, Conv) else (1,) * len(window)
    pads: list[int] = []
    for m in reversed(range(layer.dim)):
        size = x.shape[2 + m]
        output_size(layer.padding, size, window[m], layer.stride[m], dilation[m], m)
        pads.extend(padding_sizes(layer.padding, size, window[m], layer.stride[m], dilation[m], m))
    return pads


def _check_input(layer, x: torch.Tensor, channels: int | None = None) -> None:
    if x.ndim != layer.dim + 2:
        raise ValueError(
            message(
                "x",
                f"a batch of {layer.dim}-D images (N, C, {'L' if layer.dim == 1 else 'H, W'})",
                f"shape {tuple(x.shape)}",
            )
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(message("x", f"images with {channels} channels", tuple(x.shape)))


class FiniteConv(nn.Module):
    """z = b_mult beta + conv(pad(x), w_mult omega), in the spec's parametrisation."""

    def __init__(
        self,
        spec: Conv,
        in_channels: int,
        out_channels: int,
        generator: torch.Generator,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels, self.out_channels = in_channels, out_channels
        fan_in = in_channels * spec.area
        scale = layer_scaling(
            spec.parametrization,
            "hidden",
            fan_in,
            out_channels,
            spec.c_w,
            spec.c_b,
            spec.lr_w,
            spec.lr_b,
        )
        shape = (out_channels, in_channels, *spec.kernel_size)
        omega = torch.randn(shape, generator=generator, dtype=dtype, device=device)
        beta = torch.randn(out_channels, generator=generator, dtype=dtype, device=device)
        self.w_mult = math.sqrt(scale.w_lr) if scale.w_lr > 0 else 1.0
        self.b_mult = math.sqrt(scale.b_lr) if scale.b_lr > 0 else 1.0
        w = omega * (math.sqrt(scale.w_var) / self.w_mult)
        b = beta * (math.sqrt(scale.b_var) / self.b_mult)
        for name, value, trainable in (("weight", w, scale.w_lr > 0), ("bias", b, scale.b_lr > 0)):
            if trainable:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self.spec, x, self.in_channels)
        conv = F.conv1d if self.spec.dim == 1 else F.conv2d
        out = conv(
            F.pad(x, _pads(self.spec, x)),
            self.weight * self.w_mult,
            self.bias * self.b_mult,
            stride=self.spec.stride,
            dilation=self.spec.dilation,
        )
        return out

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={s.kernel_size}, "
            f"stride={s.stride}, dilation={s.dilation}, padding={s.padding!r}, c_w={s.c_w}, "
            f"c_b={s.c_b}, parametrization={s.parametrization!r}"
        )


class FiniteAvgPool(nn.Module):
    """Average pooling with the spec's zero padding counted in each window."""

    def __init__(self, spec: AvgPool) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self.spec, x)
        pool = F.avg_pool1d if self.spec.dim == 1 else F.avg_pool2d
        return pool(F.pad(x, _pads(self.spec, x)), self.spec.window, self.spec.stride)


class GlobalAvgPoolModule(nn.Module):
    """The mean over every spatial axis: (N, C, *pixels) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(tuple(range(2, x.ndim)))


def _image(features, name: str) -> tuple[int, tuple[int, ...] | None]:
    if not isinstance(features, tuple):
        raise ValueError(
            message(
                "spec",
                f"a network whose {name} reads images",
                "a feature vector",
                "Put conv and pooling layers before Flatten / GlobalAvgPool",
            )
        )
    return features[0], features[1]


def _conv(layer: Conv, features, width, **kw):
    channels, pixels = _image(features, "Conv")
    if layer.in_channels is not None and layer.in_channels != channels:
        raise ValueError(
            message("in_dim", f"{layer.in_channels} channels (the Conv's in_channels)", channels)
        )
    out = layer.channels if layer.channels is not None else width
    if out is None:
        raise ValueError(
            message("width", "an integer >= 1 for conv channels", None, "Pass sample(width=...)")
        )
    module = FiniteConv(layer, channels, out, kw["generator"], kw["dtype"], kw["device"])
    if pixels is not None:
        pixels = tuple(
            output_size(
                layer.padding, size, layer.kernel_size[m], layer.stride[m], layer.dilation[m], m
            )
            for m, size in enumerate(pixels)
        )
    return module, (out, pixels)


def _avg_pool(layer: AvgPool, features, width, **kw):
    channels, pixels = _image(features, "AvgPool")
    if pixels is not None:
        pixels = tuple(
            output_size(layer.padding, size, layer.window[m], layer.stride[m], 1, m)
            for m, size in enumerate(pixels)
        )
    return FiniteAvgPool(layer), (channels, pixels)


def _global_avg_pool(layer: GlobalAvgPool, features, width, **kw):
    channels, _ = _image(features, "GlobalAvgPool")
    return GlobalAvgPoolModule(), channels


def _flatten(layer: Flatten, features, width, **kw):
    if not isinstance(features, tuple):
        return nn.Flatten(), features
    channels, pixels = features
    if pixels is None:
        raise ValueError(
            message(
                "input_shape",
                "given to sample a network with Flatten (the Dense after it needs C H W)",
                None,
                "Pass spec.sample(..., input_shape=(C, H, W))",
            )
        )
    return nn.Flatten(), channels * math.prod(pixels)


CONV_MODULE_RULES = {
    Conv: _conv,
    AvgPool: _avg_pool,
    GlobalAvgPool: _global_avg_pool,
    Flatten: _flatten,
}
