"""The finite interpreter of a spec: one torch module per layer kind.

``build_module(spec, width)`` returns a ``torch.nn.Sequential`` whose
initialisation and parametrisation are exactly the spec's, so that over seeds
its outputs converge to ``spec.kernel(x).nngp`` and its empirical NTK (the
parameter-Jacobian Gram, identity metric) to ``spec.kernel(x).ntk``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_bytes, check_int, message
from ..activations import Activation
from ..spec.attention import SelfAttention
from ..spec.conv import Conv
from ..spec.layers import Dense, Nonlinearity, Serial
from ..spec.normalization import LayerNorm
from ..spec.parametrization import Role, layer_scaling
from ..spec.residual import Residual
from .attention import ATTENTION_MODULE_RULES
from .conv import CONV_MODULE_RULES

__all__ = [
    "MODULE_RULES",
    "ActivationModule",
    "FiniteDense",
    "FiniteResidual",
    "ImageLayerNorm",
    "build_module",
]


class FiniteDense(nn.Module):
    """z = b_mult * beta + w_mult * (omega @ x) with the spec's parametrisation.

    NTK parametrisation: w_mult = sqrt(lambda_w / fan_in), omega ~ N(0, C_w / lambda_w);
    b_mult = sqrt(lambda_b), beta ~ N(0, C_b / lambda_b). Standard: w_mult = sqrt(lr_w),
    omega ~ N(0, C_w / (fan_in lr_w)). A zero learning-rate factor freezes the
    parameter (a buffer holding the full value). Either way W ~ N(0, C_w / fan_in)
    and b ~ N(0, C_b), and d z / d omega carries exactly the kernel's lambda_w.
    In general w_mult^2 is the layer's learning-rate factor and W's variance is
    that of :mod:`dltheory.spec.parametrization`'s table (``role``: "input",
    "hidden" or "readout" matters for "mup" and "mean_field").
    """

    def __init__(
        self,
        spec: Dense,
        in_features: int,
        out_features: int,
        generator: torch.Generator,
        dtype: torch.dtype,
        device: torch.device | str | None,
        role: Role = "hidden",
    ) -> None:
        super().__init__()
        self.spec = spec
        self.in_features, self.out_features = in_features, out_features
        self.role = role
        scale = layer_scaling(
            spec.parametrization,
            role,
            in_features,
            out_features,
            spec.c_w,
            spec.c_b,
            spec.lr_w,
            spec.lr_b,
        )
        w_mult2, b_mult2 = scale.w_lr, scale.b_lr
        w_std, b_std = math.sqrt(scale.w_var), math.sqrt(scale.b_var)
        shape_w, shape_b = (out_features, in_features), (out_features,)
        omega = torch.randn(shape_w, generator=generator, dtype=dtype, device=device)
        beta = torch.randn(shape_b, generator=generator, dtype=dtype, device=device)
        self.w_mult = math.sqrt(w_mult2) if w_mult2 > 0 else 1.0
        self.b_mult = math.sqrt(b_mult2) if b_mult2 > 0 else 1.0
        self._register("weight", omega * (w_std / self.w_mult), trainable=w_mult2 > 0)
        self._register("bias", beta * (b_std / self.b_mult), trainable=b_mult2 > 0)

    def _register(self, name: str, value: torch.Tensor, trainable: bool) -> None:
        if trainable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.linear(x, self.weight * self.w_mult)
        return out + self.bias * self.b_mult

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"in={self.in_features}, out={self.out_features}, c_w={s.c_w}, c_b={s.c_b}, "
            f"parametrization={s.parametrization!r}"
        )


class ActivationModule(nn.Module):
    """Applies an ``Activation``'s torch function."""

    def __init__(self, activation: Activation) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation.fn(x)

    def extra_repr(self) -> str:
        return repr(self.activation)


