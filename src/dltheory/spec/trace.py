"""Map a ``torch.fx`` graph of a model to a spec (the engine of ``spec_from_module``).

Every graph node gets a *value*: the layers that lead from the model's input to it
(each tagged with the node that made it), its features, and a pending scalar
multiple. A node applies its layer kind to its argument's value; an addition of two
values finds their common prefix (the representation h both arms read) and becomes
a ``Residual`` whose skip and branch are the two remainders, the scalar multiples
becoming gamma and alpha. A branch must end with a fresh weight layer
(``dltheory.spec.residual``); one module reached by both arms is a shared layer,
whose arms are not independent, and is refused.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from .._checks import check_nonnegative, message
from ..activations import activation as lookup_activation
from .from_module import SUPPORTED, is_pass_through, module_activation
from .layers import Dense, Layer, Nonlinearity, Serial
from .normalization import LayerNorm
from .residual import Residual

__all__ = ["lift"]

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_ACT_FUNCTIONS = {
    torch.relu: "relu",
    F.relu: "relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.silu: "silu",
    F.mish: "mish",
    torch.erf: "erf",
}
_ACT_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
# the registry's activations under their torch / torch.nn.functional names (elu, softplus,
# sin, cos, abs, sign, ...), taking no parameter beyond the tensor unless read below
for _name in ("elu", "softplus", "sin", "cos", "abs", "sign", "relu", "tanh", "sigmoid"):
    for _space in (F, torch):
        if callable(getattr(_space, _name, None)):
            _ACT_FUNCTIONS.setdefault(getattr(_space, _name), _name)
    _ACT_METHODS.setdefault(_name, _name)
_ADAPTIVE = (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, torch.adaptive_avg_pool1d)
_AVG_POOL = (F.avg_pool1d, F.avg_pool2d, torch.avg_pool1d)
_NORMS = (F.layer_norm, F.group_norm, torch.layer_norm, torch.group_norm)


class _Param:
    """A parameter or buffer read in forward (a ``get_attr`` node): only norms take one."""


_ADD = (operator.add, torch.add, operator.iadd)
_SUB = (operator.sub, torch.sub, operator.isub)
_MUL = (operator.mul, torch.mul, operator.imul)
_DIV = (operator.truediv, torch.div, operator.itruediv)
_IDENTITY_FUNCTIONS = (F.dropout, F.alpha_dropout, F.dropout1d, F.dropout2d)


@dataclass(frozen=True)
class _Value:
    """The layers from the input to a node, tagged by their node; features; a pending scale."""

    items: tuple[tuple[fx.Node, Layer, str], ...]  # (node, layer, module name or "")
    features: int | None
    scale: float = 1.0
    channels_last: int = 0  # spatial axes of an image permuted channels-last (0: NCHW)


class _Tracer(fx.Tracer):
    """torch's leaf modules, plus dltheory's sampled layers and the conv engine's modules."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        from ..finite.modules import ActivationModule, FiniteDense, ImageLayerNorm

        if isinstance(m, FiniteDense | ActivationModule | ImageLayerNorm) or _is_conv(m):
            return True
        return super().is_leaf_module(m, qualname)


@functools.cache
def _conv_hook():
    try:
        from .conv import conv_layer_from_module  # type: ignore[attr-defined]
    except ImportError:
        return None
    return conv_layer_from_module


def _conv_kind(name: str) -> type[Layer]:
    from . import conv

    return getattr(conv, name)


def _spatial(value: _Value) -> bool:
    """Whether the representation is still an image (a conv or average pool last)."""
    for _, layer, _ in reversed(value.items):
        kind = type(layer).__name__
        if kind in ("Conv", "AvgPool"):
            return True
        if kind in ("GlobalAvgPool", "Flatten", "Dense"):
            return False
    return False


def _channels(value: _Value) -> int | None:
    """The channels of an image value: the last conv's, None where unknown."""
    for _, layer, _ in reversed(value.items):
        kind = type(layer).__name__
        if kind == "Conv":
            return layer.channels
        if kind in ("GlobalAvgPool", "Flatten", "Dense"):
            return None
    return None


def _image_dim(value: _Value) -> int:
    """The spatial axes of an image value (the last conv's or pool's), 2 where unknown."""
    for _, layer, _ in reversed(value.items):
        if type(layer).__name__ == "Conv":
            return len(layer.kernel_size)
        if type(layer).__name__ == "AvgPool":
            return len(layer.window)
    return 2


