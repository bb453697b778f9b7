"""Architecture specs: frozen data that the kernel recursion and the module
builder interpret (``dltheory.kernels.recursion`` and ``dltheory.finite.modules``).

Conventions (docs/conventions.md): z^(1) = b^(1) + W^(1) x, z^(l+1) = b^(l+1) + W^(l+1) s(z^(l)),
W ~ N(0, C_w / n_{l-1}), b ~ N(0, C_b).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._checks import check_choice, check_int, check_nonnegative, message
from ..activations import Activation
from ..activations import activation as lookup_activation

if TYPE_CHECKING:
    import torch

    from ..kernels.state import KernelState

Parametrization = Literal["ntk", "standard", "mean_field", "mup"]
PARAMETRIZATIONS = ("ntk", "standard", "mean_field", "mup")

__all__ = ["PARAMETRIZATIONS", "Dense", "Layer", "Nonlinearity", "Parametrization", "Serial"]


class Layer:
    """Base of every layer kind of a spec: a frozen dataclass, data only.

    Each concrete kind is one row in each interpreter's table (the kernel recursion,
    the module builder, the criticality rules); ``dltheory.spec.LAYER_KINDS`` lists the
    kinds and a test checks every table covers every kind.

    Class attributes:
        reads_input: the kind may be a network's first layer (linear in the input:
            Dense, Conv), so kernels start from the input Gram matrix.
        chain_kind: the kind belongs to the plain MLP chain (Dense / Nonlinearity),
            which the fused kernel backend and the MLP-only analyses read.
    """

    reads_input: ClassVar[bool] = False
    chain_kind: ClassVar[bool] = False


@dataclass(frozen=True)
class Dense(Layer):
    """A fully connected layer z = b + W x, W ~ N(0, c_w / fan_in), b ~ N(0, c_b).

    Attributes:
        c_w: weight variance C_w (times fan-in).
        c_b: bias variance C_b.
        width: output features; ``None`` takes the network's sampling width.
        parametrization: ``"ntk"`` (W = sqrt(lr_w / fan_in) omega, trained in
            omega), ``"standard"`` (W trained directly), ``"mean_field"`` or ``"mup"``
            (Yang & Hu 2021; their per-layer scalings are the table of
            :mod:`dltheory.spec.parametrization`). The infinite-width NTK of
            :func:`dltheory.kernels.kernel` is the width -> infinity limit of the
            empirical NTK for "ntk" (and "standard" at a given width, where it grows
            with the fan-in); for "mean_field" / "mup" the NNGP and the NTK at
            initialisation tend to 0 (readout variance C_w / n^2) and training leaves
            the kernel regime, so ``kernel`` refuses them.
        lr_w, lr_b: per-layer learning-rate factors lambda_w, lambda_b. In NTK
            parametrisation they default to (C_w, C_b), which makes
            Theta^(l+1) = K^(l+1) + C_w E[s's'] Theta^(l); in standard
            parametrisation they default to 1 (a plain gradient), so the NTK
            grows with the width: lambda_w^eff = lr_w * fan_in. The "per-layer
            learning rates lambda_b = C_b, lambda_w = C_w / n_{l-1}" of some
            lecture notes are the standard lr factors that reproduce the NTK-parametrisation kernel.
    """

    c_w: float = 1.0
    c_b: float = 0.0
    width: int | None = None
    parametrization: Parametrization = "ntk"
    lr_w: float | None = None
    lr_b: float | None = None

    reads_input: ClassVar[bool] = True
    chain_kind: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "c_w", check_nonnegative("c_w", self.c_w))
        object.__setattr__(self, "c_b", check_nonnegative("c_b", self.c_b))
        if self.width is not None:
            object.__setattr__(self, "width", check_int("width", self.width, minimum=1))
        check_choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        for name in ("lr_w", "lr_b"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_nonnegative(name, value))

    def learning_rates(self, fan_in: int | None) -> tuple[float, float]:
        """(lambda_w, lambda_b) as they enter Theta = lambda_b + lambda_w E[s s] + ..."""
        if self.parametrization in ("mean_field", "mup"):
            raise ValueError(
                message(
                    "parametrization",
                    "'ntk' or 'standard' for an infinite-width kernel",
                    self.parametrization,
                    "In mean-field / muP the output kernels at initialisation vanish as "
                    "width -> infinity and the features move (no fixed kernel limit); "
                    "sample finite networks instead",
                )
            )
        if self.parametrization == "ntk":
            lr_w = self.c_w if self.lr_w is None else self.lr_w
            lr_b = self.c_b if self.lr_b is None else self.lr_b
            return lr_w, lr_b
        if fan_in is None:
            raise ValueError(
                message(
                    "width",
                    "given for a standard-parametrisation NTK",
                    None,
                    "Its NTK grows with the fan-in: pass width= to MLP/Serial or use "
                    "parametrization='ntk'",
                )
            )
        lr_w = 1.0 if self.lr_w is None else self.lr_w
        lr_b = 1.0 if self.lr_b is None else self.lr_b
        return lr_w * fan_in, lr_b


def canonical_activation(activation: Activation | str | Callable, **params: Any) -> Activation:
    """The activation, as the registry's one instance for its (name, parameters) when it has one.

    Specs compare their activations by identity, so every spelling of one
    registered activation must give the same instance: ``"leaky_relu"`` and
    ``("leaky_relu", slope=0.01)`` (a default passed explicitly), an alias such
    as ``"linear"`` for ``"identity"``, or an instance built by the registry.
    The built activation records its full parameters (defaults included), so
    it is looked up again under its canonical name and parameters; instances
    that are not the registry's own (another function under a registered
    name) are kept as they are.

    >>> canonical_activation("leaky_relu") is canonical_activation("leaky_relu", slope=0.01)
    True
    """
    built = lookup_activation(activation, **params)
    try:
        canon = lookup_activation(built.name, **built.params)
    except (TypeError, ValueError):  # not a registered name: a custom activation
        return built
    code = getattr(canon.fn, "__code__", None)
    same_fn = canon.fn is built.fn or (
        code is not None and code is getattr(built.fn, "__code__", 0)
    )
    return canon if same_fn and canon.params == built.params else built


@dataclass(frozen=True)
class Nonlinearity(Layer):
    """An elementwise activation s, applied to the preactivations."""

    activation: Activation
    chain_kind: ClassVar[bool] = True

    def __init__(self, activation: Activation | str | Callable, **params: Any) -> None:
        object.__setattr__(self, "activation", canonical_activation(activation, **params))


@dataclass(frozen=True)
class Serial:
    """A composition of layers: the spec of a network.

    Attributes:
        layers: the layers in order (nested ``Serial`` are flattened).
        width: default width of ``Dense`` layers without one (sampling and the
            standard-parametrisation NTK need it).
        in_dim: input features n_0 (may also be given when sampling); for images,
            the input channels C.
        input_shape: (C, H, W) or (C, L) of image inputs, when the kernel and the
            sampled network read them as flattened rows (N, C H W) (kernel methods).
    """

    layers: tuple[Layer, ...]
    width: int | None = None
    in_dim: int | None = None
    _name: str = field(default="", compare=False, repr=False)
    input_shape: tuple[int, ...] | None = None

    def __init__(
        self,
        *layers: Layer | Serial,
        width: int | None = None,
        in_dim: int | None = None,
        name: str = "",
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        flat: list[Layer] = []
        for layer in layers:
            if isinstance(layer, Serial):
                flat.extend(layer.layers)
            elif isinstance(layer, Layer):
                flat.append(layer)
            else:
                raise TypeError(
                    message("layers", "spec layers (Dense, Nonlinearity, ...) or Serial", layer)
                )
        if not flat:
            raise ValueError(message("layers", "at least one layer", layers))
        object.__setattr__(self, "layers", tuple(flat))
        if width is not None:
            width = check_int("width", width, minimum=1)
        if in_dim is not None:
            in_dim = check_int("in_dim", in_dim, minimum=1)
        object.__setattr__(self, "width", width)
        object.__setattr__(self, "in_dim", in_dim)
        object.__setattr__(self, "_name", name)
        if input_shape is not None:
            input_shape = tuple(check_int("input_shape", v, minimum=1) for v in input_shape)
            if not 2 <= len(input_shape) <= 3:
                raise ValueError(message("input_shape", "(C, L) or (C, H, W)", input_shape))
            if in_dim is None:
                object.__setattr__(self, "in_dim", input_shape[0])
        object.__setattr__(self, "input_shape", input_shape)

    def check_network(self, name: str = "spec") -> Serial:
        """Raise unless this is a whole network: Dense first and last, one activation at a time.

        The one rule that every interpreter (kernels, ``build_module``,
        ``ensemble``) applies, so a spec that one of them accepts every other
        accepts too: kernels start from the input Gram matrix (a Dense layer),
        end with a readout, and compose one activation per Dense layer.

        >>> Serial(Nonlinearity("relu"), Dense()).check_network()
        Traceback (most recent call last):
        ...
        ValueError: spec must be a network whose first layer is Dense. Got ...
        """
        if not type(self.layers[0]).reads_input:
            raise ValueError(
                message(
                    name,
                    "a network whose first layer is Dense",
                    self.layers[0],
                    "Kernels start from the input Gram matrix",
                )
            )
        if not isinstance(self.layers[-1], Dense):
            raise ValueError(
                message(name, "a network whose last layer is Dense (the readout)", self.layers[-1])
            )
        for prev, layer in zip(self.layers, self.layers[1:], strict=False):
            if isinstance(prev, Nonlinearity) and isinstance(layer, Nonlinearity):
                raise ValueError(
                    message(
                        name,
                        "free of two nonlinearities in a row",
                        self,
                        "Compose them into one activation",
                    )
                )
        return self

    @property
    def is_chain(self) -> bool:
        """Whether every layer is Dense or Nonlinearity (a plain MLP chain)."""
        return all(type(layer).chain_kind for layer in self.layers)

    def check_chain(self, name: str = "spec") -> Serial:
        """Raise unless this is a plain MLP chain (for the interpreters that only read MLPs)."""
        for layer in self.layers:
            if not type(layer).chain_kind:
                raise ValueError(
                    message(
                        name,
                        "an MLP spec (Dense and Nonlinearity layers) here",
                        type(layer).__name__,
                        "This analysis is defined for MLPs only",
                    )
                )
        return self

    @property
    def depth(self) -> int:
        """Number of nonlinearities (hidden layers)."""
        return sum(isinstance(layer, Nonlinearity) for layer in self.layers)

    @property
    def out_dim(self) -> int | None:
        """Output features of the last ``Dense`` (``None``: the sampling width)."""
        for layer in reversed(self.layers):
            if isinstance(layer, Dense):
                return layer.width if layer.width is not None else self.width
        return self.width

    def kernel(
        self,
        x1: Any,
        x2: Any = None,
        *,
        return_layers: bool = False,
        memory_budget: int | None = None,
        block_size: int | None = None,
        backend: str = "auto",
        input_shape: tuple[int, ...] | None = None,
        progress: bool = False,
    ) -> KernelState:
        """Infinite-width NNGP and NTK of the output; see :func:`dltheory.kernels.kernel`."""
        from ..kernels.blocked import kernel

        return kernel(
            self,
            x1,
            x2,
            return_layers=return_layers,
            memory_budget=memory_budget,
            block_size=block_size,
            backend=backend,
            input_shape=input_shape,
            progress=progress,
        )

    def sample(
        self,
        width: int | None = None,
        *,
        in_dim: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> torch.nn.Module:
        """A finite network of this spec; see :func:`dltheory.finite.build_module`."""
        from ..finite.modules import build_module

        return build_module(
            self,
            width=width,
            in_dim=in_dim,
            seed=seed,
            generator=generator,
            dtype=dtype,
            device=device,
            input_shape=input_shape,
        )
