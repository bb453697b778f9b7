"""The ``Activation`` type: a torch function beside its Gaussian expectations.

An activation declares, in one place, what the finite network computes
(``fn`` and its derivatives) and what the infinite-width kernels need:

* 2-D maps over broadcast covariances (k11, k12, k22):
  ``nngp_map = E[s(u) s(v)]`` and ``ntk_map = E[s'(u) s'(v)]``;
* 1-D maps at variance K (criticality): ``second_moment = E[s(z)^2]``,
  ``derivative_second_moment = E[s'(z)^2]`` and
  ``square_second_derivative = E[(s^2)''(z)]``.

Closed forms are used where declared; everything else falls back to the
Hermite (Mehler) quadrature of :mod:`dltheory.activations.quadrature`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .._checks import (
    as_float_tensor,
    check_choice,
    check_int,
    check_positive,
    check_real,
    message,
)
from . import quadrature

Fn = Callable[[torch.Tensor], torch.Tensor]
Map2 = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Map1 = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["Activation"]


def _autograd_derivative(fn: Fn) -> Fn:
    """x -> fn'(x) by autograd, differentiable again: derivatives of derivatives work.

    When ``x`` itself requires grad the result keeps its graph (``create_graph``),
    so that ``d2 = _autograd_derivative(d1)`` differentiates through ``d1``; a
    function that does not depend on its input (a constant, a step) has derivative 0.
    """

    def derivative(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            leaf = x if x.requires_grad else x.detach().requires_grad_(True)
            out = fn(leaf)
            if not out.requires_grad:  # piecewise constant or constant: s' = 0
                return torch.zeros_like(x)
            (grad,) = torch.autograd.grad(out.sum(), leaf, create_graph=True, allow_unused=True)
        if grad is None:
            return torch.zeros_like(x)
        return grad if x.requires_grad else grad.detach()

    return derivative


def _kernels(**values: Any) -> tuple[torch.Tensor, ...]:
    """Kernel entries for the Gaussian maps: real tensors pass unchanged (the hot path of the
    kernel recursion); other array-likes are checked (finite, real) and become float64."""
    out = []
    for name, value in values.items():
        if not isinstance(value, torch.Tensor):
            value = as_float_tensor(name, value, dtype=torch.float64, detach=True)
        elif value.is_complex() or value.dtype == torch.bool:
            raise TypeError(message(name, "a real tensor", f"dtype {value.dtype}"))
        elif not value.is_floating_point():
            value = value.to(torch.float64)
        out.append(value)
    return tuple(out)


# The Gaussian maps take tensors unchecked: they are the inner loop of the kernel recursion,
# whose public entry points (kernel(), spec, criticality) validate their inputs once.
__fuzz_exempt__ = {
    f"Activation.{m}:cases": {
        kind: "tensors pass unchecked (kernel-recursion hot path): NaN / inf in, NaN / inf out"
        for kind in ("nan", "inf", "x1e30", "x1e300")
    }
    for m in (
        "nngp_map",
        "ntk_map",
        "map_error",
        "second_moment",
        "derivative_second_moment",
        "square_second_derivative",
    )
}


@dataclass(frozen=True, eq=False)
class Activation:
    """A nonlinearity with its Gaussian expectations.

    Attributes:
        name: registry name, e.g. ``"relu"``.
        fn: the elementwise torch function sigma.
        d1: sigma' (explicit, or autograd of ``fn``).
        d2: sigma'' (explicit, or autograd of ``d1``).
        nngp_closed: closed form of E[s(u)s(v)] from (k11, k12, k22), if known.
        ntk_closed: closed form of E[s'(u)s'(v)], if known.
        second_derivative_closed: closed form of E[(s^2)''] at variance K, if known.
        pair_code, pair_param: which scalar twin of the closed forms
            (``closed_form.closed_pair``) the fused CPU backend uses; 0: none,
            the Mehler series instead.
        kinks: points where sigma is not smooth (quadrature panels break there).
        params: parameters of a family member (e.g. ``{"slope": 0.1}``).
        tol: absolute tolerance of the quadrature fallback.

    Example:
        >>> import torch
        >>> from dltheory import activation
        >>> relu = activation("relu")
        >>> k = torch.tensor(2.0, dtype=torch.float64)
        >>> float(relu.nngp_map(k, k, k))  # E[relu(u)^2] = K / 2
        1.0
    """

    name: str
    fn: Fn
    d1: Fn | None = None
    d2: Fn | None = None
    nngp_closed: Map2 | None = None
    ntk_closed: Map2 | None = None
    second_derivative_closed: Map1 | None = None
    pair_code: int = 0
    pair_param: float = 0.0
    kinks: tuple[float, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    tol: float = quadrature.DEFAULT_TOL

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(message("name", "a non-empty string", self.name))
        if not callable(self.fn):
            raise TypeError(message("fn", "a callable on torch tensors", self.fn))
        if self.d1 is None:
            object.__setattr__(self, "d1", _autograd_derivative(self.fn))
        if self.d2 is None:
            object.__setattr__(self, "d2", _autograd_derivative(self.d1))
        for name in ("d1", "d2", "nngp_closed", "ntk_closed", "second_derivative_closed"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(message(name, "a callable or None", value))
        object.__setattr__(self, "pair_code", check_int("pair_code", self.pair_code, minimum=0))
        object.__setattr__(self, "pair_param", check_real("pair_param", self.pair_param))
        object.__setattr__(self, "tol", check_positive("tol", self.tol))
        if isinstance(self.kinks, str) or not isinstance(self.kinks, Sequence):
            raise TypeError(message("kinks", "a sequence of real numbers", self.kinks))
        object.__setattr__(self, "kinks", tuple(check_real("kinks", c) for c in self.kinks))
        if not isinstance(self.params, dict):
            raise TypeError(message("params", "a dict of parameters", self.params))

    @classmethod
    def from_callable(
        cls,
        fn: Fn,
        name: str | None = None,
        *,
        d1: Fn | None = None,
        d2: Fn | None = None,
        kinks: Sequence[float] = (),
    ) -> Activation:
        """Wrap any elementwise torch function; Gaussian maps come from quadrature.

        Derivatives default to autograd of ``fn``. Declare non-smooth points in
        ``kinks`` (e.g. ``(0.0, 6.0)`` for ReLU6) to keep quadrature accurate.
        """
        if not callable(fn):
            raise TypeError(message("fn", "a callable on torch tensors", fn))
        probe = torch.linspace(-2, 2, 5, dtype=torch.float64)
        try:
            out = fn(probe)
        except Exception as err:
            raise TypeError(message("fn", "an elementwise function of a torch tensor", fn)) from err
        if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
            raise TypeError(message("fn", "elementwise (same shape out as in)", fn))
        if name is not None and not isinstance(name, str):
            raise TypeError(message("name", "a string or None", name))
        label = name or getattr(fn, "__name__", "custom")
        return cls(name=label, fn=fn, d1=d1, d2=d2, kinks=tuple(kinks))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Activation({self.name!r}{extra})"

    @functools.cached_property
    def jumps(self) -> tuple[float, ...]:
        """Points (0 and the declared kinks) where sigma is discontinuous.

        There the distributional derivative has a delta: E[s'(z)^2] is infinite
        and the correlation map has an infinite slope at rho = 1 (step, sign).
        Detected by comparing sigma just left and right of each point.
        """
        points = sorted({0.0, *self.kinks})
        at = torch.tensor(points, dtype=torch.float64)
        delta = 1e-9 * at.abs().clamp_min(1.0)
        with torch.no_grad():
            left, right = self.fn(at - delta), self.fn(at + delta)
        size = torch.maximum(left.abs(), right.abs()).clamp_min(1.0)
        gap = (right - left).abs() > 1e-6 * size
        return tuple(p for p, g in zip(points, gap.tolist(), strict=True) if g)

    @property
    def has_closed_form(self) -> bool:
        """Whether both 2-D maps are closed forms (no quadrature)."""
        return self.nngp_closed is not None and self.ntk_closed is not None

    # 2-D maps -----------------------------------------------------------------
    def nngp_map(self, k11: torch.Tensor, k12: torch.Tensor, k22: torch.Tensor) -> torch.Tensor:
        """E[s(u) s(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), broadcast.

        Tensors are used as they are (this is the kernel recursion's inner loop: a NaN in
        gives a NaN out); other array-likes are checked and converted to float64.
        """
        k11, k12, k22 = _kernels(k11=k11, k12=k12, k22=k22)
        if self.nngp_closed is not None:
            return self.nngp_closed(k11, k12, k22)
        return quadrature.mehler_expectation(
            self.fn, self.fn, k11, k12, k22, kinks=self.kinks, tol=self.tol
        )

    def ntk_map(self, k11: torch.Tensor, k12: torch.Tensor, k22: torch.Tensor) -> torch.Tensor:
        """E[s'(u) s'(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), broadcast (inputs as in
        :meth:`nngp_map`)."""
        k11, k12, k22 = _kernels(k11=k11, k12=k12, k22=k22)
        if self.ntk_closed is not None:
            return self.ntk_closed(k11, k12, k22)
        return quadrature.mehler_expectation(
            self.d1, self.d1, k11, k12, k22, kinks=self.kinks, tol=self.tol
        )

    def map_error(
        self,
        k11: torch.Tensor,
        k12: torch.Tensor,
        k22: torch.Tensor,
        kind: Literal["nngp", "ntk"] = "nngp",
    ) -> torch.Tensor:
        """Error estimate of ``nngp_map`` / ``ntk_map`` per pair (0 for closed forms).

        Quadrature activations: the certified Mehler truncation bound, or the
        change of the nested rule under panel refinement (see
        :func:`quadrature.mehler_expectation`); lower it with ``tol``.
        """
        check_choice("kind", kind, ("nngp", "ntk"))
        k11, k12, k22 = _kernels(k11=k11, k12=k12, k22=k22)
        closed = self.nngp_closed if kind == "nngp" else self.ntk_closed
        if closed is not None:
            return torch.zeros_like(torch.broadcast_tensors(k11, k12, k22)[1], dtype=torch.float64)
        fn = self.fn if kind == "nngp" else self.d1
        _, error = quadrature.mehler_expectation(
            fn, fn, k11, k12, k22, kinks=self.kinks, tol=self.tol, return_error=True
        )
        return error

    # 1-D maps -----------------------------------------------------------------
    def second_moment(self, k: torch.Tensor) -> torch.Tensor:
        """E[s(z)^2], z ~ N(0, K)."""
        (k,) = _kernels(k=k)
        if self.nngp_closed is not None:
            return self.nngp_closed(k, k, k)
        return quadrature.expectation_1d(lambda z: self.fn(z) ** 2, k, self.kinks)

    def derivative_second_moment(self, k: torch.Tensor) -> torch.Tensor:
        """E[s'(z)^2], z ~ N(0, K)."""
        (k,) = _kernels(k=k)
        if self.ntk_closed is not None:
            return self.ntk_closed(k, k, k)
        return quadrature.expectation_1d(lambda z: self.d1(z) ** 2, k, self.kinks)

    def square_second_derivative(self, k: torch.Tensor) -> torch.Tensor:
        """E[(s^2)''(z)] = 2 E[s'(z)^2 + s(z) s''(z)], z ~ N(0, K).

        Equals 2 d/dK E[s(z)^2] (Gaussian integration by parts), the quantity in
        chi_parallel = (C_w / 2) E[(s^2)''] (Roberts, Yaida & Hanin 2022, Sec. 5.1).
        """
        (k,) = _kernels(k=k)
        if self.second_derivative_closed is not None:
            return self.second_derivative_closed(k)
        return quadrature.expectation_1d(
            lambda z: 2 * (self.d1(z) ** 2 + self.fn(z) * self.d2(z)), k, self.kinks
        )
