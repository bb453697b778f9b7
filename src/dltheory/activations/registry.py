"""The activation registry: ``activation("relu")``, ``activation("leaky_relu", slope=0.2)``."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from .._checks import message
from . import closed_form, smooth
from .base import Activation

__all__ = ["REGISTRY", "activation", "names"]

REGISTRY: dict[str, Callable[..., Activation]] = {
    "identity": closed_form.identity,
    "linear": closed_form.identity,
    "relu": closed_form.relu,
    "leaky_relu": closed_form.leaky_relu,
    "abs": closed_form.abs_,
    "step": closed_form.step,
    "sign": closed_form.sign,
    "erf": closed_form.erf,
    "sin": closed_form.sin,
    "cos": closed_form.cos,
    "tanh": smooth.tanh,
    "sigmoid": smooth.sigmoid,
    "softplus": smooth.softplus,
    "gelu": smooth.gelu,
    "silu": smooth.silu,
    "swish": smooth.silu,
    "elu": smooth.elu,
    "mish": smooth.mish,
}


def names() -> list[str]:
    """Registered activation names."""
    return sorted(REGISTRY)


def activation(name: str | Activation | Callable, **params: Any) -> Activation:
    """Look up an activation by name (or wrap an ``Activation`` / callable).

    Args:
        name: a registered name (see :func:`names`), an ``Activation`` (returned
            as is) or an elementwise torch callable (wrapped, quadrature maps).
        **params: family parameters, e.g. ``slope`` for ``leaky_relu``.

    Raises:
        ValueError: unknown name (the message lists the close names).

    >>> activation("relu").name
    'relu'
    """
    if isinstance(name, Activation):
        if params:
            raise ValueError(message("params", "empty for an Activation instance", params))
        return name
    if not isinstance(name, str):
        if callable(name):
            return Activation.from_callable(name, **params)
        raise TypeError(message("activation", "a name or an Activation", name))
    key = name.strip().lower().replace("-", "_")
    if key not in REGISTRY:
        close = difflib.get_close_matches(key, REGISTRY, n=3, cutoff=0.5)
        hint = f"Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(message("activation", f"one of {', '.join(names())}", name, hint))
    try:  # defaults made explicit: activation("elu") is activation("elu", alpha=1.0)
        bound = inspect.signature(REGISTRY[key]).bind(**params)
        bound.apply_defaults()
        params = dict(bound.arguments)
    except TypeError as err:
        raise TypeError(message("params", f"valid parameters of {key!r}", params)) from err
    try:
        frozen = tuple(sorted(params.items()))
        hash(frozen)
    except TypeError:
        frozen = None
    if frozen is None:
        return _build(key, params)
    return _cached(key, frozen)


def _build(key: str, params: dict[str, Any]) -> Activation:
    try:
        return REGISTRY[key](**params)
    except TypeError as err:
        if "unexpected keyword" not in str(err) and "positional" not in str(err):
            raise
        raise TypeError(message("params", f"valid parameters of {key!r}", params)) from err


@lru_cache(maxsize=256)
def _cached(key: str, frozen: tuple) -> Activation:
    """One instance per (name, parameters): equal specs compare equal."""
    return _build(key, dict(frozen))