def _dense(layer: Dense, width_in: int, width: int | None, **kw) -> tuple[nn.Module, int]:
    out = layer.width if layer.width is not None else width
    if out is None:
        raise ValueError(
            message(
                "width",
                "an integer >= 1 for the hidden layers",
                None,
                "Pass spec.sample(width=...)",
            )
        )
    return FiniteDense(layer, width_in, out, **kw), out


def _nonlinearity(layer: Nonlinearity, width_in: int, width: int | None, **kw):
    return ActivationModule(layer.activation), width_in


class FiniteResidual(nn.Module):
    """h' = gamma skip(h) + alpha branch(h), the finite side of ``Residual``."""

    def __init__(self, spec: Residual, skip: nn.Module, branch: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.skip, self.branch = skip, branch
        self.gamma, self.alpha = spec.gamma, spec.alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * self.skip(x) + self.alpha * self.branch(x)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"


def _arm(layers, width_in: int, width: int | None, name: str, **kw) -> nn.Module:
    if not layers:
        return nn.Identity()
    modules, features = [], width_in
    for layer in layers:
        kw_layer = {**kw, "role": "hidden"}
        module, features = MODULE_RULES[type(layer)](layer, features, width, **kw_layer)
        modules.append(module)
    if features != width_in:
        raise ValueError(
            message(
                name,
                f"an arm that returns the {width_in} features it reads (to add them)",
                f"{features} features",
                "Leave the width of its last Dense layer unset (the sampling width)",
            )
        )
    return nn.Sequential(*modules)


def _residual(layer: Residual, width_in: int, width: int | None, **kw):
    skip = _arm(layer.skip, width_in, width, "skip", **kw)
    branch = _arm(layer.branch, width_in, width, "branch", **kw)
    return FiniteResidual(layer, skip, branch), width_in


class ImageLayerNorm(nn.Module):
    """LayerNorm of images (N, C, *pixels): over each pixel's channels or over all axes.

    ``over="channels"`` is ``nn.LayerNorm(C)`` applied channels-last (ConvNeXt's);
    ``over="all"`` is ``nn.LayerNorm((C, *pixels))`` (``per_pixel_affine``) or
    ``nn.GroupNorm(1, C)`` (one gain per channel). Gain 1, shift 0 at initialisation.
    """

    def __init__(self, spec: LayerNorm, channels: int, pixels, dtype, device) -> None:
        super().__init__()
        self.spec = spec
        shape = (channels, *pixels) if spec.per_pixel_affine else (channels,)
        self.channels, self.shape = channels, shape
        kw = {"dtype": dtype, "device": device}
        self.weight = nn.Parameter(torch.ones(shape, **kw)) if spec.affine else None
        bias = spec.affine and spec.bias
        self.bias = nn.Parameter(torch.zeros(shape, **kw)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional
        eps = self.spec.eps
        if self.spec.over == "channels":
            y = f.layer_norm(x.movedim(1, -1), (self.channels,), self.weight, self.bias, eps)
            return y.movedim(-1, 1)
        if self.spec.per_pixel_affine:
            return f.layer_norm(x, self.shape, self.weight, self.bias, eps)
        y = f.layer_norm(x, tuple(x.shape[1:]), None, None, eps)
        tail = (1,) * (x.ndim - 2)
        if self.weight is not None:
            y = y * self.weight.reshape(-1, *tail)
        if self.bias is not None:
            y = y + self.bias.reshape(-1, *tail)
        return y

    def extra_repr(self) -> str:
        return f"{self.channels}, over={self.spec.over!r}, eps={self.spec.eps}"


def _layer_norm(layer: LayerNorm, width_in, width: int | None, **kw):
    if isinstance(width_in, tuple):  # images: (channels, pixels or None)
        channels, pixels = width_in
        if layer.per_pixel_affine and layer.affine and pixels is None:
            raise ValueError(
                message(
                    "input_shape",
                    "given to sample a LayerNorm with one gain per pixel",
                    None,
                    "Pass spec.sample(..., input_shape=(C, H, W))",
                )
            )
        pix = () if pixels is None else pixels
        module = ImageLayerNorm(layer, channels, pix, kw.get("dtype"), kw.get("device"))
        return module, width_in
    module = nn.LayerNorm(
        width_in,
        eps=layer.eps,
        elementwise_affine=layer.affine,
        bias=layer.bias,
        dtype=kw.get("dtype"),
        device=kw.get("device"),
    )
    return module, width_in


MODULE_RULES = {
    Dense: _dense,
    Nonlinearity: _nonlinearity,
    **CONV_MODULE_RULES,  # Conv, AvgPool, GlobalAvgPool, Flatten (finite/conv.py)
}
MODULE_RULES.update({Residual: _residual, LayerNorm: _layer_norm})
MODULE_RULES.update(ATTENTION_MODULE_RULES)  # SelfAttention (finite/attention.py)


def build_module(
    spec: Serial,
    width: int | None = None,
    *,
    in_dim: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Sequential:
    """Sample a finite network of ``spec``.

    Args:
        spec: the network spec.
        width: width of the hidden Dense layers (default: ``spec.width``).
        in_dim: input features n_0 (default: ``spec.in_dim``).
        seed / generator: the randomness (exactly one; a seed makes a CPU generator
            on ``device``).
        dtype: parameter dtype (default ``torch.get_default_dtype()``).
        device: where the parameters live.
        input_shape: (C, H, W) or (C, L) of image inputs (default ``spec.input_shape``);
            needed when a Flatten follows conv layers. A spec with ``input_shape``
            reads flattened rows (N, C H W), as its kernel does: the network starts
            with ``nn.Unflatten``. Conv specs otherwise read (N, C, ...) images,
            with ``in_dim`` the input channels.

    >>> from dltheory import MLP
    >>> net = MLP(depth=2, activation="tanh").sample(width=16, in_dim=3, seed=0)
    >>> tuple(net(torch.zeros(5, 3)).shape)
    (5, 1)
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    spec.check_network()
    width = spec.width if width is None else check_int("width", width, minimum=1)
    in_dim = spec.in_dim if in_dim is None else check_int("in_dim", in_dim, minimum=1)
    if in_dim is None and input_shape is not None:
        in_dim = check_int("input_shape", input_shape[0], minimum=1)
    if in_dim is None:
        raise ValueError(message("in_dim", "an integer >= 1", None, "Pass sample(in_dim=...)"))
    if (seed is None) == (generator is None):
        raise ValueError(
            message(
                "seed",
                "given, or a generator given (exactly one)",
                seed,
                "Pass seed=0 for reproducible sampling",
            )
        )
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(message("dtype", "a floating torch.dtype", dtype))
    # a lower bound on the weights (hidden width x width matrices, the input layer)
    item = torch.empty((), dtype=dtype).element_size()
    n_weights = sum(isinstance(layer, Dense | Conv) for layer in spec.layers)
    hidden = float(width or 0) ** 2 * max(n_weights - 2, 0)
    check_bytes("width", item * hidden, fix="Use a smaller width")
    check_bytes("in_dim", item * float(in_dim) * (width or 1), fix="Use fewer input features")
    if generator is None:
        generator = torch.Generator(device=device or "cpu")
        generator.manual_seed(check_int("seed", seed, minimum=0))
    modules: list[nn.Module] = []
    features = in_dim
    if input_shape is None and spec.input_shape is not None:
        input_shape = spec.input_shape
        modules.append(nn.Unflatten(1, input_shape))
    if isinstance(spec.layers[0], Conv | SelfAttention):  # images: (channels, pixels or None)
        features = (in_dim, None if input_shape is None else tuple(input_shape[1:]))
    dense_at = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Dense)]
    for i, layer in enumerate(spec.layers):
        role = "readout" if i == dense_at[-1] else "input" if i == dense_at[0] else "hidden"
        module, features = MODULE_RULES[type(layer)](
            layer,
            features,
            width,
            generator=generator,
            dtype=dtype,
            device=device,
            role=role,
        )
        modules.append(module)
    return nn.Sequential(*modules)
