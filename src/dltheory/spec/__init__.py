"""Network specs: data that the kernel recursion and the module builder interpret."""

from .attention import SelfAttention
from .conv import AvgPool, Conv, Flatten, GlobalAvgPool, conv_layer_from_module
from .from_module import is_pass_through, module_activation, spec_from_module
from .layers import PARAMETRIZATIONS, Dense, Layer, Nonlinearity, Parametrization, Serial
from .mlp import MLP
from .normalization import LayerNorm
from .residual import Residual

# Every layer kind; each interpreter's table covers exactly these (tests/spec).
LAYER_KINDS: tuple[type[Layer], ...] = (Dense, Nonlinearity)
LAYER_KINDS += (Conv, AvgPool, GlobalAvgPool, Flatten)  # spec/conv.py
LAYER_KINDS += (Residual, LayerNorm)
LAYER_KINDS += (SelfAttention,)  # spec/attention.py

__all__ = [
    "LAYER_KINDS",
    "MLP",
    "PARAMETRIZATIONS",
    "AvgPool",
    "Conv",
    "Dense",
    "Flatten",
    "GlobalAvgPool",
    "Layer",
    "LayerNorm",
    "Nonlinearity",
    "Parametrization",
    "Residual",
    "SelfAttention",
    "Serial",
    "conv_layer_from_module",
    "is_pass_through",
    "module_activation",
    "spec_from_module",
]
