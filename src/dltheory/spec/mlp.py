"""``MLP``: the course's fully connected network as a spec."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._checks import check_int, message
from ..activations import Activation
from .layers import Dense, Nonlinearity, Parametrization, Serial, canonical_activation

__all__ = ["MLP"]


def _per_layer(name: str, value: float | Sequence[float], n_layers: int) -> list[float]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
        if len(values) != n_layers:
            raise ValueError(
                message(
                    name,
                    f"a number or a sequence of {n_layers} numbers (one per Dense layer, "
                    "the readout included)",
                    value,
                )
            )
        return values
    return [value] * n_layers  # type: ignore[list-item]


def MLP(
    depth: int,
    activation: str | Activation | Callable = "relu",
    c_w: float | Sequence[float] = 1.0,
    c_b: float | Sequence[float] = 0.0,
    width: int | None = None,
    out_dim: int = 1,
    parametrization: Parametrization = "ntk",
    *,
    in_dim: int | None = None,
    **activation_params: Any,
) -> Serial:
    """A depth-L MLP: ``Serial(*[Dense, Nonlinearity] * depth, Dense(width=out_dim))``.

    ``depth`` counts hidden layers (nonlinearities); kernels are those of the
    output z^(depth+1), as neural-tangents' ``serial(*[Dense, act] * L, Dense)``.
    ``c_w`` and ``c_b`` are one number or one per Dense layer (depth + 1 values).

    >>> spec = MLP(depth=3, activation="relu", c_w=2.0)
    >>> spec.depth, spec.out_dim
    (3, 1)
    """
    depth = check_int("depth", depth, minimum=1)
    out_dim = check_int("out_dim", out_dim, minimum=1)
    act = canonical_activation(activation, **activation_params)
    c_ws = _per_layer("c_w", c_w, depth + 1)
    c_bs = _per_layer("c_b", c_b, depth + 1)
    layers: list[Dense | Nonlinearity] = []
    for l in range(depth):
        layers += [Dense(c_ws[l], c_bs[l], parametrization=parametrization), Nonlinearity(act)]
    layers.append(Dense(c_ws[depth], c_bs[depth], width=out_dim, parametrization=parametrization))
    return Serial(*layers, width=width, in_dim=in_dim, name=f"MLP(depth={depth}, {act.name})")