def _module_name(node: fx.Node) -> str:
    """The module a node calls ("" for a function or method)."""
    return node.target if node.op == "call_module" else ""


def _arg(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` of a call node, given at position ``i`` or as a keyword."""
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _is_conv(module: nn.Module) -> bool:
    """A module of the conv engine (``dltheory.spec.conv``), where present."""
    if _conv_hook() is None:
        return False
    from ..finite import conv as finite_conv

    kinds = (
        nn.Conv1d,
        nn.Conv2d,
        nn.AvgPool1d,
        nn.AvgPool2d,
        nn.AdaptiveAvgPool1d,
        nn.AdaptiveAvgPool2d,
        nn.MaxPool1d,
        nn.MaxPool2d,
    )
    own = tuple(
        getattr(finite_conv, n)
        for n in ("FiniteConv", "FiniteAvgPool", "GlobalAvgPoolModule")
        if hasattr(finite_conv, n)
    )
    return isinstance(module, kinds + own)


class _Lifter:
    def __init__(self, model, c_w, c_b, parametrization) -> None:
        self.model = model
        self.modules = dict(model.named_modules())
        self.parametrization = parametrization
        self.c_w, self.c_b = c_w, c_b
        self.n_linear = 0
        self.in_dim: int | None = None
        self.readouts: dict[fx.Node, str] = {}  # sum node -> module of its branch's readout

    def once(self, node: fx.Node, value: _Value) -> None:
        """Refuse a weight module applied again on its own path (tied weights).

        One reached by two arms of a sum is refused at the sum (``add``).
        """
        if any(m == node.target for _, _, m in value.items):
            raise self.refuse(
                node,
                "made of weight layers each applied once",
                f"module {node.target!r} applied again (tied weights)",
                "A reused weight matrix correlates the layers it feeds: the NTK gains "
                "cross terms the spec does not carry; use separate modules",
            )

    # errors -------------------------------------------------------------------------
    def refuse(self, node: fx.Node, constraint: str, got: Any, fix: str) -> ValueError:
        where = f"graph node {node.name!r}"
        if node.op == "call_module":
            where += f" (module {node.target!r}: {type(self.modules[node.target]).__name__})"
        elif node.op in ("call_function", "call_method"):
            where += f" ({getattr(node.target, '__name__', node.target)})"
        return ValueError(message("model", constraint, got, f"At {where}. {fix}"))

    # variances ------------------------------------------------------------------------
    def variances(self, fan_in: int, has_bias: bool) -> tuple[float, float]:
        i = self.n_linear
        self.n_linear += 1
        c_w = self.pick(self.c_w, i, 1.0 / 3.0, "c_w")
        c_b = self.pick(self.c_b, i, 1.0 / (3.0 * fan_in), "c_b")
        return c_w, c_b if has_bias else 0.0

    def pick(self, given, i: int, default: float, name: str) -> float:
        if given is None:
            return default
        if isinstance(given, Sequence) and not isinstance(given, str):
            return check_nonnegative(name, given[i])
        return check_nonnegative(name, given)

    # layers ---------------------------------------------------------------------------
    def append(self, node: fx.Node, value: _Value, layer: Layer, features, module="") -> _Value:
        value = self.settle(node, value)
        if isinstance(layer, Nonlinearity) and value.items:
            if isinstance(value.items[-1][1], Nonlinearity):
                raise self.refuse(
                    node,
                    "free of two activations in a row",
                    layer.activation.name,
                    "Compose them into one activation with Activation.from_callable",
                )
        return _Value((*value.items, (node, layer, module)), features, 1.0, value.channels_last)

    def settle(self, node: fx.Node, value: _Value) -> _Value:
        """Fold a pending scalar multiple into the last layer (a Dense or a Residual)."""
        c = value.scale
        if c == 1.0:
            return value
        if not value.items:
            raise self.refuse(
                node,
                "free of scalar multiples of its input",
                c,
                "Scale the input data instead",
            )
        owner, last, name = value.items[-1]
        if isinstance(last, Residual):
            last = replace(last, alpha=last.alpha * c, gamma=last.gamma * c)
        elif isinstance(last, Dense):
            lr_w, lr_b = last.lr_w, last.lr_b
            if last.parametrization == "ntk":
                lr_w = last.c_w if lr_w is None else lr_w
                lr_b = last.c_b if lr_b is None else lr_b
            lr_w = 1.0 if lr_w is None else lr_w
            lr_b = 1.0 if lr_b is None else lr_b
            c2 = c * c
            last = replace(
                last, c_w=last.c_w * c2, c_b=last.c_b * c2, lr_w=lr_w * c2, lr_b=lr_b * c2
            )
        else:
            raise self.refuse(
                node,
                "free of scalar multiples except of a Linear output or an arm of a sum",
                type(last).__name__,
                "Multiply a Linear layer's output or a residual branch",
            )
        return _Value(
            (*value.items[:-1], (owner, last, name)), value.features, 1.0, value.channels_last
        )

    def linear(self, node, value: _Value, module) -> _Value:
        from ..finite.modules import FiniteDense

        if value.channels_last:  # a Linear on channels-last pixels: a 1 x 1 convolution
            return self.pointwise(node, value, module)
        if value.features is not None and value.features != module.in_features:
            raise self.refuse(
                node,
                "made of layers whose shapes chain",
                f"{module.in_features} input features after {value.features}",
                "Make each Linear's in_features the previous layer's out_features",
            )
        if self.in_dim is None:
            self.in_dim = module.in_features
        if isinstance(module, FiniteDense):
            self.n_linear += 1
            layer = replace(module.spec, width=module.out_features)
        else:
            c_w, c_b = self.variances(module.in_features, module.bias is not None)
            layer = Dense(c_w, c_b, width=module.out_features, parametrization=self.parametrization)
        return self.append(node, value, layer, module.out_features, node.target)

    def pointwise(self, node, value: _Value, module: nn.Linear) -> _Value:
        """``nn.Linear`` on a channels-last image: Conv with a 1 x ... x 1 window."""
        channels = _channels(value)
        if channels is not None and channels != module.in_features:
            raise self.refuse(
                node,
                "made of layers whose shapes chain",
                f"{module.in_features} input features after {channels} channels",
                "Make the Linear's in_features the channels of the image",
            )
        c_w, c_b = self.variances(module.in_features, module.bias is not None)
        layer = _conv_kind("Conv")(
            module.out_features,
            (1,) * value.channels_last,
            c_w=c_w,
            c_b=c_b,
            parametrization=self.parametrization,
            in_channels=module.in_features,
        )
        return self.append(node, value, layer, None, node.target)

    def image_norm(self, node, value: _Value, module: nn.Module) -> _Value:
        """LayerNorm / GroupNorm(1, C) of an image (``LayerNorm(over=...)``)."""
        channels = _channels(value)
        if isinstance(module, nn.GroupNorm):
            if module.num_groups != 1 or value.channels_last:
                raise self.refuse(
                    node,
                    "made of GroupNorms of one group on channels-first images",
                    f"GroupNorm({module.num_groups}, {module.num_channels})",
                    "Use GroupNorm(1, C) (LayerNorm over channels and pixels)",
                )
            affine, bias, per_pixel, over = module.affine, module.affine, False, "all"
            shape: tuple[int, ...] = (module.num_channels,)
        else:
            shape = tuple(module.normalized_shape)
            affine = bool(module.elementwise_affine)
            bias = affine and module.bias is not None
            if value.channels_last and len(shape) == 1:
                over, per_pixel = "channels", False
            elif not value.channels_last and len(shape) == _image_dim(value) + 1:
                over, per_pixel = "all", True
            else:
                raise self.refuse(
                    node,
                    "made of LayerNorms over the channels of channels-last pixels or over "
                    "(C, *pixels) of channels-first images",
                    f"normalized_shape {shape} on an image"
                    + (" (channels-last)" if value.channels_last else " (channels-first)"),
                    "Permute to channels-last around LayerNorm(C) (x.permute(0, 2, 3, 1)), "
                    "or normalise over (C, H, W)",
                )
        if channels is not None and shape[0] != channels:
            raise self.refuse(
                node,
                "made of layers whose shapes chain",
                f"normalisation of {shape[0]} channels after {channels}",
                "Normalise the channels the previous layer returns",
            )
        eps = float(module.eps)
        layer = LayerNorm(affine, bias, eps, over=over, per_pixel_affine=per_pixel and affine)
        return self.append(node, value, layer, None, _module_name(node))

    def permute(self, node, value: _Value, dims: tuple) -> _Value:
        """x.permute(0, 2, 3, 1) / (0, 2, 1) to channels-last and back, around LayerNorm."""
        dims = tuple(int(d) for d in dims) if all(isinstance(d, int) for d in dims) else ()
        n = len(dims) - 2
        to_last = n >= 1 and dims == (0, *range(2, n + 2), 1)
        to_first = n >= 1 and dims == (0, n + 1, *range(1, n + 1))
        if _spatial(value) and value.channels_last == n and to_first:
            return replace(value, channels_last=0)
        if _spatial(value) and not value.channels_last and to_last:
            return replace(value, channels_last=n)
        raise self.refuse(
            node,
            "made of permutations of images to channels-last and back",
            f"permute{dims or node.args[1:]}",
            "Only x.permute(0, 2, 3, 1) / (0, 2, 1) around LayerNorm(C) and Linear layers, "
            "undone before the next conv, pooling or Flatten, are read",
        )

    def layer_norm(self, node, value: _Value, module: nn.LayerNorm) -> _Value:
        if _spatial(value):
            return self.image_norm(node, value, module)
        if tuple(module.normalized_shape) != (value.features,):
            raise self.refuse(
                node,
                "made of LayerNorms over the features of a vector",
                f"normalized_shape {tuple(module.normalized_shape)} after {value.features} "
                "features",
                "Normalise the last axis of a (batch, features) representation",
            )
        affine = bool(module.elementwise_affine)
        bias = affine and module.bias is not None
        layer = LayerNorm(affine=affine, bias=bias, eps=float(module.eps))
        return self.append(node, value, layer, value.features, _module_name(node))

    def no_closed_form(self, node: fx.Node, module: nn.Module) -> ValueError:
        """The refusal of a layer whose infinite-width kernel has no closed form."""
        name = type(module).__name__
        return self.refuse(
            node,
            "made of layers with a closed-form infinite-width kernel",
            name,
            f"{name} has none; estimate its NNGP / NTK by Monte Carlo over finite "
            "networks (outputs of torch models over seeds, dltheory.empirical_ntk)",
        )

    def conv(self, node: fx.Node, module: nn.Module) -> Layer:
        """A conv-engine kind (``conv_layer_from_module``), PyTorch's init by default."""
        layer = getattr(module, "spec", None)
        if layer is not None and hasattr(module, "out_channels"):  # a sampled FiniteConv
            self.n_linear += 1
            return replace(layer, channels=module.out_channels)
        if layer is not None:
            return layer
        c_w = c_b = 0.0
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            fan_in = module.in_channels // module.groups * math.prod(module.kernel_size)
            c_w, c_b = self.variances(fan_in, module.bias is not None)
        if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
            raise self.no_closed_form(node, module)
        # The conv engine's other refusals (groups, padding modes) name the module.
        kind = _conv_hook()(module, c_w, c_b, self.parametrization)
        if kind is None:
            raise self.refuse(node, "made of layers with a kernel rule", type(module).__name__,
                              "Max pooling and batch norm have no closed-form kernel")  # fmt: skip
        return kind

    def call_module(self, node: fx.Node, value: _Value) -> _Value:
        module = self.modules[node.target]
        from ..finite.modules import FiniteDense, ImageLayerNorm

        if isinstance(module, nn.Linear | FiniteDense):
            self.once(node, value)
            return self.linear(node, value, module)
        if isinstance(module, nn.LayerNorm):
            return self.layer_norm(node, value, module)
        if isinstance(module, nn.GroupNorm) and _spatial(value):
            return self.image_norm(node, value, module)
        if isinstance(module, ImageLayerNorm):
            return self.append(node, value, module.spec, value.features, node.target)
        if value.channels_last and (_is_conv(module) or isinstance(module, nn.Flatten)):
            raise self.refuse(
                node,
                "made of conv, pooling and Flatten layers on channels-first images",
                "a channels-last image",
                "Permute back (x.permute(0, 3, 1, 2)) before this layer",
            )
        if isinstance(module, nn.Flatten) and _spatial(value):  # images -> feature vectors
            return self.append(node, value, _conv_kind("Flatten")(), None, node.target)
        if isinstance(module, _DROPOUT) or is_pass_through(module):
            return value
        if _is_conv(module):
            if isinstance(module, nn.Conv1d | nn.Conv2d) or hasattr(module, "out_channels"):
                self.once(node, value)
            if self.in_dim is None:  # the input's channels: the network's n_0
                self.in_dim = getattr(module, "in_channels", None)
            return self.append(node, value, self.conv(node, module), None, node.target)
        try:
            act = module_activation(module)
        except ValueError:
            act = None
        if act is None:
            hook = _conv_hook()
            try:
                if hook is not None:
                    hook(module)  # the conv engine refuses MaxPool, BatchNorm, Softmax, ...
            except ValueError:
                raise self.no_closed_form(node, module) from None
            raise self.refuse(
                node,
                "made of Linear layers and supported activations",
                type(module).__name__,
                f"Supported: {SUPPORTED}, LayerNorm, Dropout, residual sums; "
                "nn.Identity and Flatten are skipped",
            )
        return self.append(node, value, Nonlinearity(act), value.features, node.target)

    # functional forms ---------------------------------------------------------------
    def param(self, node: fx.Node, arg: Any, name: str, fill: float) -> bool:
        """Whether a norm's weight / bias argument is given; refused unless at its init."""
        if arg is None:
            return False
        if not isinstance(arg, fx.Node) or arg.op != "get_attr":
            raise self.refuse(
                node,
                f"made of normalisations whose {name} is a parameter of the model or None",
                getattr(arg, "name", arg),
                "Pass a module's parameter (self.weight) directly",
            )
        tensor = functools.reduce(getattr, arg.target.split("."), self.model)
        if not torch.all(tensor == fill):
            raise self.refuse(
                node,
                f"made of normalisations whose {name} is {fill:g} at initialisation "
                "(the kernel is the model's at init)",
                f"{arg.target} = {tensor.flatten()[:3].tolist()}...",
                f"Lift the model before training, with the {name} at {fill:g}",
            )
        return True

    def functional_norm(self, node: fx.Node, value: _Value) -> _Value:
        """``F.layer_norm(x, shape, weight, bias, eps)`` / ``F.group_norm(x, groups, ...)``."""
        fn = node.target
        weight = self.param(node, _arg(node, 2, "weight"), "weight", 1.0)
        bias = self.param(node, _arg(node, 3, "bias"), "bias", 0.0)
        eps = float(_arg(node, 4, "eps", 1e-5))
        if fn in (F.layer_norm, torch.layer_norm):
            shape = _arg(node, 1, "normalized_shape")
            shape = (shape,) if isinstance(shape, int) else shape
            if not isinstance(shape, tuple | list) or not all(isinstance(n, int) for n in shape):
                raise self.refuse(
                    node,
                    "made of layer_norm calls with a literal normalized_shape",
                    shape,
                    "Write the shape as integers (F.layer_norm(x, (C,)))",
                )
            if weight != bias and not weight:
                raise self.refuse(
                    node,
                    "made of layer_norm calls with a weight where a bias is",
                    "a bias without a weight",
                    "Pass both or the weight alone",
                )
            module = nn.LayerNorm(tuple(shape), eps, elementwise_affine=weight, bias=bias)
            return self.layer_norm(node, value, module)
        groups = _arg(node, 1, "num_groups")
        if weight != bias:
            raise self.refuse(
                node,
                "made of group_norm calls with both weight and bias or neither",
                "one of them",
                "Pass both (nn.GroupNorm's affine pair) or neither",
            )
        if not _spatial(value) and not value.channels_last:
            if groups == 1 and value.features is not None:  # (N, C): LayerNorm of the features
                module = nn.LayerNorm(value.features, eps, elementwise_affine=weight, bias=bias)
                return self.layer_norm(node, value, module)
            raise self.refuse(
                node,
                "made of group_norm calls of one group",
                f"{groups} groups",
                "Use F.group_norm(x, 1, ...) (LayerNorm over channels and pixels)",
            )
        if groups != 1:
            raise self.refuse(
                node,
                "made of group_norm calls of one group",
                f"{groups} groups",
                "Use F.group_norm(x, 1, ...) (LayerNorm over channels and pixels)",
            )
        module = nn.GroupNorm(1, _channels(value) or 1, eps, affine=weight)
        return self.image_norm(node, value, module)

    def pool(self, node: fx.Node, value: _Value) -> _Value:
        """``F.adaptive_avg_pool*d(x, 1)`` (global) and ``F.avg_pool*d`` (windows)."""
        fn = node.target
        if not _spatial(value) or value.channels_last:
            raise self.refuse(
                node,
                "made of poolings of channels-first images (after a convolution)",
                "a feature vector" if not _spatial(value) else "a channels-last image",
                "Pool the output of a Conv layer (N, C, H, W)",
            )
        if fn in _ADAPTIVE:
            size = _arg(node, 1, "output_size")
            sizes = tuple(size) if isinstance(size, tuple | list) else (size,)
            if all(s == 1 for s in sizes):
                return self.append(node, value, _conv_kind("GlobalAvgPool")(), None)
            raise self.refuse(
                node,
                "made of adaptive poolings to size 1 (global average pooling)",
                f"output_size {size}",
                "The input's size is unknown when tracing: write the window, "
                "F.avg_pool2d(x, H // s), for an output of size s",
            )
        window = _arg(node, 1, "kernel_size")
        stride = _arg(node, 2, "stride") or None
        padding = _arg(node, 3, "padding", 0)
        ceil = _arg(node, 4, "ceil_mode", False)
        count_pad = _arg(node, 5, "count_include_pad", True)
        divisor = _arg(node, 6, "divisor_override")
        if ceil or not count_pad or divisor:
            raise self.refuse(
                node,
                "made of average poolings with count_include_pad=True, ceil_mode=False",
                f"ceil_mode={ceil}, count_include_pad={count_pad}, divisor_override={divisor}",
                "Use the defaults",
            )
        dim = _image_dim(value)

        def tup(v):
            return tuple(v) if isinstance(v, tuple | list) else (v,) * dim

        try:
            layer = _conv_kind("AvgPool")(
                tup(window), stride=tup(stride) if stride else None, padding=tup(padding)
            )
        except (TypeError, ValueError) as err:
            raise self.refuse(
                node,
                "made of average poolings with integer windows",
                window,
                str(err).splitlines()[0][:80],
            ) from None
        return self.append(node, value, layer, None)

    def flatten(self, node: fx.Node, value: _Value, start: Any, end: Any) -> _Value:
        """``torch.flatten(x, 1)`` / ``x.flatten(1)``: Flatten of an image, else a no-op."""
        if start not in (1, -1 if value.features else 1) or end not in (-1, None):
            raise self.refuse(
                node,
                "made of flattens of all axes but the batch",
                f"flatten(start_dim={start}, end_dim={end})",
                "Use torch.flatten(x, 1)",
            )
        if value.channels_last:
            raise self.refuse(
                node,
                "made of flattens of channels-first images",
                "a channels-last image",
                "Permute back before flattening",
            )
        if _spatial(value):
            return self.append(node, value, _conv_kind("Flatten")(), None)
        return value

    def mean(self, node: fx.Node, value: _Value, dims: Any) -> _Value:
        """``x.mean((2, 3))`` / ``torch.mean(x, (-2, -1))``: global average pooling."""
        dim = _image_dim(value)
        dims = (dims,) if isinstance(dims, int) else dims
        ok = _spatial(value) and not value.channels_last and isinstance(dims, tuple | list)
        if ok and {d % (dim + 2) for d in dims if isinstance(d, int)} == set(range(2, dim + 2)):
            return self.append(node, value, _conv_kind("GlobalAvgPool")(), None)
        raise self.refuse(
            node,
            "made of means over all pixels of a channels-first image (global pooling)",
            f"mean over {dims}" + ("" if _spatial(value) else " of a feature vector"),
            "Only x.mean((2, 3)) after a convolution is read",
        )

    def no_params(self, node: fx.Node, tensors: list, env: dict) -> None:
        """Refuse a parameter used outside a module (other than a norm's weight / bias)."""
        for t in tensors:
            if isinstance(env[t], _Param):
                raise self.refuse(
                    node,
                    "made of modules (no parameters used directly in forward)",
                    t.target,
                    "Wrap the computation in a module",
                )

    def call_function(self, node: fx.Node, env: dict) -> _Value:
        fn = node.target
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        if fn in _NORMS and tensors and not isinstance(env[tensors[0]], _Param):
            return self.functional_norm(node, env[tensors[0]])
        self.no_params(node, tensors, env)
        if fn is torch.permute and len(tensors) == 1:
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dims", ())
            return self.permute(node, env[tensors[0]], tuple(dims))
        if fn in _ADAPTIVE + _AVG_POOL and len(tensors) == 1:
            return self.pool(node, env[tensors[0]])
        if fn is torch.flatten and len(tensors) == 1:
            start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
            return self.flatten(node, env[tensors[0]], start, end)
        if fn is torch.mean and len(tensors) == 1:
            return self.mean(node, env[tensors[0]], _arg(node, 1, "dim"))
        numbers = [a for a in node.args if isinstance(a, int | float) and not isinstance(a, bool)]
        if fn in _ADD + _SUB and len(tensors) == 2 and not node.kwargs:
            sign = -1.0 if fn in _SUB else 1.0
            return self.add(node, env[tensors[0]], env[tensors[1]], sign)
        if fn in _MUL + _DIV and len(tensors) == 1 and len(numbers) == 1:
            if fn in _DIV and node.args[0] is not tensors[0]:
                raise self.refuse(node, "free of divisions by a tensor", fn, "Divide by a number")
            c = float(numbers[0])
            c = 1.0 / c if fn in _DIV else c
            value = env[tensors[0]]
            return replace(value, scale=value.scale * c)
        if len(tensors) == 1 and fn in _IDENTITY_FUNCTIONS:
            return env[tensors[0]]
        name = _ACT_FUNCTIONS.get(fn)
        kwargs = dict(node.kwargs)
        if fn is F.gelu:
            name = "gelu"
            kwargs = {"approximate": kwargs.get("approximate", "none")}
        elif fn is F.leaky_relu:
            slope = node.args[1] if len(node.args) > 1 else kwargs.get("negative_slope", 0.01)
            name, kwargs = "leaky_relu", {"slope": float(slope)}
        elif name is not None:
            kwargs = {}
        if name is not None and len(tensors) == 1:
            act = lookup_activation(name, **kwargs)
            value = env[tensors[0]]
            return self.append(node, value, Nonlinearity(act), value.features)
        raise self.refuse(
            node,
            "made of operations with a layer kind",
            getattr(fn, "__name__", repr(fn)),
            "Supported functions: +, -, * or / by a number, the activations (relu, tanh, "
            "gelu, ...), dropout, flatten, mean over pixels, avg_pool, adaptive_avg_pool "
            "to 1, layer_norm, group_norm of one group",
        )

    def call_method(self, node: fx.Node, env: dict) -> _Value:
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        self.no_params(node, tensors, env)
        if node.target in _ACT_METHODS and len(tensors) == 1:
            value = env[tensors[0]]
            act = Nonlinearity(_ACT_METHODS[node.target])
            return self.append(node, value, act, value.features)
        if node.target == "flatten" and len(tensors) == 1:
            start, end = _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1)
            return self.flatten(node, env[tensors[0]], start, end)
        if node.target == "mean" and len(tensors) == 1:
            return self.mean(node, env[tensors[0]], _arg(node, 1, "dim"))
        if node.target == "permute" and len(tensors) == 1:
            dims = node.args[1:]
            if len(dims) == 1 and isinstance(dims[0], tuple | list):
                dims = tuple(dims[0])
            return self.permute(node, env[tensors[0]], tuple(dims))
        if node.target in ("add", "sub") and len(tensors) == 2:
            sign = -1.0 if node.target == "sub" else 1.0
            return self.add(node, env[tensors[0]], env[tensors[1]], sign)
        raise self.refuse(
            node,
            "made of operations with a layer kind",
            f"tensor.{node.target}()",
            "Supported methods: the activations (relu, tanh, ...), flatten, mean over "
            "pixels, permute, add, sub",
        )

    def add(self, node: fx.Node, a: _Value, b: _Value, sign: float) -> _Value:
        if a.features != b.features or a.channels_last != b.channels_last:
            raise self.refuse(
                node,
                "made of sums of arms with equal features",
                f"{a.features} + {b.features}",
                "Both arms of a residual sum must return the same width",
            )
        n = 0
        while (
            n < min(len(a.items), len(b.items))
            and a.items[n][0] is b.items[n][0]
            and a.items[n][1] is b.items[n][1]
        ):
            n += 1
        arm_a, arm_b = a.items[n:], b.items[n:]
        shared = {m for _, _, m in arm_a if m} & {m for _, _, m in arm_b if m}
        if shared:
            raise self.refuse(
                node,
                "made of sums of independent arms",
                f"module {sorted(shared)[0]!r} in both arms",
                "One layer reached by both arms (a shared layer) makes them correlated",
            )
        layers_a = tuple(layer for _, layer, _ in arm_a)
        layers_b = tuple(layer for _, layer, _ in arm_b)
        from .residual import ends_with_fresh_weights

        if not ends_with_fresh_weights(layers_b) and ends_with_fresh_weights(layers_a):
            (layers_a, gamma), (layers_b, alpha) = (layers_b, sign * b.scale), (layers_a, a.scale)
            arm_b = arm_a
        else:
            gamma, alpha = a.scale, sign * b.scale
        try:
            block = Residual(layers_b, alpha=alpha, gamma=gamma, skip=layers_a)
        except ValueError as err:
            got = " + ".join(
                "(" + ", ".join(type(x).__name__ for x in arm) + ")" if arm else "h"
                for arm in (layers_a, layers_b)
            )
            raise self.refuse(
                node,
                "made of sums whose branch is independent of the skip (a branch ending "
                "in a fresh Linear layer)",
                got,
                "The sum of correlated arms is not the sum of their kernels",
            ) from err
        weighted = [m for _, layer, m in arm_b if m and type(layer).reads_input]
        if weighted:
            self.readouts[node] = weighted[-1]
        return _Value((*a.items[:n], (node, block, "")), a.features, 1.0, a.channels_last)


def lift(model: nn.Module, c_w, c_b, parametrization, *, readouts: bool = False):
    """The spec of ``model`` (see :func:`dltheory.spec.spec_from_module`).

    With ``readouts``, also the name of each top-level Residual's branch readout (the
    module of its last weight layer; None where it has none), in the spec's order.
    """
    from .._checks import check_choice
    from ..finite.modules import FiniteDense
    from .layers import PARAMETRIZATIONS

    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    if _Tracer().is_leaf_module(model, ""):  # a bare Linear / activation: trace it as a call
        model = nn.Sequential(model)
    try:
        graph = _Tracer().trace(model)
    except Exception as err:
        raise ValueError(
            message(
                "model",
                "a module whose forward torch.fx can trace",
                type(model).__name__,
                f"Tracing failed ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
                "data-dependent control flow cannot be traced",
            )
        ) from err
    lifter = _Lifter(model, c_w, c_b, parametrization)
    n_linear = sum(
        1
        for node in graph.nodes
        if node.op == "call_module"
        and isinstance(lifter.modules[node.target], nn.Linear | FiniteDense)
    )
    for name, given in (("c_w", c_w), ("c_b", c_b)):
        if isinstance(given, Sequence) and not isinstance(given, str) and len(given) != n_linear:
            raise ValueError(
                message(name, f"a number or {n_linear} numbers (one per Linear)", given)
            )
    env: dict[fx.Node, _Value] = {}
    out: _Value | None = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if env:
                raise lifter.refuse(node, "a model of one input", node.name, "Pass one tensor")
            env[node] = _Value((), None)
        elif node.op == "call_module":
            arg = node.args[0] if node.args else None
            if len(node.args) != 1 or not isinstance(arg, fx.Node) or node.kwargs:
                raise lifter.refuse(node, "made of modules of one tensor", node.args, "")
            lifter.no_params(node, [arg], env)
            env[node] = lifter.call_module(node, env[arg])
        elif node.op == "call_function":
            env[node] = lifter.call_function(node, env)
        elif node.op == "call_method":
            env[node] = lifter.call_method(node, env)
        elif node.op == "output":
            if not isinstance(node.args[0], fx.Node):
                raise lifter.refuse(node, "a model of one tensor output", node.args[0], "")
            lifter.no_params(node, [node.args[0]], env)
            out = lifter.settle(node, env[node.args[0]])
            if out.channels_last:
                raise lifter.refuse(
                    node, "a model whose output is channels-first", "a channels-last image",
                    "Permute back before the output",
                )  # fmt: skip
        else:  # get_attr: a parameter read in forward, refused unless a norm's affine pair
            env[node] = _Param()
    if out is None or not any(isinstance(layer, Dense) for _, layer, _ in out.items):
        raise ValueError(message("model", "a model with at least one Linear layer", model))
    spec = Serial(*(layer for _, layer, _ in out.items), in_dim=lifter.in_dim)
    if readouts:
        names = [lifter.readouts.get(node) for node, layer, _ in out.items]
        return spec, [
            n for n, layer in zip(names, spec.layers, strict=True) if type(layer) is Residual
        ]
    return spec
