"""``MLP``: the course's fully connected network as a spec."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._checks import check_bytes, check_int, message
from ..activations import Activation
from .layers import Dense, Nonlinearity, Parametrization, Serial, canonical_activation

__all__ = ["MLP", "DefaultVariances", "default_variances"]


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


class DefaultVariances(NamedTuple):
    """The (C_w, C_b) an MLP uses when they are not given, and where they come from.

    Attributes:
        c_w: weight variance C_w.
        c_b: bias variance C_b.
        source: ``"given"``, ``"critical point"``, ``"given / critical point"`` (one of
            the two given) or ``"no critical point: C_w = 1, C_b = 0"``.
    """

    c_w: float | Sequence[float]
    c_b: float | Sequence[float]
    source: str


@functools.lru_cache(maxsize=64)
def _critical(act: Activation) -> tuple[float | None, float | None]:
    # criticality is a topic package above spec: imported here, at call time, and the
    # root finding (seconds for gelu and mish) done once per activation.
    from ..criticality.critical_point import critical_point

    point = critical_point(act)
    return point.c_w, point.c_b


def default_variances(
    activation: str | Activation | Callable,
    c_w: float | Sequence[float] | None = None,
    c_b: float | Sequence[float] | None = None,
    **activation_params: Any,
) -> DefaultVariances:
    """(C_w, C_b) with every omitted value taken from the activation's critical point.

    The one rule that ``MLP`` and the ``dltheory`` command line share: C_w and C_b
    default to the critical initialisation of :func:`dltheory.criticality.critical_point`
    (chi_parallel = chi_perp = 1, Roberts, Yaida & Hanin 2022, Ch. 5), e.g.
    C_w = 2, C_b = 0 for ReLU (He et al. 2015) and C_w = 1, C_b = 0 for tanh. An
    activation with no critical point (sigmoid, softplus, step, sign, cos) falls back to
    C_w = 1, C_b = 0, and ``source`` says so.

    >>> default_variances("relu")
    DefaultVariances(c_w=2.0, c_b=0.0, source='critical point')
    >>> default_variances("tanh", c_w=1.5).c_w
    1.5
    """
    if c_w is not None and c_b is not None:
        return DefaultVariances(c_w, c_b, "given")
    act = canonical_activation(activation, **activation_params)
    try:
        try:
            crit_w, crit_b = _critical(act)
        except TypeError:  # an unhashable custom activation: nothing to cache
            crit_w, crit_b = _critical.__wrapped__(act)
    except (ValueError, ArithmeticError, RuntimeError):
        # a custom activation whose Gaussian maps the root finding cannot handle: the
        # network is still built, as before critical defaults, and ``source`` says so
        crit_w = crit_b = None
    if crit_w is None or crit_b is None:
        source = "no critical point: C_w = 1, C_b = 0"
        crit_w, crit_b = 1.0, 0.0
    else:
        source = "critical point" if c_w is None and c_b is None else "given / critical point"
    return DefaultVariances(crit_w if c_w is None else c_w, crit_b if c_b is None else c_b, source)


def MLP(
    depth: int,
    activation: str | Activation | Callable = "relu",
    c_w: float | Sequence[float] | None = None,
    c_b: float | Sequence[float] | None = None,
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
    ``c_w`` and ``c_b`` are one number or one per Dense layer (depth + 1 values); each
    one omitted is the activation's critical value (:func:`default_variances`: C_w = 2,
    C_b = 0 for ReLU, C_w = 1, C_b = 0 for tanh; C_w = 1, C_b = 0 for an activation
    without a critical point), as on the command line. The values are in the repr of
    every ``Dense`` layer. (The defaults used to be C_w = 1, C_b = 0 for every
    activation: pass ``c_w=1.0, c_b=0.0`` for that network.)

    >>> spec = MLP(depth=3, activation="relu")
    >>> spec.depth, spec.out_dim, spec.layers[0].c_w, spec.layers[0].c_b
    (3, 1, 2.0, 0.0)
    """
    depth = check_int("depth", depth, minimum=1)
    check_bytes("depth", 400.0 * depth, fix="Use a smaller depth")  # two layer records each
    out_dim = check_int("out_dim", out_dim, minimum=1)
    act = canonical_activation(activation, **activation_params)
    c_w, c_b, _ = default_variances(act, c_w, c_b)
    c_ws = _per_layer("c_w", c_w, depth + 1)
    c_bs = _per_layer("c_b", c_b, depth + 1)
    layers: list[Dense | Nonlinearity] = []
    for l in range(depth):
        layers += [Dense(c_ws[l], c_bs[l], parametrization=parametrization), Nonlinearity(act)]
    layers.append(Dense(c_ws[depth], c_bs[depth], width=out_dim, parametrization=parametrization))
    return Serial(*layers, width=width, in_dim=in_dim, name=f"MLP(depth={depth}, {act.name})")
