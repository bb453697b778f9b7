"""Invariants over every registered activation, and the registry's errors."""

from __future__ import annotations

import pytest
import torch

from dltheory import activation
from dltheory.activations import names

ALL = names()
F64 = torch.float64


def _points(act) -> torch.Tensor:
    x = torch.linspace(-3.1, 3.3, 41, dtype=F64)
    for c in act.kinks:  # derivatives are not defined at a kink
        x = x[(x - c).abs() > 1e-3]
    return x


@pytest.mark.parametrize("name", ALL)
def test_declared_derivatives_equal_autograd(name):
    act = activation(name)
    x = _points(act).requires_grad_(True)
    out = act.fn(x)
    # A piecewise-constant activation has no autograd graph: its derivative is 0.
    auto1 = torch.autograd.grad(out.sum(), x)[0] if out.requires_grad else torch.zeros_like(x)
    torch.testing.assert_close(act.d1(x.detach()), auto1, rtol=1e-12, atol=1e-12)
    x1 = x.detach().requires_grad_(True)
    out = act.d1(x1)
    if out.requires_grad:
        (auto2,) = torch.autograd.grad(out.sum(), x1)
    else:  # piecewise-constant derivative
        auto2 = torch.zeros_like(x1)
    torch.testing.assert_close(act.d2(x.detach()), auto2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_maps_symmetric_psd_and_diagonal_consistent(name):
    act = activation(name)
    g = torch.Generator().manual_seed(0)
    k11 = torch.rand(12, generator=g, dtype=F64) * 2 + 0.1
    k22 = torch.rand(12, generator=g, dtype=F64) * 2 + 0.1
    rho = torch.rand(12, generator=g, dtype=F64) * 1.98 - 0.99
    k12 = rho * (k11 * k22).sqrt()
    for fmap, diag in (
        (act.nngp_map, act.second_moment),
        (act.ntk_map, act.derivative_second_moment),
    ):
        ab, ba = fmap(k11, k12, k22), fmap(k22, k12, k11)
        assert ab.dtype == F64
        torch.testing.assert_close(ab, ba, rtol=1e-12, atol=1e-13)
        d1, d2 = fmap(k11, k11, k11), fmap(k22, k22, k22)
        torch.testing.assert_close(d1, diag(k11), rtol=1e-11, atol=1e-12)
        # 2x2 Gram of (s(u), s(v)) is PSD: E[s s]^2 <= E[s^2] E[s^2].
        assert bool((ab**2 <= d1 * d2 * (1 + 1e-10) + 1e-14).all())


@pytest.mark.parametrize("name", ALL)
def test_degenerate_covariances_are_finite(name):
    act = activation(name)
    k = torch.tensor([0.0, 1e-300, 1.0, 2.0], dtype=F64)
    for k12 in (k, -k, torch.zeros_like(k)):
        for fmap in (act.nngp_map, act.ntk_map):
            assert bool(torch.isfinite(fmap(k, k12, k)).all()), (name, k12)
    zero = torch.zeros(1, dtype=F64)
    assert bool(torch.isfinite(act.nngp_map(zero, zero, torch.ones(1, dtype=F64))).all())


@pytest.mark.parametrize("name", ALL)
def test_square_second_derivative_is_twice_the_variance_derivative(name):
    """E[(s^2)''] = 2 d/dK E[s^2] (Gaussian integration by parts)."""
    act = activation(name)
    k = torch.tensor([0.3, 1.0, 2.5], dtype=F64)
    h = 1e-4
    fd = (act.second_moment(k + h) - act.second_moment(k - h)) / (2 * h)
    torch.testing.assert_close(act.square_second_derivative(k), 2 * fd, rtol=1e-6, atol=1e-7)


def test_unknown_name_lists_close_names():
    with pytest.raises(ValueError, match=r"activation must be one of .*Did you mean relu"):
        activation("rellu")
    with pytest.raises(TypeError, match="params must be valid parameters of 'relu'"):
        activation("relu", slope=0.1)


def test_family_parameters_and_aliases():
    leaky = activation("leaky_relu", slope=0.2)
    x = torch.tensor([-1.0, 2.0], dtype=F64)
    torch.testing.assert_close(leaky(x), torch.tensor([-0.2, 2.0], dtype=F64))
    assert activation("swish").name == "silu"
    assert activation("Leaky-ReLU").name == "leaky_relu"
